"""The dev stack's life, as a developer drives it: `inv up` from nothing, migrations once,
data that survives `down`/`up`, down/up cycles that leave no volume behind, a missing .env,
`inv reset`. On a stack of its own (a copy of the working tree with its own project name
and ports), since these tests take it down and reset it; removed afterwards."""

import json
import subprocess
import time

import pytest

from tests.helpers import assert_one_line_failure
from tests.integration.stacks import StackCopy, api


@pytest.fixture(scope="module")
def stack():
    stack = StackCopy("todostack-life")
    yield stack
    stack.remove()


def test_up_from_nothing_brings_every_service_up_healthy(stack, measure):
    start = time.monotonic()
    result = stack.ok("up")
    measure("dev: inv up from nothing (incl. build)", time.monotonic() - start, "s")
    assert "backend, frontend, postgres, redis healthy" in result.stdout
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


def test_data_survives_down_and_up(stack):
    todo = api(stack, "POST", "/api/v1/todos", json={"title": "persist me"}).json()
    stack.ok("down")
    assert stack.ok("exec", "backend", "--", "python", "-c", "print(1)").stdout.strip() == "1"
    assert_one_line_failure(stack.inv("migrate"), "the backend is not running: start the stack with `inv up`")
    stack.ok("up")
    assert api(stack, "GET", f"/api/v1/todos/{todo['id']}").json()["title"] == "persist me"


def volume_names():
    out = subprocess.run(
        ["docker", "volume", "ls", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout
    return {json.loads(line)["Name"] for line in out.splitlines() if line.strip()}


def mounted_volumes(stack):
    """Names of the volumes (named and anonymous) the stack's running containers mount."""
    return {
        mount["Name"]
        for service in ("postgres", "backend", "frontend")
        for mount in stack.inspect(service)["Mounts"]
        if mount["Type"] == "volume"
    }


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
    volumes = subprocess.run(
        ["docker", "volume", "ls", "--format", "{{json .}}"], capture_output=True, text=True, check=True
    ).stdout
    assert f"{stack.project}_postgres-data" not in [json.loads(line)["Name"] for line in volumes.splitlines()]
    stack.ok("up")
    stack.ok("migrate")
    assert api(stack, "GET", "/api/v1/todos").json()["total"] == 0
