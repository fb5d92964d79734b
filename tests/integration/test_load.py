"""The production stack under load, through the frontend's origin: 50 concurrent clients
for 20 seconds, reading the list and creating todos, get nothing but 2xx answers; every
todo they created is in the database; afterwards the database connections go back to
what the backend's pools keep (WEB_CONCURRENCY workers x DB_POOL_SIZE each)."""
import json
import shutil
import subprocess
import threading
import time

import pytest

from stackctl.envfile import read_env
from tests.integration.stacks import http, running_stack

CLIENTS = 50
SECONDS = 20
POST_EVERY = 5  # one request in five creates a todo; the others read the first page
WAIT_FOR_POOL_S = 30  # bounded wait for overflow connections to be closed

# wrk drives the load. Each thread counts the statuses it got; done() merges them and
# prints one JSON line with the totals, the errors and the latency percentiles.
MIX_SCRIPT = """
local counter = 0
local threads = {}
statuses = {}

function setup(thread)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  if counter %% %(post_every)d == 0 then
    return wrk.format("POST", "/api/v1/todos", {["Content-Type"] = "application/json"},
                      '{"title": "load ' .. counter .. '"}')
  end
  return wrk.format("GET", "/api/v1/todos")
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%%s": %%d', status, n))
  end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests": %%d, "duration_us": %%d, "statuses": {%%s}, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, table.concat(parts, ", "), e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@pytest.fixture(scope="module")
def stack():
    with running_stack("todostack-load", prod=True) as stack:
        yield stack


def psql(stack, query):
    """One value from the stack's database, as the user and database of the copy's .env."""
    env = read_env(stack.path / ".env")
    result = subprocess.run(["docker", "exec", stack.container("postgres", prod=True), "psql",
                             "-U", env.get("POSTGRES_USER") or "app", "-d", env.get("POSTGRES_DB") or "app",
                             "-tAc", query], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def client_connections(stack):
    """The backend's connections: client backends on the app's database, psql's own left out."""
    database = read_env(stack.path / ".env").get("POSTGRES_DB") or "app"
    return psql(stack, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                       f"'{database}' AND backend_type = 'client backend' AND pid <> pg_backend_pid()")


def backend_setting(stack, name, default):
    """A setting as the running backend has it: its environment, else the app's default."""
    env = dict(item.split("=", 1) for item in stack.inspect("backend", prod=True)["Config"]["Env"])
    return int(env.get(name) or default)


def sample_connections(stack, stop, peaks):
    """Until `stop` is set (and for at most the load's length plus a margin), the highest count."""
    deadline = time.monotonic() + SECONDS + 30
    while not stop.is_set() and time.monotonic() < deadline:
        peaks.append(client_connections(stack))
        stop.wait(1)


def run_wrk(stack, tmp_path):
    wrk = shutil.which("wrk")
    assert wrk, "wrk not found: `inv setup --test-tools` installs it"
    script = tmp_path / "mix.lua"
    script.write_text(MIX_SCRIPT % {"post_every": POST_EVERY})
    result = subprocess.run([wrk, "--threads", "2", "--connections", str(CLIENTS), "--duration", f"{SECONDS}s",
                             "--timeout", "10s", "--script", str(script), stack.url("PROD_PORT") + "/"],
                            capture_output=True, text=True, timeout=SECONDS + 60)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    return json.loads(line.split(" ", 1)[1]), result.stdout


def test_fifty_clients_for_twenty_seconds_get_only_2xx_and_the_pool_shrinks_back(stack, measure, tmp_path):
    origin = stack.url("PROD_PORT")
    assert http("GET", origin + "/health").json()["status"] == "ok"
    for i in range(20):  # the list has a full first page to read
        assert http("POST", origin + "/api/v1/todos", json={"title": f"seed {i}"}).status_code == 201
    todos_before = psql(stack, "SELECT count(*) FROM todos")
    connections_before = client_connections(stack)

    stop, peaks = threading.Event(), []
    sampler = threading.Thread(target=sample_connections, args=(stack, stop, peaks), daemon=True)
    sampler.start()
    try:
        result, output = run_wrk(stack, tmp_path)
    finally:
        stop.set()
        sampler.join(timeout=40)

    statuses = {int(code): count for code, count in result["statuses"].items()}
    seconds = result["duration_us"] / 1e6
    measure("load: requests/s (50 clients, GET+POST)", result["requests"] / seconds, "req/s")
    measure("load: latency p50", result["p50_us"] / 1000, "ms")
    measure("load: latency p99", result["p99_us"] / 1000, "ms")
    measure("load: DB connections before", connections_before, "connections")
    measure("load: DB connections peak", max(peaks, default=0), "connections")
    print(output)
    assert result["requests"] > 0 and sum(statuses.values()) == result["requests"], result
    assert not [code for code in statuses if not 200 <= code < 300], f"non-2xx answers: {statuses}"
    assert result["errors"] == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, result["errors"]
    assert statuses.get(200) and statuses.get(201), f"the mix did not happen: {statuses}"
    # Every 201 is a stored todo; requests still in flight when wrk stopped may add a few more.
    stored = psql(stack, "SELECT count(*) FROM todos") - todos_before
    assert statuses[201] <= stored <= statuses[201] + CLIENTS, f"{statuses[201]} created, {stored} stored"

    pool_limit = backend_setting(stack, "WEB_CONCURRENCY", 2) * backend_setting(stack, "DB_POOL_SIZE", 5)
    counts = []
    start = time.monotonic()
    while time.monotonic() - start < WAIT_FOR_POOL_S:
        counts.append(client_connections(stack))
        if counts[-1] <= pool_limit:
            break
        time.sleep(1)
    measure("load: DB connections after", counts[-1], "connections")
    assert counts[-1] <= pool_limit, (f"{counts[-1]} database connections {WAIT_FOR_POOL_S} s after the load; "
                                      f"the pools keep at most {pool_limit}: {counts}")
    assert http("GET", origin + "/health").json()["status"] == "ok"
