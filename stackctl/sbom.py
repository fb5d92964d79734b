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
    image_id = c.run(f"docker image inspect --format '{{{{.Id}}}}' {shlex.quote(image)}", hide=True).stdout.strip()
    subject = {"type": "container", "bom-ref": image, "name": image, "version": image_id}
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


def write_all(c, images):
    """Write every SBOM for the built prod images ({service: image}); returns the paths."""
    out = output_dir(c)
    with scratch_directory() as directory:
        npm = npm_lock_sbom(c, directory)
        written = [
            write(out / "lock-python-backend.cdx.json", uv_lock_sbom(c, directory)),
            write(out / "lock-python-tooling.cdx.json", requirements_sbom(c, ROOT / "requirements.txt", directory)),
            write(out / "lock-npm-frontend.cdx.json", npm),
        ]
    for service, image in images.items():
        written.append(write(out / f"image-{service}.cdx.json", image_sbom(c, service, image, npm)))
    return written


def summary(path):
    """One line: the file and how many components it lists."""
    sbom = json.loads(Path(path).read_text())
    return f"{Path(path).relative_to(ROOT)}: {len(sbom.get('components') or [])} components"
