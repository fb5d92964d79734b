"""The stack's images: which image each service builds, building them one by one, sizes, and
exporting them as tarballs (for a cluster without a registry: minikube, kind)."""

import os
import re
import shlex
import time
from pathlib import Path

from . import Problem
from .budgets import ImageMeasure
from .compose import docker_compose
from .engine import image_size_mb, inspect_image
from .stack import config, effective_env


def _services(c, target):
    """The services of the target's compose files, as `docker compose config` resolves them."""
    return sorted(config(c, target)["services"].items())


def stack_images(c, target, built_only=False):
    """{service: image} for every image the stack runs (postgres runs its base image), or
    with built_only those the compose file builds; each image once (in prod, migrate runs
    the backend's image)."""
    images = {}
    for name, spec in _services(c, target):
        image = spec.get("image") or f"{target.project}-{name}"
        if ("build" in spec or not built_only) and image not in images.values():
            images[name] = image
    return images


def build_contexts(c, target):
    """The directories the target's images are built from (Compose makes them absolute)."""
    return sorted({Path(spec["build"]["context"]) for _, spec in _services(c, target) if "build" in spec})


def built_images(c, target):
    """{service: image} for the services the compose file builds, one service per image."""
    return stack_images(c, target, built_only=True)


def build_one(c, target, service, no_cache=False):
    """Build one service's image; returns seconds taken. On failure the build output
    stays on screen and the Problem names the service."""
    start = time.monotonic()
    result = docker_compose(
        c, target, f"--progress plain build {'--no-cache ' if no_cache else ''}{service}", warn=True
    )
    if not result.ok:
        raise Problem(f"building {service} failed: see its build output above")
    return time.monotonic() - start


def measure(c, service, image, build_s=None):
    """Size and base figures of a built image, with the budgets from invoke.yaml."""
    budgets = c.config.build.budgets.get(service) or {}
    base_image = effective_env(c).get(budgets.get("base_var", ""), "") if budgets else ""
    size = image_size_mb(c, image)
    if size is None:
        raise Problem(f"image {image} of {service} not found: build it with `inv build --prod`")
    return ImageMeasure(
        service=service,
        image=image,
        size_mb=size,
        base_image=base_image,
        base_mb=image_size_mb(c, base_image) if base_image else None,
        build_s=build_s,
        budget_total_mb=budgets.get("total_mb"),
        budget_over_base_mb=budgets.get("over_base_mb"),
    )


def archive_name(image):
    """todostack/backend:abc123 -> todostack-backend-abc123.tar"""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", image) + ".tar"


def writable_directory(directory):
    """The directory, created when missing, or Problem when it cannot be written to."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        raise Problem(f"cannot write to {directory} ({error.strerror}): choose another directory") from None
    return directory


def save(c, target, directory):
    """`docker save` each image the target builds into directory, one tarball each; returns
    [(image, path)]. Problem, before anything is written, when one is not built."""
    images = list(built_images(c, target).values())
    missing = [image for image in images if inspect_image(c, image) is None]
    if missing:
        build = "inv build --prod" if target.name == "prod" else "inv build"
        raise Problem(f"{', '.join(missing)} not built: build them first: {build}")
    directory = writable_directory(directory)
    saved = []
    for image in images:
        path = directory / archive_name(image)
        partial = path.with_name(path.name + ".partial")
        result = c.run(f"docker save --output {shlex.quote(str(partial))} {shlex.quote(image)}", hide=True, warn=True)
        if not result.ok:
            partial.unlink(missing_ok=True)
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.exited}"])[-1]
            raise Problem(f"docker save {image} failed: {reason}")
        partial.replace(path)
        saved.append((image, path))
    return saved
