"""BACKEND_DISCOVERY=dns: the frontend's nginx resolves the backend's name itself, at request
time, and is never reloaded. The production stack with two backend replicas under the one
name `backend` (Compose's --scale: Docker's DNS answers with both addresses, as Swarm's does
for a service with endpoint_mode dnsrr), through the frontend's origin:

- a start-first rolling replacement of both replicas under a steady load loses no request;
- a name that does not resolve (no replica left) is nginx's JSON 502 at once, and the origin
  answers again when a replica is back, without a frontend restart;
- a replica that is black-holed (its node gone: nothing answers at its address) or frozen is
  skipped for the other one.

The default mode (reload) is test_faults.py's."""

import concurrent.futures
import shutil
import subprocess
import time

import pytest
import requests

from stackctl.bench import wrk
from tests.integration.stacks import UNREACHED_RATE_LIMIT, running_stack, wait_until

DISCOVERY = "dns"
CONNECT_TIMEOUT_S = 0.5  # nginx's proxy_connect_timeout
READ_TIMEOUT_S = 12  # nginx's proxy_read_timeout
LOAD_CLIENTS = 8
LOAD_SECONDS = 45  # long enough for the whole replacement (asserted)
POST_EVERY = 5  # one request in five creates a todo: a write must not be lost either
NAME_GONE_DEADLINE_S = 1.0  # the 502 once the name does not resolve any more
BACK_DEADLINE_S = 3.0  # the origin's answers once a replica is healthy again
DRAIN_S = 2  # Swarm's delay between taking a task out of DNS and stopping it

LOAD = wrk.read_write_mix(POST_EVERY, "rolling") + wrk.COUNT_STATUSES


@pytest.fixture(scope="module")
def stack():
    with running_stack(
        "todostack-discovery", prod=True, settings={**UNREACHED_RATE_LIMIT, "BACKEND_DISCOVERY": DISCOVERY}
    ) as stack:
        scale_backend(stack, 2)
        yield stack


def docker(*args, check=True, timeout=120):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert not check or result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


def scale_backend(stack, replicas):
    """`docker compose up --scale backend=N` on the stack, leaving the running replicas (and
    every other service) alone; returns once the new ones are healthy."""
    compose = [*stack.target(prod=True).args(), "up", "--detach", "--no-deps", "--no-recreate", "--wait"]
    result = subprocess.run(
        [*compose, "--scale", f"backend={replicas}", "backend"], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr


def backends(stack):
    """The backend replicas' container names, running or not."""
    return docker(
        "ps",
        "--all",
        "--filter",
        f"label=com.docker.compose.project={stack.prod_project}",
        "--filter",
        "label=com.docker.compose.service=backend",
        "--format",
        "{{.Names}}",
    ).stdout.split()


def nginx_processes(stack):
    """The PIDs of the frontend's nginx master and workers: a reload replaces the workers."""
    top = docker("top", stack.container("frontend", prod=True), "-eo", "pid,args").stdout.splitlines()[1:]
    return sorted(line.split(None, 1)[0] for line in top if "nginx:" in line)


def assert_never_reloaded(stack, frontend, processes):
    assert stack.inspect("frontend", prod=True)["State"]["StartedAt"] == frontend["State"]["StartedAt"]
    assert nginx_processes(stack) == processes, "nginx's workers were replaced: it was reloaded"
    entrypoint = [
        line
        for line in docker("logs", stack.container("frontend", prod=True)).stderr.splitlines()
        if line.startswith("entrypoint:")
    ]
    assert len(entrypoint) == 1 and "resolved by nginx at request time" in entrypoint[0], entrypoint


def nginx_errors(stack):
    """nginx's error log (the frontend's stderr), the entrypoint's lines and nginx's notices left out."""
    logs = docker("logs", stack.container("frontend", prod=True)).stderr.splitlines()
    return "\n".join(line for line in logs if "[error]" in line or "[warn]" in line or "[crit]" in line)


def timed(method, url, **kwargs):
    start = time.monotonic()
    response = requests.request(method, url, timeout=30, **kwargs)
    return response, time.monotonic() - start


def assert_backend_unavailable(response):
    assert response.status_code == 502, f"{response.request.url}: {response.status_code} {response.text}"
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    assert response.json() == {"detail": "Backend unavailable"}


def origin_ok(stack):
    origin = stack.url("PROD_PORT")
    return all(requests.get(origin + path, timeout=5).status_code == 200 for path in ("/api/v1/todos", "/health"))


def test_an_unknown_discovery_mode_stops_the_container_naming_it(stack):
    image = stack.inspect("frontend", prod=True)["Config"]["Image"]
    result = docker("run", "--rm", "--read-only", "--tmpfs", "/tmp", "-e", "BACKEND_DISCOVERY=srv", image, check=False)
    assert result.returncode == 64, result.stdout + result.stderr
    assert result.stderr.strip() == "entrypoint: BACKEND_DISCOVERY must be reload or dns, got 'srv'"


def drop(container, *rule):
    """A firewall rule in a container's network namespace (root: nsenter), gone with it; returns
    a function that deletes it."""
    pid = docker("inspect", "--format", "{{.State.Pid}}", container).stdout.strip()
    iptables = ["nsenter", "-t", pid, "-n", "iptables"]
    subprocess.run([*iptables, "-I", "INPUT", *rule], check=True, timeout=30)
    return lambda: subprocess.run([*iptables, "-D", "INPUT", *rule], check=True, timeout=30)


def stop_as_swarm_does(replica):
    """How Swarm stops a task: out of the service's DNS first, SIGTERM 2 s later (moby's
    controller.Shutdown: deactivateServiceBinding, then defaultGossipConvergeDelay). Here the
    replica refuses new connections meanwhile instead (Compose cannot take a container out of
    DNS alone): either way no new connection reaches it, and its requests in flight finish.
    Without that step a stopping uvicorn still lets the kernel accept connections that it never
    reads (its master holds the listening socket until its workers are done), and resets them
    as it exits: nginx sends a GET again, never a POST (see the README)."""
    drop(replica, "-p", "tcp", "--dport", "8000", "--syn", "-j", "REJECT", "--reject-with", "tcp-reset")
    time.sleep(DRAIN_S)
    docker("stop", replica)  # uvicorn's graceful shutdown (SIGTERM)
    docker("rm", replica)


def test_a_rolling_replacement_of_the_backends_under_load_loses_no_request(stack, measure):
    """Start a new replica, wait until it is healthy, stop and remove an old one (as Swarm
    does); twice, while wrk sends requests all along. Not one may fail, and nginx is never
    reloaded."""
    assert shutil.which("wrk"), "wrk not found: `inv setup --test-tools` installs it"
    frontend, processes = stack.inspect("frontend", prod=True), nginx_processes(stack)
    old = backends(stack)
    assert len(old) == 2, old
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        load = pool.submit(
            wrk.run,
            stack.url("PROD_PORT") + "/",
            LOAD,
            seconds=LOAD_SECONDS,
            connections=LOAD_CLIENTS,
            threads=2,
            timeout_s=READ_TIMEOUT_S + 3,
        )
        time.sleep(3)
        start = time.monotonic()
        for replica in old:
            scale_backend(stack, 3)  # start first: a third replica, healthy
            stop_as_swarm_does(replica)
        replaced_s = time.monotonic() - start
        result = load.result().result
    new = backends(stack)
    measure(f"discovery ({DISCOVERY}): rolling replacement of 2 backends", replaced_s, "s")
    measure(f"discovery ({DISCOVERY}): requests during it", result["requests"], "requests")
    measure(f"discovery ({DISCOVERY}): failed requests during it", result["errors"], "requests")
    measure(f"discovery ({DISCOVERY}): latency max during it", result["max_ms"], "ms")
    assert replaced_s < LOAD_SECONDS - 5, f"the replacement took {replaced_s:.0f} s, longer than the load"
    assert len(new) == 2 and not set(new) & set(old), (old, new)
    statuses = result["statuses"]
    failed = f"{result['error_kinds']}, statuses {statuses}; nginx said:\n{nginx_errors(stack)}"
    assert result["error_kinds"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, failed
    assert sum(statuses.values()) == result["requests"] and set(statuses) == {200, 201}, failed
    assert_never_reloaded(stack, frontend, processes)


def test_no_backend_left_is_a_fast_502_and_the_origin_recovers_without_a_reload(stack, measure):
    """Every replica stopped: their addresses go out of DNS, and the name does not resolve any
    more. Right after, nginx may still hold them (cached for a second): refused or not
    connected within 500 ms each. Then the 502 is nginx's at once. A replica started again is
    used as soon as it listens."""
    origin = stack.url("PROD_PORT")
    frontend, processes = stack.inspect("frontend", prod=True), nginx_processes(stack)
    replicas = backends(stack)
    assert origin_ok(stack)
    docker("stop", *replicas)
    try:
        first = [timed("GET", origin + path) for path in ("/api/v1/todos", "/health")]
        time.sleep(2.5)  # past nginx's cache of the last answer (valid=1s, whole seconds)
        gone = [timed("GET", origin + path) for path in ("/api/v1/todos", "/health") for _ in range(3)]
    finally:
        docker("start", *replicas)
    for response, _ in first + gone:
        assert_backend_unavailable(response)
    healthy = wait_until(lambda: all(healthy_container(name) for name in replicas), timeout=120, interval=0.1)
    assert healthy is not None, "the backends did not become healthy again"
    back = wait_until(lambda: origin_ok(stack), timeout=BACK_DEADLINE_S + 10)
    measure(f"discovery ({DISCOVERY}): 502 right after the backends stopped (max)", max(s for _, s in first), "s")
    measure(f"discovery ({DISCOVERY}): 502 once the name does not resolve (max)", max(s for _, s in gone), "s")
    assert max(s for _, s in first) < 2 * CONNECT_TIMEOUT_S + 0.5, first
    assert max(s for _, s in gone) < NAME_GONE_DEADLINE_S, gone
    assert back is not None, "the origin did not answer from the backends again"
    measure(f"discovery ({DISCOVERY}): origin back after the backends are healthy", back, "s")
    assert back <= BACK_DEADLINE_S, f"back {back:.1f} s after the backends were healthy"
    assert_never_reloaded(stack, frontend, processes)


def healthy_container(name):
    state = docker("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}", name).stdout.split()
    return state == ["running", "healthy"]


def test_a_black_holed_backend_is_skipped_for_the_other(stack, measure):
    """One replica's address drops every packet to the API port (a firewall rule in its network
    namespace: what a vanished node looks like, DNS still naming it). Each request that tries
    it first goes to the other after the 500 ms connect timeout: a POST too, since it was never
    sent."""
    origin = stack.url("PROD_PORT")
    black_holed, _ = backends(stack)
    undo = drop(black_holed, "-p", "tcp", "--dport", "8000", "-j", "DROP")
    try:
        answers = [timed("GET", origin + "/api/v1/todos") for _ in range(12)]
        answers += [timed("POST", origin + "/api/v1/todos", json={"title": "black hole"}) for _ in range(4)]
    finally:
        undo()
    assert [r.status_code for r, _ in answers] == [200] * 12 + [201] * 4, [(r.status_code, r.text) for r, _ in answers]
    seconds = [s for _, s in answers]
    measure(f"discovery ({DISCOVERY}): request with one backend black-holed (max)", max(seconds), "s")
    assert max(seconds) < 2 * CONNECT_TIMEOUT_S, seconds
    assert any(s >= CONNECT_TIMEOUT_S for s in seconds), f"no request tried the black-holed backend: {seconds}"


def test_a_frozen_backend_is_skipped_for_the_other_after_the_read_timeout(stack, measure):
    """One replica paused: its kernel still accepts connections, nothing answers. A GET sent to
    it is sent again to the other after proxy_read_timeout (12 s), not 60 s."""
    origin = stack.url("PROD_PORT")
    frozen, _ = backends(stack)
    docker("pause", frozen)
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: timed("GET", origin + "/api/v1/todos"), range(12)))
    finally:
        docker("unpause", frozen)
    assert [r.status_code for r, _ in answers] == [200] * 12, [(r.status_code, r.text) for r, _ in answers]
    seconds = [s for _, s in answers]
    measure(f"discovery ({DISCOVERY}): GET with one backend frozen (max)", max(seconds), "s")
    assert READ_TIMEOUT_S <= max(seconds) < READ_TIMEOUT_S + 3, seconds
