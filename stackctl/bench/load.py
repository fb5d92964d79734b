"""Section `load`: the prod API under wrk (stackctl.bench.wrk), through the frontend origin
(nginx -> backend) and straight to the backend, with each container's memory idle and its
memory and CPU under the list load.

The backend is not published in the prod stack. wrk reaches it directly by running in its
network namespace (`nsenter -t PID -n`, root only), where it is at 127.0.0.1:8000: the host's
wrk, no extra image (there is no registry to pull one from), no extra published port, and the
load generator's CPU shows up as the host's, not as a container's. Without root that path is
skipped and said so in the report's notes."""

import os
import shutil

from .. import Problem
from ..compose import docker_compose
from . import wrk
from .loopback import http
from .machine import container_stats


def load(bench):
    bench.copy.prod_images_built(bench.say)
    bench.say("bench: starting the prod stack")
    bench.copy.inv("up", "--prod")
    try:
        _load(bench)
    finally:
        bench.say("bench: removing the prod stack")
        docker_compose(
            bench.copy.ctx,
            bench.copy.target(prod=True),
            "down --volumes --remove-orphans --timeout 5",
            hide=True,
            warn=True,
        )


def _load(bench):
    origin, rows = bench.copy.url("PROD_PORT"), bench.load["rows"]
    for n in range(rows):
        response = http("POST", f"{origin}/api/v1/todos", json={"title": f"bench row {n + 1}"})
        if response.status_code != 201:
            raise Problem(
                f"bench: seeding a todo through {origin} answered {response.status_code}: {response.text[:200]}"
            )
    listing = http("GET", f"{origin}/api/v1/todos")
    if listing.status_code != 200 or listing.json()["total"] != rows:
        raise Problem(f"bench: the prod stack does not list the {rows} seeded todos: {listing.text[:200]}")
    names = bench.copy.container_names()
    for _ in range(bench.runs):
        for service, figures in sorted(container_stats(bench.copy.ctx, names).items()):
            bench.add(f"mem_idle_{service}_mib", f"memory idle: {service}", "MiB", "load", figures["mem_mib"])

    direct_pid = bench.copy.container_pid("backend", prod=True)
    paths = [("via_frontend", "via frontend", f"{origin}/api/v1/todos", None)]
    if os.geteuid() == 0 and shutil.which("nsenter") and direct_pid:
        paths.append(("direct", "backend direct", "http://127.0.0.1:8000/api/v1/todos", direct_pid))
    else:
        bench.notes.append(
            "backend direct: skipped (running wrk in the backend's network namespace "
            "needs root and nsenter); figures are through the frontend only"
        )
    # Every GET runs before the first POST, so the list is read with exactly `rows` rows.
    for endpoint, method, lua in (("list", "GET", ""), ("create", "POST", wrk.POST_TODO)):
        for key, where, url, pid in paths:
            sampled = endpoint == "list" and key == "via_frontend"
            _wrk_runs(
                bench,
                f"api_{endpoint}_{key}",
                f"{method} /api/v1/todos {where}",
                url,
                lua,
                pid,
                names if sampled else None,
            )


def _wrk_runs(bench, key, label, url, lua, netns_pid, names):
    """A warm-up, then `runs` recorded runs; with `names` ({container: service}), the containers'
    peak memory and CPU, wrk's and the host's CPU are recorded too."""
    bench.say(f"bench: {label}: {bench.load['warmup_s']} s warm-up")
    _wrk(bench, url, lua, bench.load["warmup_s"], netns_pid)
    for run in range(bench.runs):
        bench.say(
            f"bench: {label}: {bench.load['duration_s']} s x {bench.load['connections']} connections "
            f"({run + 1}/{bench.runs})"
        )
        peaks = {}
        measured = _wrk(
            bench,
            url,
            lua,
            bench.load["duration_s"],
            netns_pid,
            _peaks_sampler(bench.copy.ctx, names, peaks) if names else None,
        )
        result = measured.result
        for suffix, unit in (("rps", "req/s"), ("p50_ms", "ms"), ("p99_ms", "ms")):
            metric = bench.add(f"{key}_{suffix}", f"{label}: {suffix.replace('_ms', '')}", unit, "load", result[suffix])
            metric.errors += result["errors"]
            metric.requests += result["requests"]
        for service, figures in sorted(peaks.items()):
            bench.add(
                f"mem_load_{service}_mib", f"memory under list load: {service}", "MiB", "load", figures["mem_mib"]
            )
        for service, figures in sorted(peaks.items()):
            bench.add(f"cpu_load_{service}_pct", f"CPU under list load: {service}", "%", "load", figures["cpu_pct"])
        if names is not None:
            bench.add("cpu_load_wrk_pct", "CPU under list load: wrk", "%", "load", measured.wrk_cpu_pct)
            bench.add(
                "cpu_load_host_pct",
                f"CPU under list load: host (all {os.cpu_count()})",
                "%",
                "load",
                measured.host_busy_pct,
            )


def _peaks_sampler(ctx, names, peaks):
    """sample() for wrk.run: each container's highest memory and CPU so far, into `peaks`."""

    def sample():
        for service, figures in container_stats(ctx, names).items():
            peak = peaks.setdefault(service, {"mem_mib": 0.0, "cpu_pct": 0.0})
            peak["mem_mib"] = max(peak["mem_mib"], figures["mem_mib"])
            peak["cpu_pct"] = max(peak["cpu_pct"], figures["cpu_pct"])

    return sample


def _wrk(bench, url, lua, seconds, netns_pid, sample=None):
    try:
        return wrk.run(
            url,
            lua,
            seconds=seconds,
            connections=bench.load["connections"],
            threads=bench.load["threads"],
            netns_pid=netns_pid,
            sample=sample,
            log=bench.copy.log,
        )
    except Problem as problem:
        raise Problem(f"bench: {problem}; see the bench log") from None
