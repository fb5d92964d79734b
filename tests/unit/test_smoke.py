"""`inv smoke`'s logic: the pure parts, and each check against a small HTTP server on
127.0.0.1 that answers like the stack does until a test breaks one of its answers."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from invoke import Context

from stackctl import Problem, smoke
from stackctl.compose import stack_target
from stackctl.copies import free_port
from tests.helpers import project_config

DEV_HTML = """<!doctype html>
<html lang="en">
  <head>
    <script type="module">import { injectIntoGlobalHook } from "/@react-refresh";
injectIntoGlobalHook(window);</script>
    <script type="module" src="/@vite/client"></script>
    <meta charset="UTF-8" />
    <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
    <title>Todos</title>
  </head>
  <body>
    <div id="root"></div>
    <script type="module" src="/src/main.tsx"></script>
  </body>
</html>"""

PROD_HTML = """<!doctype html><html lang="en"><head><meta charset="UTF-8" />
<link rel="icon" type="image/svg+xml" href="/favicon.svg" />
<title>Todos</title>
<script type="module" crossorigin src="/assets/index-AbC123.js"></script>
<link rel="stylesheet" crossorigin href="/assets/index-XyZ789.css">
</head><body><div id="root"></div></body></html>"""

ASSETS = {"/favicon.svg": "image/svg+xml", "/assets/index-AbC123.js": "text/javascript",
          "/assets/index-XyZ789.css": "text/css"}
ALLOWED = "http://localhost:3000"


class FakeStack:
    """Answers like the stack's public origin (page, assets, /health, /openapi.json, the todo
    API, CORS preflights, /metrics). `broken[(method, path)]` replaces one answer: a
    (status, headers, body) tuple, or a function of the call count returning one (None:
    the normal answer)."""

    def __init__(self):
        self.todos, self.next_id = {}, 1
        self.requests = []
        self.broken = {}
        self.calls = {}

    def answer(self, method, path, headers, body):
        self.requests.append((method, path))
        key = (method, path)
        self.calls[key] = self.calls.get(key, 0) + 1
        if key in self.broken:
            replacement = self.broken[key]
            replacement = replacement(self.calls[key]) if callable(replacement) else replacement
            if replacement is not None:
                return replacement
        return self.normal(method, path, headers, body)

    def normal(self, method, path, headers, body):
        if method == "GET" and path == "/":
            return 200, {"Content-Type": "text/html"}, PROD_HTML
        if method == "GET" and path in ASSETS:
            return 200, {"Content-Type": ASSETS[path]}, "x" * 10
        if method == "GET" and path == "/health":
            return json_answer(200, {"status": "ok", "database": "connected", "db_latency_ms": 1.25,
                                     "version": "9.9"})
        if method == "GET" and path == "/openapi.json":
            return json_answer(200, {"info": {"title": "Todo API", "version": "9.9"},
                                     "paths": {"/api/v1/todos": {}, "/api/v1/todos/{todo_id}": {}}})
        if method == "GET" and path == "/metrics":
            return 200, {"Content-Type": "text/plain; version=0.0.4"}, "# HELP up Up.\n# TYPE up gauge\nup 1\n"
        if path == "/api/v1/todos":
            return self.collection(method, headers, body)
        if path.startswith("/api/v1/todos/"):
            return self.item(method, int(path.rsplit("/", 1)[1]), body)
        return 404, {"Content-Type": "text/plain"}, "not found"

    def collection(self, method, headers, body):
        if method == "OPTIONS":
            origin = headers.get("Origin")
            if origin == ALLOWED:
                return 200, {"Access-Control-Allow-Origin": origin, "X-Request-ID": "r1"}, "OK"
            return 400, {"X-Request-ID": "r2"}, "Disallowed CORS origin"
        if method == "POST":
            todo = {"id": self.next_id, "title": json.loads(body)["title"], "done": False}
            self.todos[todo["id"]] = todo
            self.next_id += 1
            return json_answer(201, todo)
        items = sorted(self.todos.values(), key=lambda t: -t["id"])
        return json_answer(200, {"items": items, "total": len(items), "limit": 20, "offset": 0})

    def item(self, method, todo_id, body):
        if todo_id not in self.todos:
            return json_answer(404, {"detail": "Todo not found"})
        if method == "DELETE":
            del self.todos[todo_id]
            return 204, {}, ""
        if method == "PATCH":
            self.todos[todo_id].update(json.loads(body))
        return json_answer(200, self.todos[todo_id])


def json_answer(status, document):
    return status, {"Content-Type": "application/json"}, json.dumps(document)


@pytest.fixture
def fake():
    stack = FakeStack()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            status, headers, text = stack.answer(self.command, urlsplit(self.path).path, self.headers, body)
            data = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_OPTIONS = handle_one

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stack.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield stack
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def run(fake, function, timeout=2.0):
    """One check against the fake stack; its page state filled in as the run would."""
    client = smoke.Client(fake.url, timeout=timeout)
    state = {"origin": ALLOWED}
    if function is smoke.check_assets:
        smoke.run_check("page", smoke.check_page, client, state)
    try:
        return smoke.run_check(function.__name__, function, client, state)
    finally:
        client.close()


# --- pure parts -------------------------------------------------------------------------

def test_assets_of_the_vite_dev_page():
    assert smoke.asset_paths(DEV_HTML, "http://127.0.0.1:3000") == ["/@vite/client", "/favicon.svg", "/src/main.tsx"]


def test_assets_of_the_built_page():
    assert smoke.asset_paths(PROD_HTML, "http://127.0.0.1:8080") == list(ASSETS)


def test_assets_skip_other_origins_and_data_urls_and_resolve_relative_ones_once():
    html = """<link rel="preconnect" href="https://fonts.example.com">
    <script src="https://cdn.example.com/lib.js"></script>
    <link rel="icon" href="data:image/png;base64,AAAA">
    <script src="assets/app.js?v=2"></script><script src="/assets/app.js?v=2"></script>
    <link rel="stylesheet" href="http://127.0.0.1:8080/assets/app.css">
    <script>inline()</script><a href="/not-an-asset">x</a><link rel="x" href=" ">"""
    assert smoke.asset_paths(html, "http://127.0.0.1:8080") == ["/assets/app.js?v=2", "/assets/app.css"]


@pytest.mark.parametrize("value, first", [
    ("http://localhost:3000,http://127.0.0.1:3000", "http://localhost:3000"),
    (" https://app.example/ , http://x", "https://app.example"),
    ('["https://a.example", "https://b.example"]', "https://a.example"),
    ("", None), (None, None), (" , ", None), ("[not json", None),
])
def test_first_origin_reads_cors_origins_like_the_backend(value, first):
    assert smoke.first_origin(value) == first


def test_check_lines_and_summary():
    checks = [smoke.Check("page", True, 12.4, "455 bytes"), smoke.Check("cors-allowed", False, 3.0, "no echo")]
    assert smoke.lines(checks, 1.26) == [
        "ok    page             12 ms  455 bytes",
        "FAIL  cors-allowed      3 ms  no echo",
        "smoke: 1 passed, 1 failed in 1.3 s",
    ]


def test_json_report_shape():
    checks = [smoke.Check("page", True, 12.44, "fine"), smoke.Check("metrics", False, 3.0, "answered 403")]
    document = json.loads(json.dumps(smoke.report("http://127.0.0.1:8080", ALLOWED, checks, 0.52, 1.04)))
    assert document == {
        "base_url": "http://127.0.0.1:8080", "origin": ALLOWED, "ready": True, "waited_s": 1.0,
        "checks": [{"name": "page", "ok": True, "ms": 12.4, "detail": "fine"},
                   {"name": "metrics", "ok": False, "ms": 3.0, "detail": "answered 403"}],
        "summary": {"passed": 1, "failed": 1, "seconds": 0.5, "ok": False},
    }


@pytest.mark.parametrize("value, seconds", [(None, smoke.DEFAULT_TIMEOUT), ("3", 3.0), ("0.5", 0.5), (7, 7.0)])
def test_timeout_values(value, seconds):
    assert smoke.parse_timeout(value) == seconds


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf"])
def test_bad_timeouts_are_refused(value):
    with pytest.raises(Problem, match="--timeout must be a number of seconds above 0"):
        smoke.parse_timeout(value)


def test_base_url_must_be_an_origin():
    assert smoke.check_base_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    for bad in ("127.0.0.1:8080", "ftp://127.0.0.1", "http://127.0.0.1:8080/app", "http://127.0.0.1:99999"):
        with pytest.raises(Problem, match="--base-url"):
            smoke.check_base_url(bad)


def test_defaults_come_from_the_effective_env(monkeypatch):
    c = Context(config=project_config())
    monkeypatch.setattr(smoke, "effective_env", lambda c: {})
    assert smoke.default_base_url(c, stack_target(c)) == "http://127.0.0.1:3000"
    assert smoke.default_base_url(c, stack_target(c, prod=True)) == "http://127.0.0.1:8080"
    assert smoke.default_origin(c, stack_target(c)) == "http://localhost:3000"
    assert smoke.default_origin(c, stack_target(c, prod=True)) == "http://localhost:8080"
    monkeypatch.setattr(smoke, "effective_env", lambda c: {
        "FRONTEND_PORT": "3100", "PROD_PORT": "9090", "CORS_ORIGINS": "https://app.example,http://x"})
    assert smoke.default_base_url(c, stack_target(c)) == "http://127.0.0.1:3100"
    assert smoke.default_base_url(c, stack_target(c, prod=True)) == "http://127.0.0.1:9090"
    assert smoke.default_origin(c, stack_target(c, prod=True)) == "https://app.example"


# --- the checks against the fake stack ----------------------------------------------------

def test_every_check_passes_against_a_working_stack_and_leaves_no_todo(fake):
    client = smoke.Client(fake.url)
    checks = smoke.run_checks(client, ALLOWED)
    client.close()
    assert [(c.name, c.ok) for c in checks] == [(name, True) for name, _ in smoke.CHECKS], checks
    details = {c.name: c.detail for c in checks}
    assert details["assets"] == "3 answered 200: " + ", ".join(ASSETS)
    assert details["health"] == "status ok, database connected (1.2 ms), version 9.9"
    assert "answered by the backend" in details["cors-allowed"]
    assert fake.todos == {}
    todo_calls = [call for call in fake.requests if call[1].startswith("/api/v1/todos") and call[0] != "OPTIONS"]
    assert todo_calls == [("POST", "/api/v1/todos"), ("GET", "/api/v1/todos/1"), ("PATCH", "/api/v1/todos/1"),
                          ("GET", "/api/v1/todos"), ("DELETE", "/api/v1/todos/1"), ("GET", "/api/v1/todos/1")]


def test_a_page_that_is_not_the_app_fails_and_so_do_its_assets(fake):
    fake.broken[("GET", "/")] = (200, {"Content-Type": "text/html"}, "<html><body>Welcome to nginx!</body></html>")
    page = run(fake, smoke.check_page)
    assert not page.ok and 'no <div id="root">' in page.detail
    assets = run(fake, smoke.check_assets)
    assert not assets.ok and assets.detail == "no page to read the assets from (see the page check)"


def test_a_missing_asset_and_an_html_fallback_fail_naming_them(fake):
    fake.broken[("GET", "/assets/index-AbC123.js")] = (404, {"Content-Type": "text/plain"}, "nope")
    fake.broken[("GET", "/favicon.svg")] = (200, {"Content-Type": "text/html"}, PROD_HTML)
    check = run(fake, smoke.check_assets)
    assert not check.ok
    assert check.detail == ("2 of 3 broken: /favicon.svg (HTML instead of the file), "
                            "/assets/index-AbC123.js (404)")


def test_health_with_the_database_down_fails(fake):
    fake.broken[("GET", "/health")] = json_answer(200, {"status": "degraded", "database": "unavailable"})
    check = run(fake, smoke.check_health)
    assert not check.ok and check.detail == "database 'unavailable', status 'degraded'"


def test_health_answering_an_error_page_fails_with_the_status(fake):
    fake.broken[("GET", "/health")] = (502, {"Content-Type": "application/json"}, '{"detail":"Backend unavailable"}')
    check = run(fake, smoke.check_health)
    assert not check.ok
    assert check.detail == 'GET /health answered 502, expected 200: {"detail":"Backend unavailable"}'


def test_openapi_without_the_todo_api_fails(fake):
    fake.broken[("GET", "/openapi.json")] = json_answer(200, {"paths": {"/health": {}}})
    check = run(fake, smoke.check_openapi)
    assert not check.ok and check.detail == "/openapi.json does not list /api/v1/todos"


def test_openapi_served_as_html_fails(fake):
    fake.broken[("GET", "/openapi.json")] = (200, {"Content-Type": "text/html"}, PROD_HTML)
    check = run(fake, smoke.check_openapi)
    assert not check.ok and check.detail == "/openapi.json did not answer JSON (Content-Type text/html)"


def test_a_todo_missing_from_the_list_fails_and_is_still_deleted(fake):
    fake.broken[("GET", "/api/v1/todos")] = json_answer(200, {"items": [], "total": 0})
    check = run(fake, smoke.check_todos)
    assert not check.ok and check.detail == "GET /api/v1/todos does not list the new todo 1 on its first page"
    assert fake.todos == {} and ("DELETE", "/api/v1/todos/1") in fake.requests


def test_a_failed_delete_fails_and_is_retried_on_the_way_out(fake):
    fake.broken[("DELETE", "/api/v1/todos/1")] = lambda call: json_answer(500, {"detail": "x"}) if call == 1 else None
    check = run(fake, smoke.check_todos)
    assert not check.ok and check.detail.startswith("DELETE /api/v1/todos/1 answered 500, expected 204")
    assert fake.calls[("DELETE", "/api/v1/todos/1")] == 2 and fake.todos == {}


def test_an_update_that_does_not_stick_fails(fake):
    fake.broken[("PATCH", "/api/v1/todos/1")] = json_answer(200, {"id": 1, "title": "other", "done": False})
    check = run(fake, smoke.check_todos)
    assert not check.ok and check.detail.startswith("PATCH /api/v1/todos/1 returned")
    assert fake.todos == {}


def test_cors_allowed_fails_when_the_origin_is_not_echoed(fake):
    fake.broken[("OPTIONS", "/api/v1/todos")] = (400, {}, "Disallowed CORS origin")
    check = run(fake, smoke.check_cors_allowed)
    assert not check.ok
    assert check.detail == (f"preflight from {ALLOWED} answered 400, Access-Control-Allow-Origin None "
                            "(answered by the frontend server, not the backend); is it in CORS_ORIGINS?")


def test_cors_denied_passes_on_a_refusal_and_fails_when_any_origin_is_allowed(fake):
    refused = run(fake, smoke.check_cors_denied)
    assert refused.ok and refused.detail.startswith("preflight from http://evil.example: 400")
    fake.broken[("OPTIONS", "/api/v1/todos")] = (200, {"Access-Control-Allow-Origin": "*"}, "")
    check = run(fake, smoke.check_cors_denied)
    assert not check.ok
    assert "preflight from http://evil.example allowed (Access-Control-Allow-Origin '*')" in check.detail


def test_metrics_falling_back_to_the_page_or_denied_fail(fake):
    fake.broken[("GET", "/metrics")] = (200, {"Content-Type": "text/html"}, PROD_HTML)
    check = run(fake, smoke.check_metrics)
    assert not check.ok and check.detail == "/metrics answered 200 but no Prometheus text (Content-Type text/html)"
    fake.broken[("GET", "/metrics")] = (403, {"Content-Type": "text/html"}, "<html>403 Forbidden</html>")
    check = run(fake, smoke.check_metrics)
    assert not check.ok and check.detail.startswith("GET /metrics answered 403, expected 200")


def test_a_closed_port_is_a_fail_line_per_check_not_an_exception():
    client = smoke.Client(f"http://127.0.0.1:{free_port()}")
    checks = smoke.run_checks(client, ALLOWED)
    client.close()
    assert [c.ok for c in checks] == [False] * len(smoke.CHECKS)
    assert {c.detail for c in checks} == {"connection refused", "no page to read the assets from (see the page check)"}


def test_a_server_that_never_answers_times_out(fake):
    fake.broken[("GET", "/health")] = lambda call: time.sleep(2) or json_answer(200, {})
    start = time.monotonic()
    check = run(fake, smoke.check_health, timeout=0.3)
    assert not check.ok and check.detail == "no answer within 0.3 s"
    assert time.monotonic() - start < 1.5


# --- waiting for the stack and the whole run -----------------------------------------------

def test_wait_ready_waits_for_the_database(fake):
    fake.broken[("GET", "/health")] = lambda call: (
        (502, {}, "bad gateway") if call <= 2 else
        json_answer(200, {"status": "degraded", "database": "unavailable"}) if call == 3 else None)
    client = smoke.Client(fake.url)
    took = smoke.wait_ready(client, timeout=5, interval=0.05)
    client.close()
    assert took < 5 and fake.calls[("GET", "/health")] == 4


def test_wait_ready_gives_up_at_the_deadline_saying_why(fake):
    fake.broken[("GET", "/health")] = json_answer(200, {"status": "degraded", "database": "unavailable"})
    client = smoke.Client(fake.url)
    start = time.monotonic()
    with pytest.raises(Problem) as raised:
        smoke.wait_ready(client, timeout=0.5, interval=0.1, hint="start it")
    client.close()
    assert 0.5 <= time.monotonic() - start < 1.5
    assert str(raised.value).startswith(f"smoke: {fake.url} not ready after 0.")
    assert str(raised.value).endswith("s (last answer: database unavailable); start it")
    assert 3 <= fake.calls[("GET", "/health")] <= 7


def test_wait_ready_on_a_closed_port_names_the_reason():
    client = smoke.Client(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Problem, match=r"not ready after 0\.\d s \(last answer: connection refused\)"):
        smoke.wait_ready(client, timeout=0.3, interval=0.1)


DEV = stack_target(Context(config=project_config()))


def context(monkeypatch):
    monkeypatch.setattr(smoke, "effective_env", lambda c: {"CORS_ORIGINS": ALLOWED})
    return Context(config=project_config())


def test_run_prints_a_line_per_check_and_the_summary(fake, monkeypatch):
    out = []
    checks = smoke.run(context(monkeypatch), DEV, base_url=fake.url, timeout=5, out=out.append)
    assert all(check.ok for check in checks)
    assert out[0].startswith(f"smoke: {fake.url} ready after ")
    assert [line.split()[:2] for line in out[1:-1]] == [["ok", name] for name, _ in smoke.CHECKS]
    assert out[-1].startswith(f"smoke: {len(smoke.CHECKS)} passed, 0 failed in ")


def test_run_raises_naming_the_failed_checks(fake, monkeypatch):
    fake.broken[("GET", "/metrics")] = (404, {}, "")
    out = []
    with pytest.raises(Problem, match=f"smoke: metrics failed against {fake.url}; see the FAIL lines"):
        smoke.run(context(monkeypatch), DEV, base_url=fake.url, timeout=5, out=out.append)
    assert out[-2].startswith("FAIL  metrics")
    assert out[-1].startswith(f"smoke: {len(smoke.CHECKS) - 1} passed, 1 failed")


def test_run_json_is_one_document(fake, monkeypatch):
    out = []
    smoke.run(context(monkeypatch), DEV, base_url=fake.url, as_json=True, timeout=5, out=out.append)
    [text] = out
    document = json.loads(text)
    assert document["base_url"] == fake.url and document["origin"] == ALLOWED and document["ready"] is True
    assert [check["name"] for check in document["checks"]] == [name for name, _ in smoke.CHECKS]
    assert all(check["ok"] for check in document["checks"])
    assert document["summary"]["passed"] == len(smoke.CHECKS) and document["summary"]["ok"] is True


def test_run_json_when_never_ready(monkeypatch):
    out = []
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Problem, match="not ready"):
        smoke.run(context(monkeypatch), DEV, base_url=url, as_json=True, timeout=0.3, out=out.append)
    document = json.loads(out[0])
    assert document["ready"] is False and document["checks"] == [] and document["summary"]["ok"] is False
    assert "connection refused" in document["error"]


def test_a_local_stack_is_never_reached_through_a_proxy_from_the_environment():
    assert smoke.Client("http://127.0.0.1:8080").session.trust_env is False
    assert smoke.Client("http://localhost:3000").session.trust_env is False
    assert smoke.Client("https://staging.example.com").session.trust_env is True
