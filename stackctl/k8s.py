"""`inv k8s`: the Kubernetes manifests (deploy/k8s) rendered for an image tag, then validated
offline against the API schemas of a pinned Kubernetes version and by a policy checker.

kubectl's built-in kustomize renders them, from an overlay written for the tag (`images:`, and
the migrate Job named after the tag: a Job's pod template cannot change). The tools (kubectl,
kubernetes-validate, checkov) live in an environment of their own under .cache/, installed on
first use from deploy/k8s/requirements.txt with their digests checked; none needs a network
once installed (checkov is told not to download anything)."""

import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import ROOT, Problem
from .images import writable_directory

# A Docker tag: what `docker tag` accepts.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# A registry and optional path before the image names: host[:port][/path], no scheme.
REGISTRY = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9._-]+)*")
# The longest object name Kubernetes takes for a Job whose pods get its name as a label value.
NAME_MAX = 63
JOB = "migrate"
RENDERED = "todostack.yaml"


@dataclass(frozen=True)
class Check:
    """A validator's verdict on the rendered manifests: problems are one line each."""

    name: str
    problems: list
    summary: str = ""


def settings(c):
    """invoke.yaml's k8s section, its paths made absolute."""
    k8s = c.config.k8s
    return {
        "manifests": ROOT / k8s.manifests,
        "tools": ROOT / k8s.tools_dir,
        "requirements": ROOT / k8s.tools_requirements,
        "skips": ROOT / k8s.policy_skips,
        "output": ROOT / k8s.output,
        "version": str(k8s.kubernetes_version),
        "images": list(k8s.images),
    }


def check_tag(tag):
    """The tag, or Problem: not a Docker tag, or the mutable `latest` (Kubernetes would pull
    it on every start, and nothing says which build runs)."""
    tag = (tag or "").strip()
    if not TAG.fullmatch(tag):
        raise Problem(
            f"k8s: {tag!r} is not an image tag (letters, digits, _ . -): e.g. --tag $(git rev-parse --short HEAD)"
        )
    if tag == "latest":
        raise Problem("k8s: 'latest' names no particular build: give an immutable tag, e.g. the git commit")
    return tag


def check_registry(registry):
    """The registry prefix without a trailing slash ('' for none), or Problem."""
    registry = (registry or "").strip().rstrip("/")
    if registry and not REGISTRY.fullmatch(registry):
        raise Problem(
            f"k8s: --registry {registry!r} is not HOST[:PORT][/PATH] (no scheme), e.g. registry.example.com:5000/team"
        )
    return registry


def job_name(tag):
    """migrate-TAG as a Kubernetes name: lower case, '-' for what a name cannot hold."""
    suffix = re.sub(r"[^a-z0-9-]+", "-", tag.lower()).strip("-")
    return f"{JOB}-{suffix}"[:NAME_MAX].rstrip("-")


def overlay(base, directory, tag, registry, images):
    """The kustomization that renders `base` for a tag: every one of `images` gets the tag (and
    the registry prefix), the migrate Job the tag in its name. kustomize takes the base as a
    path relative to the overlay's directory."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(base, directory)],
        "images": [
            {"name": image, "newName": f"{registry}/{image}" if registry else image, "newTag": tag} for image in images
        ],
        "patches": [
            {
                "target": {"kind": "Job", "name": JOB},
                "patch": json.dumps([{"op": "replace", "path": "/metadata/name", "value": job_name(tag)}]),
            }
        ],
    }


def shown(path):
    """A path as the messages show it: relative to the project when it is inside it."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tool(paths, name):
    return str(paths["tools"] / "bin" / name)


def ensure_tools(c, paths, say=print):
    """The tools' environment, installed (or refreshed) when the requirements changed."""
    venv, requirements = paths["tools"], paths["requirements"]
    stamp, wanted = venv / ".requirements.sha256", _digest(requirements)
    if stamp.is_file() and stamp.read_text().strip() == wanted and (venv / "bin" / "python").is_file():
        return venv
    say(f"k8s: installing {shown(requirements)} into {shown(venv)} (first use; about a minute)")
    shutil.rmtree(venv, ignore_errors=True)
    venv.mkdir(parents=True)
    log = venv.parent / "k8s-tools-pip.log"
    made = c.run(shlex.join([sys.executable, "-m", "venv", "--without-pip", str(venv)]), hide=True, warn=True)
    installed = made.ok and c.run(
        shlex.join([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--disable-pip-version-check", "--require-hashes", "--retries", "2", "--timeout", "30",
                    "-r", str(requirements)]) + f" >{shlex.quote(str(log))} 2>&1",
        hide=True, warn=True,
    ).ok  # fmt: skip
    if not installed:
        raise Problem(
            f"k8s: could not install the tools of {shown(requirements)}: check that PyPI is reachable; log in {log}"
        )
    stamp.write_text(wanted + "\n")
    return venv


def render(c, paths, tag, registry, output):
    """Render the manifests for the tag into output/todostack.yaml; returns its path and the
    number of objects in it."""
    output = writable_directory(output)
    (ROOT / ".cache").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="k8s-overlay-", dir=ROOT / ".cache") as directory:
        spec = overlay(paths["manifests"], directory, tag, registry, paths["images"])
        Path(directory, "kustomization.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        result = c.run(shlex.join([tool(paths, "kubectl"), "kustomize", directory]), hide=True, warn=True)
    if not result.ok:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise Problem(f"k8s: kustomize could not render {shown(paths['manifests'])}: {reason}")
    rendered = output / RENDERED
    rendered.write_text(result.stdout)
    return rendered, sum(1 for document in yaml.safe_load_all(result.stdout) if document)


def validate_schemas(c, paths, rendered):
    """kubernetes-validate, strict (an unknown field is an error), against the pinned version."""
    version = paths["version"]
    result = c.run(
        shlex.join([tool(paths, "kubernetes-validate"), "--kubernetes-version", version, "--strict", "--quiet",
                    str(rendered)]),
        hide=True, warn=True,
    )  # fmt: skip
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    problems = [] if result.ok else [line for line in lines if line.strip()]
    if not result.ok and not problems:
        problems = [f"kubernetes-validate exited with status {result.exited}"]
    return Check(f"schemas (Kubernetes {version}, strict)", problems)


def policy_skips(path):
    """{check id: reason} from the skip file; Problem for an entry without an id or a reason."""
    entries = yaml.safe_load(Path(path).read_text()) or []
    skips = {}
    for number, entry in enumerate(entries, start=1):
        check, reason = str((entry or {}).get("id") or "").strip(), str((entry or {}).get("reason") or "").strip()
        if not check or not reason:
            raise Problem(f"k8s: entry {number} of {Path(path).name} needs both an id and a reason")
        skips[check] = reason
    return skips


def policy_findings(report):
    """One line per failed check in checkov's JSON report (one framework: an object; several:
    a list of them), and per file it could not parse."""
    problems = []
    for part in report if isinstance(report, list) else [report]:
        results = part.get("results") or {}
        for failed in results.get("failed_checks") or []:
            problems.append(f"{failed['check_id']} {failed['resource']}: {failed['check_name']}")
        for path in results.get("parsing_errors") or []:
            problems.append(f"cannot parse {path}")
    return problems


def check_policies(c, paths, rendered):
    """checkov's Kubernetes checks, less the skipped ones (each with its reason in the skip file)."""
    skips = policy_skips(paths["skips"])
    command = [tool(paths, "checkov"), "--file", str(rendered), "--framework", "kubernetes", "--quiet", "--compact",
               "--skip-download", "--output", "json"]  # fmt: skip
    if skips:
        command += ["--skip-check", ",".join(skips)]
    result = c.run(shlex.join(command), hide=True, warn=True)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        reason = (result.stderr.strip().splitlines() or [f"exit status {result.exited}"])[-1]
        return Check("policies (checkov)", [f"checkov gave no report: {reason}"])
    parts = report if isinstance(report, list) else [report]
    passed = sum(part.get("summary", {}).get("passed", 0) for part in parts)
    version = parts[0].get("summary", {}).get("checkov_version", "?") if parts else "?"
    problems = policy_findings(report)
    if not passed and not problems:
        problems = ["checkov checked nothing: no Kubernetes object found in the rendered file"]
    return Check(
        f"policies (checkov {version})",
        problems,
        f"{passed} passed, {len(skips)} skipped (reasons in {shown(paths['skips'])})",
    )


def run(c, tag, registry="", output=None, out=print):
    """`inv k8s`: render for the tag, then every validator, one status line each (a failure's
    problems under it); Problem naming those that failed."""
    paths = settings(c)
    tag, registry = check_tag(tag), check_registry(registry)
    ensure_tools(c, paths, say=out)
    rendered, count = render(c, paths, tag, registry, Path(output) if output else paths["output"])
    out(f"k8s: {count} objects rendered into {shown(rendered)}")
    failed = []
    for check in (validate_schemas(c, paths, rendered), check_policies(c, paths, rendered)):
        if check.problems:
            failed.append(check.name)
            out(f"FAIL  {check.name}")
            out("\n".join(f"      {problem}" for problem in check.problems))
        else:
            out(f"ok    {check.name}{f': {check.summary}' if check.summary else ''}")
    if failed:
        raise Problem(f"k8s: {', '.join(failed)} failed; see above")
    out(f"k8s: valid; apply with: kubectl apply -f {shown(rendered)} (README, section Kubernetes)")
