"""The prod images in a registry, for a Swarm whose nodes pull them (`inv deploy`): a local
registry to run (`inv registry`), pushing a release's images under one immutable tag (`inv
push`), and finding the digest each tag stands for, so that a deploy pins images by digest."""

import json
import re
import shlex

from . import Problem
from .engine import inspect_image
from .images import stack_images

# A tag as Docker accepts one. `latest` moves, so it never names a release.
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def commit_tag(c):
    """The git commit (12 hex digits) of a clean work tree: the default release tag."""
    status = c.run("git status --porcelain --untracked-files=no", hide=True, warn=True)
    if not status.ok:
        raise Problem("not a git checkout, so no commit to tag the images with: pass --tag TAG")
    if status.stdout.strip():
        raise Problem(
            "the work tree has uncommitted changes, so the images are not those of any commit: "
            "commit them, or pass --tag TAG"
        )
    return c.run("git rev-parse --short=12 HEAD", hide=True).stdout.strip()


def release_tag(c, tag=None):
    """`tag`, checked, or the commit's when none is given."""
    if tag is None:
        return commit_tag(c)
    if tag == "latest" or not TAG.match(tag):
        raise Problem(
            f"tag {tag!r} cannot name a release: use letters, digits, '_', '.', '-' (at most 128), not 'latest'"
        )
    return tag


def repository(image):
    """The image's name without its tag, digest or registry: todostack/backend:latest ->
    todostack/backend; registry.example.com:5000/team/app@sha256:... -> team/app."""
    name = image.split("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":")[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return name


def reference(registry, image, tag):
    """Where a release puts an image in the registry: REGISTRY/REPOSITORY:TAG."""
    return f"{registry}/{repository(image)}:{tag}"


def _last_line(result):
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return lines[-1].strip() if lines else f"exit status {result.exited}"


def push(c, target, registry, tag):
    """Tag every image the target's stack runs (ours and its bases) as REGISTRY/REPO:TAG and
    push it; returns {image: reference}. Problem, before anything is pushed, when an image is
    missing."""
    images = sorted(set(stack_images(c, target).values()))
    missing = [image for image in images if inspect_image(c, image) is None]
    if missing:
        raise Problem(f"{', '.join(missing)} not on this engine: build them first (inv build --prod)")
    pushed = {}
    for image in images:
        ref = reference(registry, image, tag)
        c.run(f"docker tag {shlex.quote(image)} {shlex.quote(ref)}", hide=True)
        result = c.run(f"docker push --quiet {shlex.quote(ref)}", hide=True, warn=True)
        if not result.ok:
            raise Problem(
                f"pushing {ref} failed ({_last_line(result)}): check that the registry {registry} answers "
                "(`inv registry` runs a local one)"
            )
        pushed[image] = ref
    return pushed


def pinned(c, ref):
    """REF@DIGEST for a REGISTRY/REPO:TAG reference, as the registry has it now: pulled on the
    engine the CLI points at (a Swarm manager, which reaches the registry as the nodes do).
    Problem when the registry does not answer or has no such tag."""
    result = c.run(f"docker pull --quiet {shlex.quote(ref)}", hide=True, warn=True)
    if not result.ok:
        raise Problem(
            f"cannot pull {ref} ({_last_line(result)}): check that the registry answers and that "
            "`inv push` pushed this tag"
        )
    name = ref.rsplit(":", 1)[0]
    found = c.run(f"docker image inspect --format '{{{{json .RepoDigests}}}}' {shlex.quote(ref)}", hide=True)
    digests = [d for d in json.loads(found.stdout) or [] if d.split("@")[0] == name]
    if not digests:
        raise Problem(f"the registry gave no digest for {ref}: push it again (inv push)")
    return digests[0]


def run_registry(c, name, image, publish, volume):
    """Start (or keep) the registry container NAME from IMAGE, its storage on VOLUME and its
    port 5000 published as `publish` (HOST_IP:PORT); returns 'started' or 'running'."""
    state = c.run(f"docker container inspect --format '{{{{json .State}}}}' {shlex.quote(name)}", hide=True, warn=True)
    if state.ok:
        if json.loads(state.stdout).get("Running"):
            return "running"
        c.run(f"docker container rm --force {shlex.quote(name)}", hide=True)
    result = c.run(
        shlex.join(
            [
                "docker",
                "run",
                "--detach",
                "--name",
                name,
                "--restart",
                "unless-stopped",
                "--publish",
                f"{publish}:5000",
                "--volume",
                f"{volume}:/var/lib/registry",
                image,
            ]
        ),
        hide=True,
        warn=True,
    )
    if not result.ok:
        raise Problem(f"the registry did not start ({_last_line(result)})")
    return "started"


def remove_registry(c, name):
    """Remove the registry container; its volume, holding the pushed images, stays."""
    return c.run(f"docker container rm --force {shlex.quote(name)}", hide=True, warn=True).ok
