"""The production stack as CI runs it: `inv build --prod` under budgets, `inv up --prod`,
`inv migrate --prod`; hardened containers; the app through the frontend's origin only."""

import json
import subprocess

import pytest

from tests.helpers import assert_one_line_failure
from tests.integration.stacks import http

APP_SERVICES = ("backend", "frontend")


@pytest.fixture(scope="module")
def stack(prod_stack):
    """The shared prod stack: built (`inv build --prod`), up (`inv up --prod`) and migrated."""
    return prod_stack


def docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def test_build_prod_meets_the_budgets_and_writes_a_report(stack, measure):
    result = stack.ok("build", "--prod")
    assert "every image within budget" in result.stdout
    report = json.loads((stack.path / "reports/build-prod.json").read_text())
    assert report["ok"] is True
    assert {image["service"] for image in report["images"]} == {"backend", "frontend"}
    for image in report["images"]:
        measure(f"prod: {image['service']} image size", image["size_mb"], "MB")
        measure(f"prod: {image['service']} over base", image["over_base_mb"], "MB")
        measure(f"prod: {image['service']} build (warm cache)", image["build_s"], "s")


def test_budgets_bite(stack):
    result = stack.inv("build", "--prod", "-s", "frontend", env={"INVOKE_BUILD_BUDGETS_FRONTEND_TOTAL_MB": "1"})
    assert_one_line_failure(result, "build: budget breached by frontend")
    report = json.loads((stack.path / "reports/build-prod.json").read_text())
    assert report["ok"] is False
    [frontend] = report["images"]
    assert (
        frontend["breaches"]
        and frontend["breaches"][0].startswith("size ")
        and frontend["breaches"][0].endswith("> budget 1 MB")
    )


def test_up_prod_starts_healthy_after_one_migration(stack):
    result = stack.up_result
    assert "healthy after" in result.stdout and stack.url("PROD_PORT") in result.stdout
    migrate, backend = stack.inspect("migrate", prod=True), stack.inspect("backend", prod=True)
    assert migrate["State"]["ExitCode"] == 0
    assert migrate["State"]["FinishedAt"] < backend["State"]["StartedAt"]
    containers = docker(
        "ps",
        "-a",
        "-q",
        "--filter",
        f"label=com.docker.compose.project={stack.prod_project}",
        "--filter",
        "label=com.docker.compose.service=migrate",
    ).stdout.split()
    assert len(containers) == 1
    logs = docker("logs", stack.container("migrate", prod=True))
    assert (logs.stdout + logs.stderr).count("Running upgrade") == 1


def test_migrate_prod_runs_the_migrate_service(stack):
    result = stack.ok("migrate", "--prod")
    assert "Running upgrade" not in result.stdout + result.stderr


def test_app_containers_are_hardened_and_non_root(stack):
    for service in APP_SERVICES:
        info = stack.inspect(service, prod=True)
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True, service
        assert host["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert host["Memory"] > 0 and host["PidsLimit"] > 0, service
        assert host["RestartPolicy"]["Name"] == "unless-stopped", service
        uids = {
            row.split()[1]
            for row in docker("top", stack.container(service, True), "-eo", "pid,uid").stdout.splitlines()[1:]
        }
        assert uids and "0" not in uids, f"{service} runs processes as root"
    assert stack.inspect("backend", prod=True)["NetworkSettings"]["Ports"] in ({}, {"8000/tcp": None})
    published = stack.inspect("frontend", prod=True)["NetworkSettings"]["Ports"]["8080/tcp"]
    assert published == [{"HostIp": "127.0.0.1", "HostPort": str(stack.ports["PROD_PORT"])}]


def test_root_filesystem_is_read_only_and_the_app_keeps_working(stack):
    for service in APP_SERVICES:
        write = docker("exec", stack.container(service, True), "sh", "-c", "echo x > /written-by-test")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, service
    assert http("GET", stack.url("PROD_PORT") + "/health").json()["database"] == "connected"


def test_smoke_and_the_docs_through_the_frontend_origin(stack):
    """The smoke suite as CI runs it (page and assets, health, OpenAPI, a todo round-trip,
    CORS, metrics), and the API docs through the same origin."""
    stack.ok("smoke", "--prod")
    assert http("GET", stack.url("PROD_PORT") + "/docs").status_code == 200


def test_up_prod_without_a_password_refuses_naming_it(stack):
    result = stack.inv("up", "--prod", env={"POSTGRES_PASSWORD": ""})
    assert_one_line_failure(result, "POSTGRES_PASSWORD")
    assert "must be set for the production stack" in result.stderr


def test_unknown_service_lists_the_real_ones(stack):
    assert_one_line_failure(
        stack.inv("build", "--prod", "-s", "nosuch"),
        "unknown service nosuch: choose from postgres, migrate, backend, frontend",
    )


def test_a_broken_dockerfile_shows_the_error_with_the_service(stack):
    dockerfile = stack.path / "frontend/Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original.replace("RUN npm run build", "RUN npm run build && exit 7"))
    try:
        result = stack.inv("build", "--prod", "-s", "frontend")
    finally:
        dockerfile.write_text(original)
    assert_one_line_failure(result, "building frontend failed: see its build output above")
    assert "[frontend build" in result.stdout and "exit code: 7" in result.stdout + result.stderr


def test_lint_is_clean_and_catches_a_bad_dockerfile(stack):
    assert "lint: all clean" in stack.ok("lint").stdout
    bad = stack.path / "tests/integration/fixtures/bad-lint/Dockerfile"
    bad.parent.mkdir(parents=True)
    bad.write_text("FROM debian\nRUN cd /tmp && apt-get install -y curl\n")
    try:
        result = stack.inv("lint")
    finally:
        bad.unlink()
        bad.parent.rmdir()
    assert_one_line_failure(result, "lint: hadolint failed")
    assert "DL3003" in result.stdout or "DL3003" in result.stderr


def test_scan_finds_nothing_in_the_prod_images(stack):
    result = stack.ok("scan")
    assert f"ok    todostack/backend:{stack.project}" in result.stdout
    assert f"ok    todostack/frontend:{stack.project}" in result.stdout
    assert "scan: every image clean" in result.stdout
