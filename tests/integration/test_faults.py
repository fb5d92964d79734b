"""Faults the production stack gets through by itself: the database going away and coming
back, the backend's process dying, the whole stack restarted. Each through the frontend's
origin, as a browser sees it, with the data checked before and after.

The backend gone (stopped, or removed and started again at another address): the origin
answers for it at once, nginx's JSON 502 (the frontend re-resolves the backend every second
and connects with a short timeout), and proxies again as soon as a backend is back.

Which ways of killing the backend its restart policy (`unless-stopped`) honours, on
Engine 20.10: the main process exiting by itself (here `kill 1` from inside the container,
or a crash) is restarted; `docker kill`, whatever the signal, counts as stopping it by hand,
like `docker stop`, and leaves it down."""

import subprocess
import time
import uuid

import pytest
import requests

from tests.integration.stacks import http, running_stack, wait_until

HEALTH_DEADLINE_S = 2.0  # /health answers within this while the database is down
RECOVERY_DEADLINE_S = 10.0  # ... and says ok within this once it is back
BACKEND_GONE_DEADLINE_S = 1.0  # the origin's 502 for the API and /health, the backend gone
BACKEND_BACK_DEADLINE_S = 3.0  # ... and its answers from the backend once that is healthy


@pytest.fixture(scope="module")
def stack():
    with running_stack("todostack-faults", prod=True) as stack:
        yield stack


def docker(*args, check=True):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    assert not check or result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


def api(stack, method, path, **kwargs):
    return http(method, stack.url("PROD_PORT") + path, **kwargs)


def timed(method, url, **kwargs):
    """(response, seconds); a client timeout well past every deadline catches a hang."""
    start = time.monotonic()
    response = requests.request(method, url, timeout=15, **kwargs)
    return response, time.monotonic() - start


def healthy(stack):
    return api(stack, "GET", "/health").status_code == 200


def container_healthy(stack, service):
    state = stack.inspect(service, prod=True)["State"]
    return state["Status"] == "running" and state.get("Health", {}).get("Status") == "healthy"


def origin_ok(stack):
    return api(stack, "GET", "/api/v1/todos").status_code == 200 and healthy(stack)


def web_address(stack):
    """The backend's address on the network it shares with the frontend."""
    networks = stack.inspect("backend", prod=True)["NetworkSettings"]["Networks"]
    return networks[f"{stack.prod_project}_web"]["IPAddress"]


def assert_backend_unavailable(response):
    request = response.request
    assert response.status_code in (502, 503), f"{request.url}: {response.status_code} {response.text}"
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    assert response.json() == {"detail": "Backend unavailable"}


def answers_without_backend(stack, rounds=6):
    """Seconds of each answer of the origin for the API and /health, from right after the
    backend went (the frontend still has its address) to past the frontend's next re-resolve."""
    seconds = []
    for _ in range(rounds):
        for path in ("/api/v1/todos", "/health"):
            response, took = timed("GET", stack.url("PROD_PORT") + path)
            seconds.append(took)
            assert_backend_unavailable(response)
        time.sleep(0.2)
    return seconds


def create_todos(stack, count, label):
    todos = []
    for i in range(count):
        response = api(stack, "POST", "/api/v1/todos", json={"title": f"{label} {i} {uuid.uuid4().hex[:6]}"})
        assert response.status_code == 201, response.text
        todos.append(response.json())
    return todos


def assert_still_there(stack, todos):
    for todo in todos:
        response = api(stack, "GET", f"/api/v1/todos/{todo['id']}")
        assert response.status_code == 200, f"todo {todo['id']} lost: {response.status_code} {response.text}"
        assert response.json() == todo


def assert_round_trip(stack):
    [todo] = create_todos(stack, 1, "round trip")
    assert api(stack, "PATCH", f"/api/v1/todos/{todo['id']}", json={"done": True}).json()["done"] is True
    assert api(stack, "DELETE", f"/api/v1/todos/{todo['id']}").status_code == 204
    assert api(stack, "GET", f"/api/v1/todos/{todo['id']}").status_code == 404


def assert_clean_503(response):
    request = response.request
    assert response.status_code == 503, f"{request.method} {request.url}: {response.status_code} {response.text}"
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    assert response.json() == {"detail": "Database unavailable"}
    assert "Traceback" not in response.text and "psycopg" not in response.text


def test_database_down_gives_fast_503s_and_the_backend_recovers_without_restarting(stack, measure):
    origin = stack.url("PROD_PORT")
    before = create_todos(stack, 2, "before the outage")
    backend = stack.inspect("backend", prod=True)
    postgres = stack.container("postgres", prod=True)
    docker("stop", postgres)
    try:
        health_seconds = []
        for _ in range(5):
            response, seconds = timed("GET", origin + "/health")
            health_seconds.append(seconds)
            assert response.status_code == 503, response.text
            assert response.json()["database"] == "unavailable" and response.json()["status"] == "degraded"
        api_seconds = []
        for method, path, body in [
            ("GET", "/api/v1/todos", None),
            ("POST", "/api/v1/todos", {"title": "lost"}),
            ("GET", f"/api/v1/todos/{before[0]['id']}", None),
            ("PATCH", f"/api/v1/todos/{before[0]['id']}", {"done": True}),
            ("DELETE", f"/api/v1/todos/{before[1]['id']}", None),
        ]:
            response, seconds = timed(method, origin + path, json=body)
            api_seconds.append(seconds)
            assert_clean_503(response)
            assert response.headers.get("Retry-After") == "5"
    finally:
        start = time.monotonic()
        docker("start", postgres)
    recovered = wait_until(lambda: healthy(stack), timeout=RECOVERY_DEADLINE_S + 20)
    recovery_s = None if recovered is None else time.monotonic() - start
    measure("faults: /health with the database down (max)", max(health_seconds), "s")
    measure("faults: API call with the database down (max)", max(api_seconds), "s")
    assert max(health_seconds) < HEALTH_DEADLINE_S, health_seconds
    assert recovery_s is not None, "/health never said ok again after the database came back"
    measure("faults: recovery after the database is back", recovery_s, "s")
    assert recovery_s <= RECOVERY_DEADLINE_S, f"recovered after {recovery_s:.1f} s"

    after = stack.inspect("backend", prod=True)
    assert after["State"]["StartedAt"] == backend["State"]["StartedAt"], "the backend was restarted"
    assert after["RestartCount"] == backend["RestartCount"]
    assert_still_there(stack, before)
    assert_round_trip(stack)


def test_backend_process_exiting_is_restarted_by_the_restart_policy(stack, measure):
    todos = create_todos(stack, 2, "before the crash")
    before = stack.inspect("backend", prod=True)
    backend = stack.container("backend", prod=True)
    start = time.monotonic()
    # uvicorn's master is PID 1: SIGTERM makes it shut down and exit; no `docker stop` involved.
    docker("exec", backend, "sh", "-c", "kill 1")
    restarted = wait_until(
        lambda: stack.inspect("backend", prod=True)["RestartCount"] > before["RestartCount"], timeout=30
    )
    assert restarted is not None, "the restart policy did not restart the backend"
    measure("faults: backend exit -> restarted by the policy", restarted, "s")
    back = wait_until(lambda: container_healthy(stack, "backend") and healthy(stack), timeout=90, interval=0.5)
    assert back is not None, "the restarted backend did not become healthy"
    measure("faults: backend exit -> healthy again", time.monotonic() - start, "s")
    assert stack.inspect("backend", prod=True)["State"]["StartedAt"] != before["State"]["StartedAt"]
    assert_still_there(stack, todos)
    assert_round_trip(stack)


def test_docker_kill_counts_as_a_manual_stop_and_up_brings_the_backend_back(stack, measure):
    before = stack.inspect("backend", prod=True)
    docker("kill", "--signal", "KILL", stack.container("backend", prod=True))
    try:
        # The policy's first restart comes after 100 ms; seconds later it would have happened.
        time.sleep(3)
        after = stack.inspect("backend", prod=True)
        assert after["State"]["Status"] == "exited" and after["RestartCount"] == before["RestartCount"]
        # nginx's own answer (how fast: test_backend_stopped_gives_fast_502s_...).
        response, seconds = timed("GET", stack.url("PROD_PORT") + "/health")
        measure("faults: /health with the backend down (nginx)", seconds, "s")
        assert response.status_code == 502 and response.json() == {"detail": "Backend unavailable"}
    finally:
        stack.ok("up", "--prod")
    assert healthy(stack)
    assert_round_trip(stack)


def test_backend_stopped_gives_fast_502s_and_the_origin_recovers_once_it_is_healthy(stack, measure):
    backend = stack.container("backend", prod=True)
    frontend = stack.inspect("frontend", prod=True)
    assert origin_ok(stack)
    docker("stop", backend)
    try:
        seconds = answers_without_backend(stack)
    finally:
        docker("start", backend)
    came_back = wait_until(lambda: container_healthy(stack, "backend"), timeout=120, interval=0.1)
    assert came_back is not None, "the backend did not become healthy again"
    back = wait_until(lambda: origin_ok(stack), timeout=BACKEND_BACK_DEADLINE_S + 10)
    measure("faults: origin's 502, backend stopped (max)", max(seconds), "s")
    measure("faults: origin's 502, backend stopped (median)", sorted(seconds)[len(seconds) // 2], "s")
    assert max(seconds) < BACKEND_GONE_DEADLINE_S, seconds
    assert back is not None, "the origin did not answer from the backend again"
    measure("faults: origin back after the backend is healthy", back, "s")
    assert back <= BACKEND_BACK_DEADLINE_S, f"back {back:.1f} s after the backend was healthy"
    assert stack.inspect("frontend", prod=True)["State"]["StartedAt"] == frontend["State"]["StartedAt"]
    assert_round_trip(stack)


def test_backend_recreated_at_another_address_is_found_without_restarting_the_frontend(stack, measure):
    """Removed, then created again by `inv up`: a placeholder takes the old address meanwhile,
    so the new backend has another one, which the frontend must pick up by itself."""
    before = stack.inspect("backend", prod=True)
    frontend = stack.inspect("frontend", prod=True)
    old_address = web_address(stack)
    placeholder, image = f"{stack.prod_project}-placeholder", before["Config"]["Image"]
    docker("rm", "--force", stack.container("backend", prod=True))
    try:
        seconds = answers_without_backend(stack)
    finally:
        network = f"{stack.prod_project}_web"
        docker("run", "--detach", "--name", placeholder, "--network", network, "--entrypoint", "sleep", image, "600")
        try:
            stack.ok("up", "--prod")
        finally:
            docker("rm", "--force", placeholder)
    back = wait_until(lambda: origin_ok(stack), timeout=BACKEND_BACK_DEADLINE_S + 10)
    measure("faults: origin's 502, backend removed (max)", max(seconds), "s")
    assert max(seconds) < BACKEND_GONE_DEADLINE_S, seconds
    assert web_address(stack) != old_address, "the new backend got the old address: nothing to re-resolve"
    assert stack.inspect("frontend", prod=True)["State"]["StartedAt"] == frontend["State"]["StartedAt"]
    assert back is not None, "the origin did not find the backend at its new address"
    measure("faults: origin back after the recreated backend is healthy", back, "s")
    assert back <= BACKEND_BACK_DEADLINE_S, f"back {back:.1f} s after the backend was healthy"
    assert_round_trip(stack)


def test_down_then_up_keeps_the_data(stack):
    todos = create_todos(stack, 3, "before down")
    stack.ok("down", "--prod")
    assert not docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.prod_project}").stdout.strip()
    stack.ok("up", "--prod")
    assert_still_there(stack, todos)
    assert_round_trip(stack)


def test_docker_restart_of_every_container_keeps_the_data(stack):
    todos = create_todos(stack, 3, "before restart")
    running = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={stack.prod_project}").stdout.split()
    assert len(running) == 4, running  # postgres, redis, backend, frontend (migrate has exited)
    docker("restart", *running)
    back = wait_until(
        lambda: (
            all(container_healthy(stack, s) for s in ("postgres", "redis", "backend", "frontend")) and healthy(stack)
        ),
        timeout=120,
        interval=0.5,
    )
    assert back is not None, "the stack did not come back healthy after docker restart"
    assert_still_there(stack, todos)
    assert_round_trip(stack)
