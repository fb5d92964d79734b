"""The production stack as CI runs it: `inv build --prod` under budgets, `inv up --prod`,
`inv migrate --prod`; hardened containers; the app through the frontend's origin only."""

import json
import re
import subprocess
import sys
from http.client import HTTPConnection

import pytest

from tests.helpers import assert_one_line_failure
from tests.integration.stacks import http, wait_until

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
    # The API's port and the metrics port: exposed on the networks, published nowhere.
    assert all(binding is None for binding in stack.inspect("backend", prod=True)["NetworkSettings"]["Ports"].values())
    published = stack.inspect("frontend", prod=True)["NetworkSettings"]["Ports"]["8080/tcp"]
    assert published == [{"HostIp": "127.0.0.1", "HostPort": str(stack.ports["PROD_PORT"])}]


def test_root_filesystem_is_read_only_and_the_app_keeps_working(stack):
    for service in APP_SERVICES:
        write = docker("exec", stack.container(service, True), "sh", "-c", "echo x > /written-by-test")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, service
    assert http("GET", stack.url("PROD_PORT") + "/health").json()["database"] == "connected"


def test_smoke_through_the_frontend_origin_without_the_docs_pages(stack):
    """The smoke suite as CI runs it (page and assets, health, OpenAPI, a todo round-trip,
    CORS, /metrics closed). The docs pages, which load swagger-ui and redoc from a CDN, are
    off in production; the OpenAPI document is not."""
    stack.ok("smoke", "--prod")
    origin = stack.url("PROD_PORT")
    assert http("GET", origin + "/docs").status_code == 404
    # nginx does not pass /redoc on: the SPA's page answers it, no redoc.
    assert "redoc" not in http("GET", origin + "/redoc").text
    assert "/api/v1/todos" in http("GET", origin + "/openapi.json").json()["paths"]


# --- security headers ---------------------------------------------------------------------

# What nginx adds to every response: name -> a pattern its one value must match in full.
SECURITY_HEADERS = {
    "Content-Security-Policy": r"default-src 'self';.*; frame-ancestors 'none'",
    "X-Frame-Options": r"DENY",
    "X-Content-Type-Options": r"nosniff",
    "Referrer-Policy": r"strict-origin-when-cross-origin",
    "Permissions-Policy": r".*\bcamera=\(\),.*\bgeolocation=\(\),.*\bmicrophone=\(\).*",
}


def security_header_problems(status, headers):
    """What is wrong with one response's security headers (headers: (name, value) pairs, each
    line as sent): a header missing or sent twice (a location that adds its own and the
    server's), a wrong value, an unsafe CSP source, HSTS over plain HTTP."""
    problems = []
    for name, pattern in SECURITY_HEADERS.items():
        values = [value for key, value in headers if key.lower() == name.lower()]
        if len(values) != 1 or not re.fullmatch(pattern, values[0]):
            problems.append(f"{status}: {name} {values}")
    csp = " ".join(value for key, value in headers if key.lower() == "content-security-policy")
    problems += [
        f"{status}: CSP allows {word}"
        for word in ("'unsafe-inline'", "'unsafe-eval'", "*", "http:")
        if word in csp.split()
    ]
    problems += [f"{status}: HSTS over plain HTTP" for key, _ in headers if key.lower() == "strict-transport-security"]
    return problems


def raw_get(stack, target):
    """GET target exactly as written (requests would re-quote "%zz"): (status, header pairs, body)."""
    connection = HTTPConnection("127.0.0.1", stack.ports["PROD_PORT"], timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def asset_of_the_page(stack):
    html = raw_get(stack, "/")[2].decode()
    return re.search(r'src="(/assets/[^"]+\.js)"', html).group(1)


def test_every_kind_of_response_carries_the_security_headers(stack):
    """Static files, the SPA's fallback, the proxied API and /health, the backend's own 404,
    nginx's 404s, nginx's JSON refusal of a bad URI under /api/ and its HTML one elsewhere."""
    cases = {
        "/": (200, "text/html"),
        "/index.html": (200, "text/html"),
        "/todos/5": (200, "text/html"),
        asset_of_the_page(stack): (200, "javascript"),
        "/favicon.svg": (200, "image/svg+xml"),
        "/api/v1/todos": (200, "application/json"),
        "/health": (200, "application/json"),
        "/api/v1/todos/999999999": (404, "application/json"),
        "/api/no/such/route": (404, "application/json"),
        "/assets/no-such-bundle.js": (404, "text/html"),
        "/metrics": (404, "text/html"),
        "/docs": (404, "application/json"),
        "/api/v1/todos/%zz": (400, "application/json"),
        "/%zz": (400, "text/html"),
    }
    problems = []
    for target, (status, content_type) in cases.items():
        got, headers, _ = raw_get(stack, target)
        if got != status or content_type not in dict((k.lower(), v) for k, v in headers).get("content-type", ""):
            problems.append(f"{target}: {got} {headers}, expected {status} {content_type}")
        problems += [f"{target}: {problem}" for problem in security_header_problems(got, headers)]
    assert not problems, "\n".join(problems)


def test_nginx_s_502_without_a_backend_carries_the_security_headers(stack):
    """@backend_unavailable, the JSON 502 of /api/ and /health while the backend is stopped."""
    docker("stop", stack.container("backend", prod=True))
    try:
        stopped = wait_until(lambda: raw_get(stack, "/api/v1/todos")[0] == 502, timeout=30, interval=0.2)
        answers = {target: raw_get(stack, target) for target in ("/api/v1/todos", "/health")}
    finally:
        stack.ok("up", "--prod")
    assert stopped is not None, "no 502 within 30 s of stopping the backend"
    for target, (status, headers, body) in answers.items():
        assert (status, json.loads(body)) == (502, {"detail": "Backend unavailable"}), target
        assert not security_header_problems(status, headers), (target, headers)


# --- metrics --------------------------------------------------------------------------------

METRICS_PORT = 9100

FETCH = (
    "import sys, urllib.request; r = urllib.request.urlopen(sys.argv[1], timeout=5); "
    "print(r.status); print(r.read().decode())"
)


def in_network_of(stack, service, *command):
    """A host command inside a container's network namespace (root only): what another
    container on its compose networks can reach."""
    pid = stack.inspect(service, prod=True)["State"]["Pid"]
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *command], capture_output=True, text=True, timeout=30)


def test_metrics_have_a_port_on_the_internal_networks_only(stack):
    """The frontend's network reaches the backend's metrics port (as a scraper on the compose
    network would), with every worker's request counts; nothing publishes that port and the
    public origin answers 404 for /metrics."""
    origin = stack.url("PROD_PORT")
    assert http("GET", origin + "/api/v1/todos").status_code == 200
    backend = stack.inspect("backend", prod=True)
    web = next(net for name, net in backend["NetworkSettings"]["Networks"].items() if name.endswith("_web"))
    scraped = in_network_of(
        stack, "frontend", sys.executable, "-c", FETCH, f"http://{web['IPAddress']}:{METRICS_PORT}/metrics"
    )
    status, _, text = scraped.stdout.partition("\n")
    assert status == "200", scraped.stderr
    assert re.search(r'^http_requests_total\{method="GET",path="/api/v1/todos",status="200"\} [1-9]', text, re.M), text[
        :2000
    ]
    assert (
        backend["HostConfig"]["PortBindings"] in ({}, None)
        or f"{METRICS_PORT}/tcp" not in backend["HostConfig"]["PortBindings"]
    )
    assert backend["NetworkSettings"]["Ports"].get(f"{METRICS_PORT}/tcp") is None
    assert str(METRICS_PORT) in {port.split("/")[0] for port in backend["Config"]["ExposedPorts"]}
    assert http("GET", origin + "/metrics").status_code == 404
    # Nor is the metrics port the API's: the API port has no /metrics.
    api = in_network_of(stack, "frontend", sys.executable, "-c", FETCH, f"http://{web['IPAddress']}:8000/metrics")
    assert "HTTP Error 404" in api.stderr, api.stdout + api.stderr


def test_up_prod_without_a_password_refuses_naming_it(stack):
    result = stack.inv("up", "--prod", env={"POSTGRES_PASSWORD": ""})
    assert_one_line_failure(result, "POSTGRES_PASSWORD")
    assert "must be set for the production stack" in result.stderr


def test_unknown_service_lists_the_real_ones(stack):
    assert_one_line_failure(
        stack.inv("build", "--prod", "-s", "nosuch"),
        "unknown service nosuch: choose from backend, frontend, migrate, postgres, redis",
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


def test_scan_finds_nothing_in_the_prod_images_headers_nor_containers(stack):
    result = stack.ok("scan")
    assert f"ok    todostack/backend:{stack.project}" in result.stdout
    assert f"ok    todostack/frontend:{stack.project}" in result.stdout
    origin = stack.url("PROD_PORT")
    assert f"ok    headers of {origin}/\n" in result.stdout
    assert f"ok    headers of {origin}/api/v1/todos\n" in result.stdout
    for service in ("postgres", "redis", "backend", "frontend"):
        assert f"ok    container {stack.container(service, prod=True)}\n" in result.stdout
    assert "scan: every image clean; security headers in place; every container clean\n" in result.stdout
