"""The dev stack end to end, as a developer drives it: `inv up` from nothing, migrations,
CRUD, both test suites in their containers, hot reload, data lifetime, bad input.

Runs from a copy of the working tree under a project name and ports of its own, so it
never touches a developer's running stack; removes everything it made."""
import json
import socket
import subprocess
import time

import pytest

from stackctl.bench import reload
from tests.helpers import assert_one_line_failure
from tests.integration.stacks import StackCopy, http

@pytest.fixture(scope="module")
def stack():
    stack = StackCopy("todostack-it")
    stack.ok("reset", "--yes")
    yield stack
    stack.remove()


def api(stack, method, path, via="BACKEND_PORT", **kwargs):
    return http(method, stack.url(via) + path, **kwargs)


def test_up_from_nothing_brings_every_service_up_healthy(stack, measure):
    start = time.monotonic()
    result = stack.ok("up")
    measure("dev: inv up from nothing (incl. build)", time.monotonic() - start, "s")
    assert "postgres, backend, frontend healthy" in result.stdout
    assert stack.url("FRONTEND_PORT") in result.stdout and stack.url("BACKEND_PORT") in result.stdout
    page = api(stack, "GET", "/", via="FRONTEND_PORT")
    assert page.status_code == 200 and '<div id="root">' in page.text
    health = api(stack, "GET", "/health").json()
    assert health["status"] == "ok" and health["database"] == "connected"


def test_migrate_applies_the_schema_once(stack):
    first = stack.ok("migrate")
    assert "Running upgrade  -> 0001" in first.stdout + first.stderr
    second = stack.ok("migrate")
    assert "Running upgrade" not in second.stdout + second.stderr


def test_smoke_passes_through_the_frontend_proxy(stack):
    """The smoke suite through Vite's origin: page and assets, health, OpenAPI, a todo
    round-trip (create, read, update, list, delete, then 404), CORS, metrics."""
    stack.ok("smoke")


def test_the_backend_port_trims_titles_and_lists_newest_first(stack):
    """Beyond the smoke suite: the backend's own port, a trimmed title, a new todo not done and
    the same through the frontend proxy, the list newest first; both deleted again."""
    created = api(stack, "POST", "/api/v1/todos", json={"title": "  buy milk  "})
    assert created.status_code == 201
    todo = created.json()
    assert todo["title"] == "buy milk" and todo["done"] is False
    assert api(stack, "GET", f"/api/v1/todos/{todo['id']}", via="FRONTEND_PORT").json() == todo
    second = api(stack, "POST", "/api/v1/todos", via="FRONTEND_PORT", json={"title": "second"}).json()
    listing = api(stack, "GET", "/api/v1/todos").json()
    assert [item["id"] for item in listing["items"]][:2] == [second["id"], todo["id"]]
    for item in (todo, second):
        assert api(stack, "DELETE", f"/api/v1/todos/{item['id']}", via="FRONTEND_PORT").status_code == 204


@pytest.mark.parametrize("body, field", [
    ('{"title": ', None),
    ('{"title": "x", "owner": "me"}', "owner"),
    ('{"title": "' + "x" * 201 + '"}', "title"),
    ('{"title": "   "}', "title"),
])
def test_bad_request_bodies_get_422_with_field_errors(stack, body, field):
    response = api(stack, "POST", "/api/v1/todos", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert isinstance(errors, list) and errors
    if field:
        assert any(field in map(str, error["loc"]) for error in errors)


def test_unknown_id_is_404(stack):
    response = api(stack, "PATCH", "/api/v1/todos/999999", json={"done": True})
    assert response.status_code == 404 and "999999" in response.json()["detail"]


def test_backend_suite_passes_in_the_backend_container(stack):
    result = stack.ok("exec", "backend", "--", "pytest", "-q")
    assert " passed" in result.stdout and " failed" not in result.stdout


def test_frontend_suite_passes_in_the_frontend_container(stack):
    result = stack.ok("exec", "frontend", "--", "npm", "test")
    assert "Tests" in result.stdout and "failed" not in result.stdout.lower().replace("0 failed", "")


# The reload latencies are the bench's measurement (stackctl.bench.reload): write, then poll
# until the edit is served; the file is restored and the original served again afterwards.
RELOAD_WAIT_S = 30


def assert_reloads_without_restart(stack, measure, service, probe, via, figure):
    started = stack.started_at(service)
    measured = probe(stack.path, stack.url(via), RELOAD_WAIT_S)
    assert measured.seconds is not None, f"{service} did not serve the edit within {RELOAD_WAIT_S} s"
    measure(figure, measured.seconds, "s")
    assert stack.started_at(service) == started
    assert measured.restored, f"{service} still serves the edit after its restore"


def test_backend_reloads_an_edited_route_without_restart(stack, measure):
    assert reload.BACKEND_ROUTE in (stack.path / reload.BACKEND_SOURCE).read_text(), \
        "the root route changed shape; update this test"
    assert_reloads_without_restart(stack, measure, "backend", reload.backend_reload, "BACKEND_PORT",
                                   "dev: backend reload (write -> new response)")


def test_vite_serves_an_edited_module_without_restart(stack, measure):
    assert reload.FRONTEND_HEADING in (stack.path / reload.FRONTEND_SOURCE).read_text(), \
        "the heading changed; update this test"
    assert_reloads_without_restart(stack, measure, "frontend", reload.vite_hmr, "FRONTEND_PORT",
                                   "dev: Vite HMR (write -> updated module)")


def test_exec_runs_with_the_stack_up(stack):
    assert stack.ok("exec", "backend", "--", "python", "-c", "print(1)").stdout.strip() == "1"


def test_logs_of_an_unknown_service_lists_the_real_ones(stack):
    assert_one_line_failure(stack.inv("logs", "-s", "nosuch"),
                            "unknown service nosuch: choose from postgres, backend, frontend")


def test_up_refuses_a_busy_port_naming_who_holds_it(stack):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = stack.inv("up", env={"BACKEND_PORT": str(port)})
    assert_one_line_failure(result, f"port {port} (BACKEND_PORT) is in use by")
    assert "(pid " in result.stderr


def test_data_survives_down_and_up(stack):
    todo = api(stack, "POST", "/api/v1/todos", json={"title": "persist me"}).json()
    stack.ok("down")
    assert stack.ok("exec", "backend", "--", "python", "-c", "print(1)").stdout.strip() == "1"
    assert_one_line_failure(stack.inv("migrate"), "the backend is not running: start the stack with `inv up`")
    stack.ok("up")
    assert api(stack, "GET", f"/api/v1/todos/{todo['id']}").json()["title"] == "persist me"


def volume_names():
    out = subprocess.run(["docker", "volume", "ls", "--format", "json"], capture_output=True, text=True,
                         check=True).stdout
    return {json.loads(line)["Name"] for line in out.splitlines() if line.strip()}


def mounted_volumes(stack):
    """Names of the volumes (named and anonymous) the stack's running containers mount."""
    return {mount["Name"] for service in ("postgres", "backend", "frontend")
            for mount in stack.inspect(service)["Mounts"] if mount["Type"] == "volume"}


def test_down_up_cycles_leave_no_volume_but_the_data_volume(stack):
    # Only the volumes this stack mounted are compared: other stacks may share the engine.
    data = f"{stack.project}_postgres-data"
    todo = api(stack, "POST", "/api/v1/todos", json={"title": "cycled"}).json()
    mounted = mounted_volumes(stack)
    assert data in mounted
    for _ in range(3):
        stack.ok("down")
        assert mounted & volume_names() == {data}, "down kept a volume of the stack other than its data volume"
        stack.ok("up")
        mounted |= mounted_volumes(stack)
    stack.ok("down")
    assert mounted & volume_names() == {data}
    stack.ok("up")
    assert api(stack, "GET", f"/api/v1/todos/{todo['id']}").json()["title"] == "cycled"


def test_missing_env_says_run_setup(stack):
    env = stack.path / ".env"
    env.rename(stack.path / ".env.saved")
    try:
        for task in ("up", "migrate", "logs"):
            assert_one_line_failure(stack.inv(task), ".env not found: run `inv setup` to create it")
    finally:
        (stack.path / ".env.saved").rename(env)


def test_reset_removes_the_data(stack):
    stack.ok("reset", "--yes")
    volumes = subprocess.run(["docker", "volume", "ls", "--format", "{{json .}}"],
                             capture_output=True, text=True, check=True).stdout
    assert f"{stack.project}_postgres-data" not in [json.loads(line)["Name"] for line in volumes.splitlines()]
    stack.ok("up")
    stack.ok("migrate")
    assert api(stack, "GET", "/api/v1/todos").json()["total"] == 0
