"""The dev stack as a developer uses it: smoke through Vite's proxy, the API's own port, bad
input, both test suites in their containers, hot reload, exec and logs. On the session's
shared dev stack (tests/conftest.py); what takes a stack down or resets it is in
test_dev_lifecycle.py, on a stack of its own."""

import socket

import pytest

from stackctl.bench import reload
from tests.helpers import assert_one_line_failure
from tests.integration.stacks import api


@pytest.fixture(scope="module")
def stack(dev_stack):
    return dev_stack


def test_smoke_passes_through_the_frontend_proxy(stack):
    """The smoke suite through Vite's origin: page and assets, health, OpenAPI, a todo
    round-trip (create, read, update, list, delete, then 404), CORS, /metrics closed."""
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


@pytest.mark.parametrize(
    "body, field",
    [
        ('{"title": ', None),
        ('{"title": "x", "owner": "me"}', "owner"),
        ('{"title": "' + "x" * 201 + '"}', "title"),
        ('{"title": "   "}', "title"),
    ],
)
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
    assert reload.BACKEND_ROUTE in (stack.path / reload.BACKEND_SOURCE).read_text(), (
        "the root route changed shape; update this test"
    )
    assert_reloads_without_restart(
        stack, measure, "backend", reload.backend_reload, "BACKEND_PORT", "dev: backend reload (write -> new response)"
    )


def test_vite_serves_an_edited_module_without_restart(stack, measure):
    assert reload.FRONTEND_HEADING in (stack.path / reload.FRONTEND_SOURCE).read_text(), (
        "the heading changed; update this test"
    )
    assert_reloads_without_restart(
        stack, measure, "frontend", reload.vite_hmr, "FRONTEND_PORT", "dev: Vite HMR (write -> updated module)"
    )


def test_exec_runs_with_the_stack_up(stack):
    assert stack.ok("exec", "backend", "--", "python", "-c", "print(1)").stdout.strip() == "1"


def test_logs_of_an_unknown_service_lists_the_real_ones(stack):
    assert_one_line_failure(
        stack.inv("logs", "-s", "nosuch"), "unknown service nosuch: choose from backend, frontend, postgres, redis"
    )


def test_up_refuses_a_busy_port_naming_who_holds_it(stack):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = stack.inv("up", env={"BACKEND_PORT": str(port)})
    assert_one_line_failure(result, f"port {port} (BACKEND_PORT) is in use by")
    assert "(pid " in result.stderr
