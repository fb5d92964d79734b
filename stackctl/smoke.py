"""`inv smoke`: is a running stack working, seen from outside?

The checks are a pytest suite, tests/smoke (the page and its assets, /health, the OpenAPI
document, a todo round-trip, CORS preflights, /metrics closed), run against the stack's one public
origin as a browser or a client would reach it. This module is the task around the suite:
which origin, waiting until the stack is ready, running the suite, and its outcome as one
line. Every request has a timeout and every wait is bounded.
"""

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import ROOT, Problem
from .stack import effective_env
from .wait import wait_until

SUITE = ROOT / "tests" / "smoke"
DEFAULT_TIMEOUT = 60.0  # seconds to wait for the stack to be ready
REQUEST_TIMEOUT = 5.0  # seconds per request
READY_INTERVAL = 0.25  # seconds between readiness probes
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Client(requests.Session):
    """requests to one origin, by path: every request has a timeout and follows no redirect,
    and a stack on this machine is never reached through an HTTP(S)_PROXY from the environment."""

    def __init__(self, base_url, timeout=REQUEST_TIMEOUT):
        super().__init__()
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.trust_env = urlsplit(self.base_url).hostname not in LOOPBACK

    def request(self, method, path, **kwargs):
        kwargs["allow_redirects"] = False
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().request(method, self.base_url + path, **kwargs)


def describe_error(error, timeout=REQUEST_TIMEOUT):
    """A requests exception in a few words (for a FAIL line)."""
    text = str(error)
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        for marker, words in (
            ("Connection refused", "connection refused"),
            ("RemoteDisconnected", "connection closed without a response"),
            ("Connection reset", "connection reset"),
            ("Connection aborted", "connection closed without a response"),
            ("Name or service not known", "unknown host"),
            ("Failed to resolve", "unknown host"),
        ):
            if marker in text:
                return words
        return "cannot connect"
    return " ".join(text.split())[:200] or type(error).__name__


def first_origin(cors_origins):
    """The first entry of a CORS_ORIGINS value (comma-separated or a JSON list, as the
    backend reads it), without a trailing slash; None when it lists none."""
    text = (cors_origins or "").strip()
    if text.startswith("["):
        try:
            entries = [str(entry) for entry in json.loads(text)]
        except ValueError:
            return None
    else:
        entries = text.split(",")
    entries = [entry.strip().rstrip("/") for entry in entries if entry.strip()]
    return entries[0] if entries else None


def report(base_url, origin, checks, seconds, waited_s, ready=True, error=None):
    """The --json document; checks are {"name", "ok", "ms", "detail"} in the order they ran."""
    passed = sum(check["ok"] for check in checks)
    document = {
        "base_url": base_url,
        "origin": origin,
        "ready": ready,
        "waited_s": round(waited_s, 1),
        "checks": [{**check, "ms": round(check["ms"], 1)} for check in checks],
        "summary": {
            "passed": passed,
            "failed": len(checks) - passed,
            "seconds": round(seconds, 1),
            "ok": ready and passed == len(checks),
        },
    }
    if error:
        document["error"] = error
    return document


# --- waiting for the stack ----------------------------------------------------------------


def probe_ready(client, timeout=REQUEST_TIMEOUT):
    """None when /health says 200 with the database connected, else why not."""
    try:
        response = client.get("/health", timeout=timeout)
    except requests.RequestException as error:
        return describe_error(error, timeout)
    if response.status_code != 200:
        return f"/health answered {response.status_code}"
    try:
        database = response.json().get("database")
    except (ValueError, AttributeError):
        return "/health did not answer JSON"
    return None if database == "connected" else f"database {database}"


def wait_ready(client, timeout, hint="is the stack up?", probe=probe_ready, interval=READY_INTERVAL):
    """Probe until the stack is ready, for at most `timeout` seconds (each probe's own timeout
    ends at the deadline). Returns the seconds it took; raises a Problem saying why when the
    stack never got ready: the last answer of a probe that had its full time (one cut short by
    the deadline says only that it was cut short, on a busy machine)."""
    start = time.monotonic()
    last = ["no answer"]

    def ready():
        remaining = timeout - (time.monotonic() - start)
        probe_timeout = min(client.timeout, max(0.1, remaining))
        answer = probe(client, timeout=probe_timeout)
        if answer is None or probe_timeout == client.timeout or last[0] == "no answer":
            last[0] = answer
        return answer is None

    waited = wait_until(ready, timeout, interval=interval)
    if waited is None:
        raise Problem(
            f"smoke: {client.base_url} not ready after {time.monotonic() - start:.1f} s "
            f"(last answer: {last[0]}); {hint}"
        )
    return waited


# --- the task -----------------------------------------------------------------------------


def default_base_url(c, target):
    """The stack's public origin: its published frontend port, from .env or the environment."""
    return f"http://127.0.0.1:{target.port(target.public_port, effective_env(c))}"


def default_origin(c, target):
    """The origin the backend should allow: the first entry of CORS_ORIGINS as Compose
    passes it (an empty value counts as unset, as with Compose's `:-` default), else the
    compose files' default, localhost on the public port's default."""
    return first_origin(effective_env(c).get("CORS_ORIGINS")) or f"http://localhost:{target.ports[target.public_port]}"


def check_base_url(url):
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
        raise Problem(f"--base-url must be an origin like http://127.0.0.1:8080, got {url!r}")
    try:
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError:
        raise Problem(f"--base-url has an invalid port: {url!r}") from None
    return url.rstrip("/")


def parse_timeout(value):
    """--timeout as seconds (None: the default); a Problem unless it is a number above 0."""
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise Problem(f"--timeout must be a number of seconds above 0, got {value!r}")
    return seconds


def suite_args(base_url, origin, report_path, waited_s=0.0):
    """pytest on the smoke suite: its conftest prints a line per check and the summary and
    writes the JSON document to report_path; pytest's own report is silenced, and no plugin
    the suite does not need is loaded (no cache written either)."""
    return [
        sys.executable,
        "-m",
        "pytest",
        str(SUITE),
        "--disable-plugin-autoload",
        "-p",
        "no:cacheprovider",
        "-qq",
        "--tb=no",
        "-rN",
        "-o",
        "console_output_style=classic",
        # The project's pytest.ini options are for the test suite, not for this report.
        "-o",
        "addopts=",
        f"--smoke-base-url={base_url}",
        f"--smoke-origin={origin}",
        f"--smoke-json={report_path}",
        f"--smoke-waited={waited_s:.3f}",
    ]


def run(c, target, base_url=None, origin=None, as_json=False, timeout=None, out=print):
    """Wait until the stack is ready, run the smoke suite, print its results (lines, or with
    as_json the JSON document alone); raise a Problem when the stack never got ready or any
    check failed. Returns the checks."""
    base_url = check_base_url(base_url) if base_url else default_base_url(c, target)
    origin = (origin or default_origin(c, target)).rstrip("/")
    timeout = parse_timeout(timeout)
    flag = " --prod" if target.name == "prod" else ""
    with Client(base_url) as client:
        try:
            waited = wait_ready(
                client, timeout, hint=f"is the stack up? `inv ps{flag}` shows it, `inv up{flag}` starts it"
            )
        except Problem as problem:
            if as_json:
                out(json.dumps(report(base_url, origin, [], 0.0, timeout, ready=False, error=str(problem)), indent=2))
            raise
    if not as_json:
        out(f"smoke: {base_url} ready after {waited:.1f} s")
    with tempfile.TemporaryDirectory(prefix="smoke-") as scratch:
        path = Path(scratch) / "smoke.json"
        result = c.run(
            shlex.join(suite_args(base_url, origin, path, waited)),
            warn=True,
            pty=False,
            in_stream=False,
            hide="stdout" if as_json else None,
        )
        if not path.is_file():
            last = (result.stdout.strip().splitlines() or [""])[-1]
            raise Problem(
                f"smoke: the suite ({SUITE}) ended without results, pytest exit code "
                f"{result.exited}{': ' + last if last else ''}"
            )
        document = json.loads(path.read_text())
    if as_json:
        out(json.dumps(document, indent=2))
    failed = [check["name"] for check in document["checks"] if not check["ok"]]
    if failed:
        raise Problem(f"smoke: {', '.join(failed)} failed against {base_url}; see the FAIL lines")
    if result.exited != 0 or not document["checks"]:
        raise Problem(
            f"smoke: the suite ({SUITE}) ran {len(document['checks'])} checks, pytest exit code {result.exited}"
        )
    return document["checks"]
