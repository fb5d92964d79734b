"""The production stack under load, through the frontend's origin: 50 concurrent clients
for 20 seconds, reading the list and creating todos, get nothing but 2xx answers; every
todo they created is in the database; the database connections never pass what the
backend's pools may hold (WEB_CONCURRENCY workers x DB_POOL_SIZE each), during the load
or after it."""

import shutil
import subprocess

import pytest

from stackctl.bench import wrk
from stackctl.envfile import read_env
from tests.integration.stacks import http

CLIENTS = 50
SECONDS = 20
POST_EVERY = 5  # one request in five creates a todo; the others read the first page

# The harness (stackctl.bench.wrk, as the bench uses it) drives the load with this request
# mix, and counts the statuses; its done() hook prints the result.
MIX = wrk.read_write_mix(POST_EVERY, "load") + wrk.COUNT_STATUSES


@pytest.fixture(scope="module")
def stack(prod_stack):
    return prod_stack


def psql(stack, query):
    """One value from the stack's database, as the user and database of the copy's .env."""
    env = read_env(stack.path / ".env")
    result = subprocess.run(
        [
            "docker",
            "exec",
            stack.container("postgres", prod=True),
            "psql",
            "-U",
            env.get("POSTGRES_USER") or "app",
            "-d",
            env.get("POSTGRES_DB") or "app",
            "-tAc",
            query,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def client_connections(stack):
    """The backend's connections: client backends on the app's database, psql's own left out."""
    database = read_env(stack.path / ".env").get("POSTGRES_DB") or "app"
    return psql(
        stack,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
        f"'{database}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )


def backend_setting(stack, name):
    """A setting as the running backend has it (its environment, else the app's default)."""
    code = f"from app.core.config import Settings; print(Settings().{name})"
    container = stack.container("backend", prod=True)
    result = subprocess.run(["docker", "exec", container, "python", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def run_wrk(stack, peaks):
    """The load, sampling the database connections (into `peaks`) about every second meanwhile."""
    assert shutil.which("wrk"), "wrk not found: `inv setup --test-tools` installs it"
    return wrk.run(
        stack.url("PROD_PORT") + "/",
        MIX,
        seconds=SECONDS,
        connections=CLIENTS,
        threads=2,
        timeout_s=10,
        sample=lambda: peaks.append(client_connections(stack)),
        sample_every=1,
    )


def test_fifty_clients_for_twenty_seconds_get_only_2xx_within_the_pools_connections(stack, measure, tmp_path):
    origin = stack.url("PROD_PORT")
    assert http("GET", origin + "/health").json()["status"] == "ok"
    for i in range(20):  # the list has a full first page to read
        assert http("POST", origin + "/api/v1/todos", json={"title": f"seed {i}"}).status_code == 201
    todos_before = psql(stack, "SELECT count(*) FROM todos")
    connections_before = client_connections(stack)

    peaks = []
    measured = run_wrk(stack, peaks)
    result = measured.result

    statuses = result["statuses"]
    measure("load: requests/s (50 clients, GET+POST)", result["rps"], "req/s")
    measure("load: latency p50", result["p50_ms"], "ms")
    measure("load: latency p99", result["p99_ms"], "ms")
    measure("load: DB connections before", connections_before, "connections")
    measure("load: DB connections peak", max(peaks, default=0), "connections")
    print(measured.output)
    assert result["requests"] > 0 and sum(statuses.values()) == result["requests"], result
    assert not [code for code in statuses if not 200 <= code < 300], f"non-2xx answers: {statuses}"
    assert result["error_kinds"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, result
    assert statuses.get(200) and statuses.get(201), f"the mix did not happen: {statuses}"
    # Every 201 is a stored todo; requests still in flight when wrk stopped may add a few more.
    stored = psql(stack, "SELECT count(*) FROM todos") - todos_before
    assert statuses[201] <= stored <= statuses[201] + CLIENTS, f"{statuses[201]} created, {stored} stored"

    workers = int(
        dict(item.split("=", 1) for item in stack.inspect("backend", prod=True)["Config"]["Env"])["WEB_CONCURRENCY"]
    )
    pool_limit = workers * backend_setting(stack, "DB_POOL_SIZE")
    after = client_connections(stack)
    measure("load: DB connections after", after, "connections")
    assert max(peaks + [after]) <= pool_limit, f"the pools hold at most {pool_limit} connections: {peaks}, {after}"
    assert http("GET", origin + "/health").json()["status"] == "ok"
