"""`inv smoke` against real stacks: the session's shared dev and production stacks (each a
copy of the working tree with its own project names and ports; tests/conftest.py). Also a
stack that is not up, and /metrics through the production frontend: closed to every address."""

import json
import subprocess
import sys
import time

import pytest

from stackctl.envfile import read_env
from stackctl.smoke import first_origin
from tests.helpers import assert_one_line_failure
from tests.integration.stacks import StackCopy
from tests.smoke import CHECKS as NAMES

PORT = {"dev": "FRONTEND_PORT", "prod": "PROD_PORT"}


def flags(mode):
    return ["--prod"] if mode == "prod" else []


@pytest.fixture(scope="module")
def stack(request):
    """A running stack: ("dev" | "prod", StackCopy). Parametrized indirectly by the tests."""
    mode = request.param
    return mode, request.getfixturevalue(f"{mode}_stack")


BOTH = pytest.mark.parametrize("stack", ["dev", "prod"], indirect=True)
PROD = pytest.mark.parametrize("stack", ["prod"], indirect=True)


@BOTH
def test_smoke_passes_every_check(stack, measure):
    mode, copy = stack
    start = time.monotonic()
    result = copy.ok("smoke", *flags(mode))
    measure(f"{mode}: inv smoke", time.monotonic() - start, "s")
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"smoke: {copy.url(PORT[mode])} ready after ")
    assert [line.split()[:2] for line in lines[1:-1]] == [["ok", name] for name in NAMES], result.stdout
    assert lines[-1].startswith(f"smoke: {len(NAMES)} passed, 0 failed in ")
    assert "Traceback" not in result.stdout + result.stderr


@BOTH
def test_smoke_json_is_one_document_with_every_check_ok(stack):
    mode, copy = stack
    document = json.loads(copy.ok("smoke", "--json", *flags(mode)).stdout)
    assert document["base_url"] == copy.url(PORT[mode]) and document["ready"] is True
    assert document["origin"] == first_origin(read_env(copy.path / ".env").get("CORS_ORIGINS"))
    assert [check["name"] for check in document["checks"]] == NAMES
    assert [check["name"] for check in document["checks"] if not check["ok"]] == []
    assert document["summary"] == {**document["summary"], "passed": len(NAMES), "failed": 0, "ok": True}


@BOTH
def test_an_origin_the_stack_does_not_allow_fails_the_cors_check(stack):
    mode, copy = stack
    result = copy.inv("smoke", "--origin", "https://not-allowed.example", *flags(mode))
    assert_one_line_failure(result, f"smoke: cors-allowed failed against {copy.url(PORT[mode])}")
    assert "FAIL  cors-allowed" in result.stdout and f"smoke: {len(NAMES) - 1} passed, 1 failed" in result.stdout


def in_frontend_network(copy, *command):
    """A host command inside the prod frontend container's network namespace (root only)."""
    pid = copy.inspect("frontend", prod=True)["State"]["Pid"]
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *command], capture_output=True, text=True, timeout=30)


FETCH = (
    "import http.client, sys; c = http.client.HTTPConnection('127.0.0.1', 8080, timeout=5, "
    "source_address=(sys.argv[1], 0)); c.request('GET', sys.argv[2]); print(c.getresponse().status)"
)


@PROD
def test_metrics_through_the_prod_frontend_are_closed_to_every_address(stack):
    """nginx sees each request's source address. Extra addresses on the frontend's loopback
    interface let requests to 127.0.0.1:8080 come from a public or a private address: a
    private one (a load balancer's) is no way in either; the metrics have a port of their own."""
    _, copy = stack
    sources = {"198.18.0.1": 404, "100.64.0.1": 404, "10.200.0.1": 404, "192.168.200.1": 404, "127.0.0.1": 404}
    added = []
    try:
        for address in sources:
            if address != "127.0.0.1":
                result = in_frontend_network(copy, "ip", "address", "add", f"{address}/32", "dev", "lo")
                assert result.returncode == 0, result.stderr
                added.append(address)
        got = {
            address: in_frontend_network(copy, sys.executable, "-c", FETCH, address, "/metrics").stdout.strip()
            for address in sources
        }
        health = in_frontend_network(copy, sys.executable, "-c", FETCH, "198.18.0.1", "/health").stdout.strip()
    finally:
        for address in added:
            in_frontend_network(copy, "ip", "address", "del", f"{address}/32", "dev", "lo")
    assert got == {address: str(status) for address, status in sources.items()}
    assert health == "200", "the public address must reach the app, only /metrics is closed to it"


@PROD
def test_smoke_with_the_backend_stopped_says_the_stack_is_not_ready(stack):
    """The frontend answers, the backend does not: nginx's 502 for /health is the reason given.
    (nginx answers within its 0.5 s connect timeout and, a second after the stop, at once.)"""
    _, copy = stack
    subprocess.run(["docker", "stop", copy.container("backend", prod=True)], capture_output=True, check=True)
    try:
        start = time.monotonic()
        result = copy.inv("smoke", "--prod", "--timeout", "15")
        took = time.monotonic() - start
    finally:
        copy.ok("up", "--prod")
    assert_one_line_failure(result, f"smoke: {copy.url('PROD_PORT')} not ready after 15.")
    assert "(last answer: /health answered 502); is the stack up? `inv ps --prod` shows it" in result.stderr
    assert took < 25, f"took {took:.1f} s"


def test_smoke_against_a_stack_that_is_not_up_fails_in_one_line():
    copy = StackCopy("todostack-smoke-down")
    try:
        for mode in ("dev", "prod"):
            start = time.monotonic()
            result = copy.inv("smoke", "--timeout", "3", *flags(mode))
            took = time.monotonic() - start
            assert_one_line_failure(result, f"smoke: {copy.url(PORT[mode])} not ready after 3.")
            assert "(last answer: connection refused)" in result.stderr
            assert took < 10, f"took {took:.1f} s"
    finally:
        copy.remove()
