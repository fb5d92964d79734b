"""Sections `build`, `rebuild` and `sizes`: the prod images' cold builds, their rebuilds after a
one-line change, and their sizes."""

import secrets

from ..images import measure
from .reload import BACKEND_SOURCE, FRONTEND_SOURCE

APP_IMAGES = ("backend", "frontend")


def cold_builds(bench):
    """Each image built with --no-cache (base images and cache mounts kept), and both together:
    cold_build_total_s is the one cold build figure held to a budget."""
    for run in range(bench.runs):
        total = 0.0
        for service in APP_IMAGES:
            bench.say(f"bench: cold prod build of {service} ({run + 1}/{bench.runs})")
            seconds = bench.copy.build(service, no_cache=True)
            total += seconds
            bench.add(f"cold_build_{service}_s", f"cold prod build: {service}", "s", "build", seconds)
        bench.add("cold_build_total_s", "cold prod build: both images", "s", "build", total)


def rebuilds(bench):
    sources = {"backend": (BACKEND_SOURCE, "#"), "frontend": (FRONTEND_SOURCE, "//")}
    for service, (source, comment) in sources.items():
        bench.say(f"bench: prod build of {service} (brings the cache up to date, not timed)")
        bench.copy.build(service)
        path = bench.copy.path / source
        original = path.read_text()
        try:
            for _ in range(bench.runs):
                path.write_text(f"{original}{comment} bench {secrets.token_hex(4)}\n")
                seconds = bench.copy.build(service)
                bench.add(f"rebuild_{service}_s", f"prod rebuild, one-line change: {service}", "s", "rebuild", seconds)
        finally:
            path.write_text(original)


def sizes(bench):
    bench.copy.prod_images_built(bench.say)
    for service, image in bench.copy.images(True).items():
        sized = measure(bench.copy.ctx, service, image)
        bench.add(f"size_{service}_mb", f"image size: {service}", "MB", "sizes", sized.size_mb)
        if sized.over_base_mb is not None:
            bench.add(f"size_over_base_{service}_mb", f"image over base: {service}", "MB", "sizes", sized.over_base_mb)
