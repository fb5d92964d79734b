"""The rate limiter on a production stack of its own (a low limit, two backend workers), from
outside through the frontend's origin as a client sees it, and from inside the backend's
container for what the origin cannot show: the limit bites at the configured count and not
before, the workers share one budget, a client's forged X-Real-IP or X-Forwarded-For does not
move it to another budget, and with Redis stopped or frozen the API answers without a 5xx and
/health shows Redis degraded, until limiting resumes once Redis is back. And Redis's own
container: hardened like the others, on the internal network only, published nowhere."""

import json
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.stacks import http, running_stack, wait_until

LIMIT = 30
WINDOW_S = 60
TODOS = "/api/v1/todos"


@pytest.fixture(scope="module")
def stack():
    settings = {"RATE_LIMIT_REQUESTS": str(LIMIT), "RATE_LIMIT_WINDOW_S": str(WINDOW_S), "WEB_CONCURRENCY": "2"}
    with running_stack("todostack-ratelimit", prod=True, settings=settings) as stack:
        yield stack


def docker(*args, check=True):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert not check or result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


def redis_cli(stack, *args):
    return docker("exec", stack.container("redis", prod=True), "redis-cli", *args).stdout


def counters(stack):
    """The limiter's counters in Redis: {key: count}."""
    keys = redis_cli(stack, "--scan", "--pattern", "ratelimit:*").split()
    return {key: int(redis_cli(stack, "GET", key)) for key in keys}


@pytest.fixture(autouse=True)
def fresh_budgets(stack):
    """Every test starts with no counter (Redis holds nothing else), and Redis running."""
    container = stack.container("redis", prod=True)
    if stack.inspect("redis", prod=True)["State"]["Paused"]:
        docker("unpause", container)
    docker("start", container)
    assert wait_until(lambda: redis_cli(stack, "PING").strip() == "PONG", 30, interval=0.2) is not None
    redis_cli(stack, "FLUSHALL")


def origin(stack, path=TODOS, **kwargs):
    return http("GET", stack.url("PROD_PORT") + path, **kwargs)


def statuses(stack, count, **kwargs):
    return [origin(stack, **kwargs).status_code for _ in range(count)]


def test_the_limit_bites_at_the_configured_count_and_not_before(stack):
    assert statuses(stack, LIMIT) == [200] * LIMIT
    refused = origin(stack)
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_S
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json() == {
        "detail": f"Too many requests: at most {LIMIT} per {WINDOW_S} s; retry in {retry_after} s",
        "retry_after_s": retry_after,
    }
    # What is not the API is not limited.
    assert origin(stack, "/health").status_code == 200
    assert origin(stack, "/").status_code == 200
    # One client, one counter: the address nginx was connected from, not the proxy's own.
    keys = counters(stack)
    assert len(keys) == 1 and next(iter(keys.values())) == LIMIT + 1, keys
    frontend = stack.inspect("frontend", prod=True)["NetworkSettings"]["Networks"]
    assert not {f"ratelimit:{net['IPAddress']}" for net in frontend.values()} & set(keys), keys


def test_a_forged_x_real_ip_or_x_forwarded_for_does_not_change_the_budget(stack):
    answers = [
        origin(stack, headers={"X-Real-IP": f"192.0.2.{n}", "X-Forwarded-For": f"198.51.100.{n}"}).status_code
        for n in range(1, LIMIT + 2)
    ]
    assert answers == [200] * LIMIT + [429]
    keys = counters(stack)
    assert len(keys) == 1, keys
    assert not any(forged in key for key in keys for forged in ("192.0.2.", "198.51.100.")), keys


# The API straight from inside the backend's container, one new connection per request, all at
# once (so both workers accept some): bash's /dev/tcp, as the container's health check does.
BURST = """
for n in $(seq {count}); do
    (exec 3<>/dev/tcp/127.0.0.1/8000
     printf 'GET {path} HTTP/1.0\\r\\nHost: backend\\r\\nX-Real-IP: 192.0.2.'$n'\\r\\n\\r\\n' >&3
     read -r _ status _ <&3; echo "$status") &
done
wait
"""
# Requests each worker process has counted for the list route, from their metrics files.
PER_WORKER = """
import glob, json
from prometheus_client.multiprocess import MultiProcessCollector
counts = {}
for path in glob.glob("/tmp/prometheus/counter_*.db"):
    samples = [s for m in MultiProcessCollector.merge([path]) for s in m.samples if s.name == "http_requests_total"]
    counts[path] = sum(s.value for s in samples if s.labels["path"] == "/api/v1/todos")
print(json.dumps(counts))
"""


def per_worker(stack):
    backend = stack.container("backend", prod=True)
    return json.loads(docker("exec", backend, "python", "-c", PER_WORKER).stdout)


def test_two_workers_share_one_budget(stack):
    backend = stack.container("backend", prod=True)
    before, unchecked_before = per_worker(stack), unchecked_requests(stack)
    script = BURST.format(count=2 * LIMIT, path=f"{TODOS}?limit=1")
    answers = Counter(docker("exec", backend, "bash", "-c", script).stdout.split())
    unchecked = unchecked_requests(stack) - unchecked_before
    assert answers == {"200": LIMIT, "429": LIMIT}, f"{answers}; {unchecked} went through unchecked"
    served = {path: count - before.get(path, 0) for path, count in per_worker(stack).items()}
    assert sum(1 for count in served.values() if count > 0) == 2, served
    # The backend's own loopback is no trusted proxy: its X-Real-IP counted for nothing.
    assert set(counters(stack)) == {"ratelimit:127.0.0.1"}


def test_redis_stopped_then_started_no_5xx_health_degraded_and_limiting_resumes(stack):
    unchecked_before = unchecked_requests(stack)
    docker("stop", stack.container("redis", prod=True))
    with ThreadPoolExecutor(4) as pool:
        during = list(pool.map(lambda _: origin(stack).status_code, range(2 * LIMIT)))
    assert during == [200] * (2 * LIMIT)
    health = origin(stack, "/health")
    assert health.status_code == 200
    assert (health.json()["status"], health.json()["redis"]) == ("ok", "degraded")
    # Each of them counted as let through unchecked, in every worker's numbers.
    assert unchecked_requests(stack) - unchecked_before == 2 * LIMIT

    docker("start", stack.container("redis", prod=True))
    assert wait_until(lambda: origin(stack, "/health").json()["redis"] == "connected", 30, interval=0.2) is not None
    # Within a few requests of Redis answering again (each worker asks it again at most
    # RATE_LIMIT_RETRY_S after its last failure), the budget counts again: a 429 comes.
    after = []
    assert wait_until(lambda: after.append(origin(stack).status_code) or after[-1] == 429, 30) is not None
    assert set(after) <= {200, 429} and len(after) > LIMIT, after


def test_redis_frozen_no_5xx_and_health_degraded(stack):
    container = stack.container("redis", prod=True)
    docker("pause", container)
    try:
        assert statuses(stack, 2 * LIMIT) == [200] * (2 * LIMIT)
        health = origin(stack, "/health")
        assert (health.status_code, health.json()["redis"]) == (200, "degraded")
    finally:
        docker("unpause", container)
    assert wait_until(lambda: origin(stack, "/health").json()["redis"] == "connected", 30, interval=0.2) is not None


def unchecked_requests(stack):
    """The requests let through unchecked for want of Redis, from the backend's metrics port
    (on the compose networks only): every worker's rate_limit_unchecked_total{reason="redis"}."""
    scrape = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().decode())"
    text = docker("exec", stack.container("backend", prod=True), "python", "-c", scrape).stdout
    sample = 'rate_limit_unchecked_total{reason="redis"} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample))


def test_redis_is_hardened_internal_and_published_nowhere(stack):
    redis = stack.inspect("redis", prod=True)
    host = redis["HostConfig"]
    assert redis["Config"]["User"] == "999:999"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0
    assert redis["Config"]["StopTimeout"], "no stop grace period"
    assert host["LogConfig"]["Type"] == "json-file" and host["LogConfig"]["Config"].get("max-size")
    assert not host["PortBindings"], host["PortBindings"]
    assert list(redis["NetworkSettings"]["Networks"]) == [f"{stack.prod_project}_data"]
    # No volume: the counters are not kept (nothing to persist), /data is a tmpfs.
    assert not [m for m in redis["Mounts"] if m["Type"] == "volume"], redis["Mounts"]
    assert redis_cli(stack, "CONFIG", "GET", "save").splitlines() == ["save", ""]
    assert redis_cli(stack, "CONFIG", "GET", "appendonly").splitlines() == ["appendonly", "no"]
    status = docker("exec", stack.container("redis", prod=True), "grep", "^CapEff", "/proc/1/status").stdout
    assert status.split()[1] == "0000000000000000", status
