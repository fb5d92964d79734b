"""SBOMs (CycloneDX JSON) that `inv build --prod` writes under sbom.dir (reports/sbom/).

    lock-python-backend.cdx.json   backend/uv.lock, every group (uv exports it, cyclonedx-py writes it)
    lock-python-tooling.cdx.json   requirements.txt, the task runner and test tools (cyclonedx-py)
    lock-npm-frontend.cdx.json     frontend/package-lock.json (cyclonedx-npm, in the dev frontend container)
    image-SERVICE.cdx.json         what a prod image contains: its Debian packages (dpkg-query
                                   run in the image) and what sbom.images says it carries on top

An image's own SBOM is written here, not by a tool: its OS packages are what `dpkg-query`
lists in the image, its Python packages what the image's python finds installed (the venv),
its npm packages the lock's runtime (non-development) packages, which Vite bundles.
"""

import hashlib
import json
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from . import ROOT, Problem
from .compose import docker_compose, stack_target
from .lint import leaving_no_objects, scratch_directory

SPEC_VERSION = "1.6"
# dpkg-query's fields, one package a line (${source:Package} is the source package's name).
DPKG_FORMAT = r"${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\n"
# Run by the image's python: the distributions it finds installed, as JSON.
PYTHON_PACKAGES = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))"
)
# cyclonedx-npm marks the packages that only development needs with this property.
NPM_DEVELOPMENT = "cdx:npm:package:development"
# {SBOM file name: digest of its inputs} of the SBOMs written, so unchanged ones are kept.
INPUTS_FILE = "inputs.json"


def output_dir(c):
    return ROOT / c.config.sbom.dir


def document(subject, components, tool="stackctl.sbom"):
    """A CycloneDX document: `subject` the metadata component, `components` the list."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": tool}]},
            "component": subject,
        },
        "components": components,
    }


def deb_components(dpkg_output):
    """Components for the installed packages in dpkg-query's output (DPKG_FORMAT)."""
    components = []
    for line in dpkg_output.splitlines():
        status, name, version, arch, source = (line.split("\t") + [""] * 5)[:5]
        if status != "installed":  # removed but its configuration kept, or half-installed
            continue
        purl = f"pkg:deb/debian/{name}@{quote(version, safe='')}?arch={arch}"
        if source and source != name:
            purl += f"&upstream={quote(source, safe='')}"
        components.append(
            {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
            | ({"properties": [{"name": "deb:source", "value": source}]} if source else {})
        )
    return components


def pypi_components(pairs):
    """Components for (name, version) pairs of Python distributions."""
    components = []
    for name, version in sorted(pairs, key=lambda pair: pair[0].lower()):
        purl = f"pkg:pypi/{name.lower().replace('_', '-')}@{version}"
        components.append({"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl})
    return components


def npm_runtime_components(npm_sbom):
    """The components of a cyclonedx-npm SBOM that are not development-only (what ships)."""
    return [
        component
        for component in npm_sbom.get("components") or []
        if {"name": NPM_DEVELOPMENT, "value": "true"} not in (component.get("properties") or [])
    ]


def in_image(c, image, entrypoint, *args):
    """stdout of a command run in a throwaway container of the image (no network)."""
    command = shlex.join(["docker", "run", "--rm", "--network", "none", "--entrypoint", entrypoint, image, *args])
    result = c.run(command, hide=True, warn=True)
    if not result.ok:
        raise Problem(f"sbom: `{entrypoint}` failed in {image}: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return result.stdout


def image_sbom(c, service, image, npm_sbom=None):
    """The SBOM of one built image: its Debian packages, plus (sbom.images[service]) the
    Python packages its python finds, or the npm lock's runtime packages."""
    components = deb_components(in_image(c, image, "dpkg-query", "-W", "-f", DPKG_FORMAT))
    carries = (c.config.sbom.images or {}).get(service)
    if carries == "python":
        components += pypi_components(json.loads(in_image(c, image, "python", "-c", PYTHON_PACKAGES)))
    elif carries == "npm":
        components += npm_runtime_components(npm_sbom or {})
    subject = {"type": "container", "bom-ref": image, "name": image, "version": image_id(c, image)}
    return document(subject, components)


def export_uv_lock(c, directory):
    """backend/uv.lock, every dependency group, as a requirements file with digests (what
    cyclonedx-py and pip-audit read); returns its path."""
    exported = Path(directory) / "backend-uv-lock.txt"
    run(
        c,
        ["uv", "export", "--frozen", "--all-groups", "--no-emit-project", "--quiet",
         "--directory", str(ROOT / "backend"), "--format", "requirements.txt", "--output-file", str(exported)],
    )  # fmt: skip
    return exported


def uv_lock_sbom(c, directory):
    """backend/uv.lock, every dependency group, through `uv export` and cyclonedx-py."""
    return requirements_sbom(c, export_uv_lock(c, directory), directory, ROOT / "backend/pyproject.toml")


def requirements_sbom(c, requirements, directory, pyproject=None):
    """cyclonedx-py's SBOM of a requirements file (pinned, with digests), written in directory."""
    output = Path(directory) / f"{Path(requirements).name}.cdx.json"
    args = ["cyclonedx-py", "requirements", "--of", "JSON", "--sv", SPEC_VERSION, "-o", str(output)]
    run(c, args + (["--pyproject", str(pyproject)] if pyproject else []) + [str(requirements)])
    return json.loads(output.read_text())


def npm_lock_sbom(c, directory):
    """cyclonedx-npm's SBOM of frontend/package-lock.json, run in the dev frontend container
    (the host needs no Node.js)."""
    target = stack_target(c)
    command = (
        "node_modules/.bin/cyclonedx-npm --package-lock-only --output-format JSON "
        f"--spec-version {SPEC_VERSION} --output-file /sbom/npm.cdx.json"
    )
    with leaving_no_objects(c, target):
        result = docker_compose(
            c,
            target,
            f"run --rm --no-deps -T -e SKIP_DEPS_CHECK=true -v {shlex.quote(f'{directory}:/sbom')} frontend {command}",
            hide=True,
            warn=True,
        )
    if not result.ok:
        raise Problem(
            "sbom: cyclonedx-npm failed in the dev frontend container "
            f"({(result.stderr.strip().splitlines() or ['?'])[-1]}); rebuild it: `inv build --service frontend`"
        )
    return json.loads((Path(directory) / "npm.cdx.json").read_text())


def run(c, args):
    """A tool's command line (a list), output captured; Problem naming the tool on failure."""
    result = c.run(shlex.join(args), hide=True, warn=True)
    if not result.ok:
        raise Problem(f"sbom: {args[0]} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
    return result


def write(path, sbom):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sbom, indent=2) + "\n")
    return path


def file_digest(*paths):
    """sha256 of the files' contents, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def lock_inputs():
    """{SBOM file name: digest of what it is made from} for the lock SBOMs."""
    return {
        "lock-python-backend.cdx.json": file_digest(ROOT / "backend/uv.lock", ROOT / "backend/pyproject.toml"),
        "lock-python-tooling.cdx.json": file_digest(ROOT / "requirements.txt"),
        "lock-npm-frontend.cdx.json": file_digest(ROOT / "frontend/package-lock.json"),
    }


def image_id(c, image):
    return c.run(f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)}", hide=True).stdout.strip()


def image_input(c, service, image, npm_digest):
    """What an image's SBOM is made from: the image's ID, and the npm lock if it bundles it."""
    bundles_npm = (c.config.sbom.images or {}).get(service) == "npm"
    return f"{image_id(c, image)} {npm_digest}" if bundles_npm else image_id(c, image)


def stale(out, inputs):
    """The SBOM file names whose inputs changed since they were written (or that are missing),
    by the digests recorded in out/inputs.json."""
    try:
        recorded = json.loads((out / INPUTS_FILE).read_text())
    except (OSError, ValueError):
        recorded = {}
    return {name for name, digest in inputs.items() if recorded.get(name) != digest or not (out / name).is_file()}


def write_all(c, images):
    """Write the SBOMs of the locks and the built prod images ({service: image}) whose inputs
    changed (a lock's digest, an image's ID); returns the paths of all of them. Writing them
    takes about a minute (cyclonedx-npm runs in a container); an unchanged one is kept."""
    out = output_dir(c)
    inputs = lock_inputs()
    npm_digest = inputs["lock-npm-frontend.cdx.json"]
    inputs |= {f"image-{s}.cdx.json": image_input(c, s, image, npm_digest) for s, image in images.items()}
    todo = stale(out, inputs)
    npm_needed = "lock-npm-frontend.cdx.json" in todo or any(
        (c.config.sbom.images or {}).get(s) == "npm" and f"image-{s}.cdx.json" in todo for s in images
    )
    with scratch_directory() as directory:
        if npm_needed:
            npm = npm_lock_sbom(c, directory)
            write(out / "lock-npm-frontend.cdx.json", npm)
        if "lock-python-backend.cdx.json" in todo:
            write(out / "lock-python-backend.cdx.json", uv_lock_sbom(c, directory))
        if "lock-python-tooling.cdx.json" in todo:
            write(out / "lock-python-tooling.cdx.json", requirements_sbom(c, ROOT / "requirements.txt", directory))
    for service, image in images.items():
        if f"image-{service}.cdx.json" in todo:
            write(out / f"image-{service}.cdx.json", image_sbom(c, service, image, npm if npm_needed else None))
    write(out / INPUTS_FILE, inputs)
    return [out / name for name in inputs]


def summary(path):
    """One line: the file and how many components it lists."""
    sbom = json.loads(Path(path).read_text())
    return f"{Path(path).relative_to(ROOT)}: {len(sbom.get('components') or [])} components"
