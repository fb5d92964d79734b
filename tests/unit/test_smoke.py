"""`inv smoke` without a stack: the task's pure parts, the readiness wait with a fake probe
or a closed port, and the smoke suite's output (tests/smoke) against a closed port: a FAIL
line per check, the summary, the JSON document."""

import json
import re
import subprocess

import pytest
import requests
from invoke import Context

from stackctl import Problem, smoke
from stackctl.compose import stack_target
from stackctl.copies import free_port
from tests.helpers import project_config
from tests.smoke import CHECKS as NAMES
from tests.smoke.test_checks import asset_paths

ALLOWED = "http://localhost:3000"

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


def closed_url():
    return f"http://127.0.0.1:{free_port()}"


# --- pure parts -------------------------------------------------------------------------


def test_assets_of_the_vite_dev_page():
    assert asset_paths(DEV_HTML, "http://127.0.0.1:3000") == ["/@vite/client", "/favicon.svg", "/src/main.tsx"]


def test_assets_of_the_built_page():
    assert asset_paths(PROD_HTML, "http://127.0.0.1:8080") == [
        "/favicon.svg",
        "/assets/index-AbC123.js",
        "/assets/index-XyZ789.css",
    ]


def test_assets_skip_other_origins_and_data_urls_and_resolve_relative_ones_once():
    html = """<link rel="preconnect" href="https://fonts.example.com">
    <script src="https://cdn.example.com/lib.js"></script>
    <link rel="icon" href="data:image/png;base64,AAAA">
    <script src="assets/app.js?v=2"></script><script src="/assets/app.js?v=2"></script>
    <link rel="stylesheet" href="http://127.0.0.1:8080/assets/app.css">
    <script>inline()</script><a href="/not-an-asset">x</a><link rel="x" href=" ">"""
    assert asset_paths(html, "http://127.0.0.1:8080") == ["/assets/app.js?v=2", "/assets/app.css"]


@pytest.mark.parametrize(
    "value, first",
    [
        ("http://localhost:3000,http://127.0.0.1:3000", "http://localhost:3000"),
        (" https://app.example/ , http://x", "https://app.example"),
        ('["https://a.example", "https://b.example"]', "https://a.example"),
        ("", None),
        (None, None),
        (" , ", None),
        ("[not json", None),
    ],
)
def test_first_origin_reads_cors_origins_like_the_backend(value, first):
    assert smoke.first_origin(value) == first


def test_json_report_shape():
    checks = [
        {"name": "page", "ok": True, "ms": 12.44, "detail": "fine"},
        {"name": "metrics", "ok": False, "ms": 3.0, "detail": "answered 403"},
    ]
    document = json.loads(json.dumps(smoke.report("http://127.0.0.1:8080", ALLOWED, checks, 0.52, 1.04)))
    assert document == {
        "base_url": "http://127.0.0.1:8080",
        "origin": ALLOWED,
        "ready": True,
        "waited_s": 1.0,
        "checks": [
            {"name": "page", "ok": True, "ms": 12.4, "detail": "fine"},
            {"name": "metrics", "ok": False, "ms": 3.0, "detail": "answered 403"},
        ],
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
    monkeypatch.setattr(
        smoke,
        "effective_env",
        lambda c: {"FRONTEND_PORT": "3100", "PROD_PORT": "9090", "CORS_ORIGINS": "https://app.example,http://x"},
    )
    assert smoke.default_base_url(c, stack_target(c)) == "http://127.0.0.1:3100"
    assert smoke.default_base_url(c, stack_target(c, prod=True)) == "http://127.0.0.1:9090"
    assert smoke.default_origin(c, stack_target(c, prod=True)) == "https://app.example"


# --- the client ---------------------------------------------------------------------------


class Redirecting(requests.adapters.BaseAdapter):
    """A transport that answers every request with a redirect, noting what it was asked."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append((request.method, request.url, kwargs.get("timeout")))
        response = requests.Response()
        response.status_code, response.url, response.request = 302, request.url, request
        response.headers["Location"] = "/elsewhere"
        return response

    def close(self):
        pass


def test_the_client_asks_its_origin_by_path_with_a_timeout_and_follows_no_redirect():
    client = smoke.Client("http://127.0.0.1:8080/", timeout=2.5)
    transport = Redirecting()
    client.mount("http://", transport)
    assert client.get("/health").status_code == 302
    assert client.options("/api/v1/todos", timeout=1).status_code == 302
    assert transport.sent == [
        ("GET", "http://127.0.0.1:8080/health", 2.5),
        ("OPTIONS", "http://127.0.0.1:8080/api/v1/todos", 1),
    ]


def test_a_local_stack_is_never_reached_through_a_proxy_from_the_environment():
    assert smoke.Client("http://127.0.0.1:8080").trust_env is False
    assert smoke.Client("http://localhost:3000").trust_env is False
    assert smoke.Client("https://staging.example.com").trust_env is True


# --- waiting for the stack ----------------------------------------------------------------


def answers(*reasons):
    """A fake readiness probe giving these answers in turn (None: ready), noting each timeout."""
    timeouts = []

    def probe(client, timeout):
        timeouts.append(timeout)
        return reasons[min(len(timeouts), len(reasons)) - 1]

    return probe, timeouts


def test_wait_ready_waits_for_the_database():
    probe, timeouts = answers("/health answered 502", "database unavailable", None)
    took = smoke.wait_ready(smoke.Client("http://127.0.0.1:1"), timeout=5, probe=probe, interval=0.01)
    assert took < 1 and len(timeouts) == 3


def test_wait_ready_gives_up_at_the_deadline_saying_why():
    probe, timeouts = answers("database unavailable")
    with pytest.raises(Problem) as raised:
        smoke.wait_ready(smoke.Client("http://127.0.0.1:1"), timeout=0.5, hint="start it", probe=probe, interval=0.1)
    assert str(raised.value).startswith("smoke: http://127.0.0.1:1 not ready after 0.")
    assert str(raised.value).endswith("s (last answer: database unavailable); start it")
    assert 3 <= len(timeouts) <= 6
    assert all(0.1 <= timeout <= 0.5 for timeout in timeouts), "each probe's timeout ends at the deadline"


def test_wait_ready_names_the_last_full_answer_not_a_probe_cut_short_by_the_deadline():
    def probe(client, timeout):
        return "/health answered 502" if timeout == client.timeout else f"no answer within {timeout:g} s"

    with pytest.raises(Problem) as raised:
        smoke.wait_ready(smoke.Client("http://127.0.0.1:1", timeout=0.2), timeout=0.5, probe=probe, interval=0.05)
    assert "(last answer: /health answered 502)" in str(raised.value)


def test_wait_ready_on_a_closed_port_names_the_reason():
    with pytest.raises(Problem, match=r"not ready after 0\.\d s \(last answer: connection refused\)"):
        smoke.wait_ready(smoke.Client(closed_url()), timeout=0.3, interval=0.1)


# --- the suite's output, and the task around it --------------------------------------------


def test_the_suite_against_a_closed_port_prints_a_fail_line_per_check_and_the_summary(tmp_path):
    url, path = closed_url(), tmp_path / "smoke.json"
    result = subprocess.run(
        smoke.suite_args(url, ALLOWED, path, waited_s=1.26), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["FAIL", name] for name in NAMES], result.stdout
    assert re.fullmatch(r"FAIL  page {8}  [ \d]{4}\d ms  connection refused", lines[0]), lines[0]
    assert lines[1].endswith(" ms  no page to read the assets from (see the page check)")
    assert all(line.endswith(" ms  connection refused") for line in lines[2:-1])
    assert lines[-1].startswith("smoke: 0 passed, 8 failed in ") and result.stdout.endswith(" s\n")
    assert result.stderr == ""
    document = json.loads(path.read_text())
    assert {key: document[key] for key in ("base_url", "origin", "ready", "waited_s")} == {
        "base_url": url,
        "origin": ALLOWED,
        "ready": True,
        "waited_s": 1.3,
    }
    assert [(check["name"], check["ok"]) for check in document["checks"]] == [(name, False) for name in NAMES]
    assert document["checks"][0]["detail"] == "connection refused"
    assert document["summary"] == {**document["summary"], "passed": 0, "failed": 8, "ok": False}


DEV = stack_target(Context(config=project_config()))


def never_ready_run(monkeypatch, **kwargs):
    monkeypatch.setattr(smoke, "effective_env", lambda c: {"CORS_ORIGINS": ALLOWED})
    out = []
    with pytest.raises(Problem) as raised:
        smoke.run(Context(config=project_config()), DEV, base_url=closed_url(), out=out.append, **kwargs)
    return str(raised.value), out


def test_run_says_in_one_line_when_the_stack_is_never_ready(monkeypatch):
    message, out = never_ready_run(monkeypatch, timeout=0.3)
    assert message.startswith("smoke: http://127.0.0.1:")
    assert " not ready after 0." in message
    assert message.endswith("(last answer: connection refused); is the stack up? `inv ps` shows it, `inv up` starts it")
    assert out == []


def test_run_json_when_never_ready(monkeypatch):
    message, out = never_ready_run(monkeypatch, timeout=0.3, as_json=True)
    [text] = out
    document = json.loads(text)
    assert document["ready"] is False and document["checks"] == [] and document["summary"]["ok"] is False
    assert document["error"] == message and "connection refused" in message


@pytest.mark.parametrize("as_json", [False, True])
def test_run_turns_failed_checks_into_one_problem(monkeypatch, capfd, as_json):
    monkeypatch.setattr(smoke, "wait_ready", lambda client, timeout, hint: 1.26)
    message, out = never_ready_run(monkeypatch, as_json=as_json)
    url = message.split(" failed against ")[1].split(";")[0]
    assert message == f"smoke: {', '.join(NAMES)} failed against {url}; see the FAIL lines"
    suite_output = capfd.readouterr().out
    if as_json:
        [text] = out
        assert json.loads(text)["waited_s"] == 1.3 and suite_output == ""
    else:
        assert out == [f"smoke: {url} ready after 1.3 s"]
        assert suite_output.splitlines()[-1].startswith("smoke: 0 passed, 8 failed in ")
