"""Section `load`: the prod API under wrk (stackctl.bench.wrk), through the frontend origin
(nginx -> backend) and straight to the backend, with each container's memory idle, and for
each load each container's CPU time per request (its cgroup's counter before and after the
run: nothing samples the containers while wrk runs) and, under the list load, its CPU share
and peak memory.

The backend is not published in the prod stack. wrk reaches it directly by running in its
network namespace (`nsenter -t PID -n`, root only), where it is at 127.0.0.1:8000: the host's
wrk, no extra image (there is no registry to pull one from), no extra published port, and the
load generator's CPU shows up as the host's, not as a container's. Without root that path is
skipped and said so in the report's notes."""

import os
import shutil
from contextlib import contextmanager

from .. import Problem
from ..compose import docker_compose
from ..wait import wait_until
from . import wrk
from .loopback import http
from .machine import container_stats, container_usage


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

    # Every GET runs before the first POST, so the list is read with exactly `rows` rows.
    for key, where, url, pid in _paths(bench, origin):
        _wrk_runs(bench, f"api_list_{key}", f"GET /api/v1/todos {where}", url, "", pid, names)
    # What the rate limiter costs: the same list load through the frontend with it off.
    with _rate_limiter_off(bench, origin):
        label = "GET /api/v1/todos via frontend, limiter off"
        _wrk_runs(bench, "api_list_via_frontend_unlimited", label, f"{origin}/api/v1/todos", "", None, names)
    for key, where, url, pid in _paths(bench, origin, note=False):
        _wrk_runs(bench, f"api_create_{key}", f"POST /api/v1/todos {where}", url, wrk.POST_TODO, pid, names)


def _paths(bench, origin, note=True):
    """(key, label, URL, network namespace PID or None) of each way to the backend: through
    the frontend, and straight to the backend's current container where root can enter it."""
    paths = [("via_frontend", "via frontend", f"{origin}/api/v1/todos", None)]
    direct_pid = bench.copy.container_pid("backend", prod=True)
    if os.geteuid() == 0 and shutil.which("nsenter") and direct_pid:
        paths.append(("direct", "backend direct", "http://127.0.0.1:8000/api/v1/todos", direct_pid))
    elif note:
        bench.notes.append(
            "backend direct: skipped (running wrk in the backend's network namespace "
            "needs root and nsenter); figures are through the frontend only"
        )
    return paths


@contextmanager
def _rate_limiter_off(bench, origin):
    """The prod backend recreated with RATE_LIMIT_ENABLED=false, and afterwards as configured
    again; each time until the frontend's /health shows its limiter in that state."""
    _recreate_backend(bench, origin, enabled="false", shows="disabled")
    yield
    _recreate_backend(bench, origin, enabled="", shows="connected")


def _recreate_backend(bench, origin, enabled, shows):
    bench.copy.compose("up --detach --wait --no-deps backend", prod=True, env={"RATE_LIMIT_ENABLED": enabled})
    if wait_until(lambda: _health(origin).get("redis") == shows, bench.wait_s, interval=0.2) is None:
        raise Problem(f"bench: the prod backend's /health did not show its rate limiter {shows} in time")


def _health(origin):
    response = http("GET", f"{origin}/health")
    return response.json() if response.status_code == 200 else {}


def _wrk_runs(bench, key, label, url, lua, netns_pid, names):
    """A warm-up, then `runs` recorded runs, each with every container's CPU time per request
    ({container: service} `names`); for the list via the frontend also their CPU share and
    peak memory, wrk's and the host's CPU."""
    bench.say(f"bench: {label}: {bench.load['warmup_s']} s warm-up")
    _wrk(bench, url, lua, bench.load["warmup_s"], netns_pid)
    for run in range(bench.runs):
        bench.say(
            f"bench: {label}: {bench.load['duration_s']} s x {bench.load['connections']} connections "
            f"({run + 1}/{bench.runs})"
        )
        before = container_usage(bench.copy.ctx, names)
        measured = _wrk(bench, url, lua, bench.load["duration_s"], netns_pid)
        after = container_usage(bench.copy.ctx, names)
        result = measured.result
        cpu_s = {service: after[service]["cpu_s"] - before[service]["cpu_s"] for service in after}
        requests = max(result["requests"], 1)
        # Every figure of the run, CPU per request included, counts its requests and errors.
        figures = [
            (f"{key}_{suffix}", f"{label}: {suffix.replace('_ms', '')}", unit, result[suffix])
            for suffix, unit in (("rps", "req/s"), ("p50_ms", "ms"), ("p99_ms", "ms"))
        ] + [
            (f"{key}_cpu_ms_{service}", f"{label}: {service} CPU per request", "ms", 1000 * cpu_s[service] / requests)
            for service in sorted(cpu_s)
        ]
        for figure_key, figure_label, unit, value in figures:
            metric = bench.add(figure_key, figure_label, unit, "load", value)
            metric.errors += result["errors"]
            metric.requests += result["requests"]
        if key != "api_list_via_frontend":
            continue
        for service in sorted(cpu_s):
            share = 100 * cpu_s[service] / result["duration_s"]
            bench.add(f"cpu_load_{service}_pct", f"CPU under list load: {service}", "%", "load", share)
            if after[service]["mem_peak_mib"] is not None:
                peak = after[service]["mem_peak_mib"]
                bench.add(f"mem_load_{service}_mib", f"peak memory: {service}", "MiB", "load", peak)
        bench.add("cpu_load_wrk_pct", "CPU under list load: wrk", "%", "load", measured.wrk_cpu_pct)
        host = f"CPU under list load: host (all {os.cpu_count()})"
        bench.add("cpu_load_host_pct", host, "%", "load", measured.host_busy_pct)


def _wrk(bench, url, lua, seconds, netns_pid):
    try:
        return wrk.run(
            url,
            lua,
            seconds=seconds,
            connections=bench.load["connections"],
            threads=bench.load["threads"],
            netns_pid=netns_pid,
            log=bench.copy.log,
        )
    except Problem as problem:
        raise Problem(f"bench: {problem}; see the bench log") from None
