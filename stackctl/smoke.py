"""`inv smoke`: is a running stack working, seen from outside?

Everything goes through the stack's one public origin (the frontend's published port),
as a browser or a client would: the page and its assets, /health, the OpenAPI document,
a todo round-trip, CORS preflights and /metrics. Every request has a timeout and every
loop is bounded; an unreachable stack is a FAIL line with the reason, never a traceback.
"""
import json
import time
import uuid
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests

from . import Problem
from .stack import effective_env

DEFAULT_TIMEOUT = 60.0  # seconds to wait for the stack to be ready
REQUEST_TIMEOUT = 5.0  # seconds per request
READY_INTERVAL = 1.0  # seconds between readiness probes
MAX_ASSETS = 50  # an HTML page referencing more is not our app
TODOS = "/api/v1/todos"
DISALLOWED_ORIGIN = "http://evil.example"
# The compose files' defaults for CORS_ORIGINS when .env and the environment lack it.
class CheckFailed(Exception):
    """A check found something wrong; the message is the FAIL line's detail."""


@dataclass
class Check:
    name: str
    ok: bool
    ms: float
    detail: str = ""

    def line(self, width=0):
        status = "ok" if self.ok else "FAIL"
        return f"{status:<4}  {self.name:<{width}}  {self.ms:>5.0f} ms  {self.detail}".rstrip()


# --- pure parts -------------------------------------------------------------------------

class _AssetParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        url = attributes.get("src") if tag == "script" else attributes.get("href") if tag == "link" else None
        if url and url.strip():
            self.found.append(url.strip())


def asset_paths(html, base_url):
    """Same-origin URLs the page loads (<script src>, <link href>), as paths, in order,
    without duplicates. Other origins and data: URLs are not ours to check."""
    parser = _AssetParser()
    parser.feed(html)
    parser.close()
    origin = urlsplit(base_url)
    paths = []
    for url in parser.found:
        absolute = urlsplit(urljoin(base_url.rstrip("/") + "/", url))
        if (absolute.scheme, absolute.netloc) != (origin.scheme, origin.netloc):
            continue
        path = absolute.path + (f"?{absolute.query}" if absolute.query else "")
        if path not in paths:
            paths.append(path)
    return paths


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


def describe_error(error, timeout=REQUEST_TIMEOUT):
    """A requests exception in a few words (for a FAIL line)."""
    text = str(error)
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(error, requests.ConnectionError):
        for marker, words in (("Connection refused", "connection refused"),
                              ("RemoteDisconnected", "connection closed without a response"),
                              ("Connection reset", "connection reset"),
                              ("Connection aborted", "connection closed without a response"),
                              ("Name or service not known", "unknown host"),
                              ("Failed to resolve", "unknown host")):
            if marker in text:
                return words
        return "cannot connect"
    return " ".join(text.split())[:200] or type(error).__name__


def summary(checks, seconds):
    passed = sum(check.ok for check in checks)
    return f"smoke: {passed} passed, {len(checks) - passed} failed in {seconds:.1f} s"


def lines(checks, seconds):
    """The text output: one line per check, then the summary."""
    width = max((len(check.name) for check in checks), default=0)
    return [check.line(width) for check in checks] + [summary(checks, seconds)]


def report(base_url, origin, checks, seconds, waited_s, ready=True, error=None):
    """The --json document."""
    passed = sum(check.ok for check in checks)
    document = {
        "base_url": base_url,
        "origin": origin,
        "ready": ready,
        "waited_s": round(waited_s, 1),
        "checks": [{**asdict(check), "ms": round(check.ms, 1)} for check in checks],
        "summary": {"passed": passed, "failed": len(checks) - passed, "seconds": round(seconds, 1),
                    "ok": ready and passed == len(checks)},
    }
    if error:
        document["error"] = error
    return document


# --- talking to the stack ---------------------------------------------------------------

class Client:
    """requests against one origin; every request has a timeout and follows no redirect."""

    def __init__(self, base_url, timeout=REQUEST_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        # A stack on this machine is never reached through an HTTP(S)_PROXY from the environment.
        self.session.trust_env = urlsplit(self.base_url).hostname not in ("127.0.0.1", "localhost", "::1")

    def request(self, method, path, timeout=None, **kwargs):
        return self.session.request(method, self.base_url + path, timeout=timeout or self.timeout,
                                    allow_redirects=False, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def close(self):
        self.session.close()


def _expect_status(response, *wanted):
    if response.status_code not in wanted:
        body = " ".join(response.text.split())[:80]
        raise CheckFailed(f"{response.request.method} {urlsplit(response.url).path} answered "
                          f"{response.status_code}, expected {'/'.join(map(str, wanted))}"
                          + (f": {body}" if body else ""))
    return response


def _json(response):
    try:
        return response.json()
    except ValueError:
        raise CheckFailed(f"{urlsplit(response.url).path} did not answer JSON "
                          f"(Content-Type {response.headers.get('Content-Type', 'none')})") from None


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


def wait_ready(client, timeout, hint="is the stack up?", interval=READY_INTERVAL,
               clock=time.monotonic, sleep=time.sleep):
    """Poll /health until it is 200 with the database connected, for at most `timeout`
    seconds (each probe's own timeout ends at the deadline, give or take half a second;
    at most timeout / interval + 2 probes). Returns the seconds it took; raises a Problem
    saying why when the stack never got ready."""
    start = clock()
    deadline = start + timeout
    while True:
        reason = probe_ready(client, timeout=max(0.5, min(client.timeout, deadline - clock())))
        if reason is None:
            return clock() - start
        remaining = deadline - clock()
        if remaining <= 0:
            raise Problem(f"smoke: {client.base_url} not ready after {clock() - start:.1f} s "
                          f"(last answer: {reason}); {hint}")
        sleep(min(interval, remaining))


# --- the checks: each returns its detail or raises CheckFailed ----------------------------

def check_page(client, state):
    response = _expect_status(client.get("/"), 200)
    if '<div id="root">' not in response.text:
        raise CheckFailed('/ answered 200 but is not the app: no <div id="root">')
    state["html"] = response.text
    return f"{len(response.content)} bytes, {response.headers.get('Content-Type', 'no Content-Type')}"


def check_assets(client, state):
    if "html" not in state:
        raise CheckFailed("no page to read the assets from (see the page check)")
    paths = asset_paths(state["html"], client.base_url)
    if not paths:
        raise CheckFailed("the page references no script or stylesheet")
    if len(paths) > MAX_ASSETS:
        raise CheckFailed(f"the page references {len(paths)} assets, more than {MAX_ASSETS}")
    broken = []
    for path in paths:
        response = client.get(path)
        content_type = response.headers.get("Content-Type", "")
        if response.status_code != 200:
            broken.append(f"{path} ({response.status_code})")
        elif content_type.startswith("text/html"):
            broken.append(f"{path} (HTML instead of the file)")
    if broken:
        raise CheckFailed(f"{len(broken)} of {len(paths)} broken: {', '.join(broken)}")
    return f"{len(paths)} answered 200: {', '.join(paths)}"


def check_health(client, state):
    body = _json(_expect_status(client.get("/health"), 200))
    if body.get("database") != "connected":
        raise CheckFailed(f"database {body.get('database')!r}, status {body.get('status')!r}")
    latency = body.get("db_latency_ms")
    latency = f" ({latency:.1f} ms)" if isinstance(latency, (int, float)) else ""
    return f"status {body.get('status')}, database connected{latency}, version {body.get('version')}"


def check_openapi(client, state):
    document = _json(_expect_status(client.get("/openapi.json"), 200))
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict) or TODOS not in paths:
        raise CheckFailed(f"/openapi.json does not list {TODOS}")
    info = document.get("info") or {}
    return f"{info.get('title')} {info.get('version')}, {len(paths)} paths incl. {TODOS}"


def check_todos(client, state):
    """Create, read, update, list, delete, read again (404); always deletes what it created."""
    title = f"smoke {uuid.uuid4().hex[:12]}"
    created = None
    try:
        created = _json(_expect_status(client.request("POST", TODOS, json={"title": title}), 201))
        todo_id = created.get("id")
        if created.get("title") != title or todo_id is None:
            raise CheckFailed(f"POST {TODOS} returned {created!r}")
        item = f"{TODOS}/{todo_id}"
        read = _json(_expect_status(client.get(item), 200))
        if read.get("title") != title:
            raise CheckFailed(f"GET {item} returned title {read.get('title')!r}, expected {title!r}")
        patch = client.request("PATCH", item, json={"title": f"{title} done", "done": True})
        updated = _json(_expect_status(patch, 200))
        if updated.get("done") is not True or updated.get("title") != f"{title} done":
            raise CheckFailed(f"PATCH {item} returned {updated!r}")
        listing = _json(_expect_status(client.get(TODOS), 200))
        if not any(entry.get("id") == todo_id for entry in listing.get("items") or []):
            raise CheckFailed(f"GET {TODOS} does not list the new todo {todo_id} on its first page")
        _expect_status(client.request("DELETE", item), 204)
        created = None
        _expect_status(client.get(item), 404)
        return f"todo {todo_id}: create, read, update, list, delete, then 404"
    finally:
        if created and created.get("id") is not None:
            try:
                client.request("DELETE", f"{TODOS}/{created['id']}")
            except requests.RequestException:
                pass


def _preflight(client, origin):
    return client.request("OPTIONS", TODOS, headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })


def _answered_by(response):
    """Who answered a preflight: the backend tags every response with X-Request-ID. The Vite
    dev server answers preflights itself (its own `server.cors` policy) unless told not to."""
    return "the backend" if "X-Request-ID" in response.headers else "the frontend server, not the backend"


def check_cors_allowed(client, state):
    origin = state["origin"]
    response = _preflight(client, origin)
    allowed = response.headers.get("Access-Control-Allow-Origin")
    if response.status_code not in (200, 204) or allowed != origin:
        raise CheckFailed(f"preflight from {origin} answered {response.status_code}, "
                          f"Access-Control-Allow-Origin {allowed!r} (answered by {_answered_by(response)}); "
                          "is it in CORS_ORIGINS?")
    return f"preflight from {origin}: {response.status_code}, origin echoed (answered by {_answered_by(response)})"


def check_cors_denied(client, state):
    response = _preflight(client, DISALLOWED_ORIGIN)
    allowed = response.headers.get("Access-Control-Allow-Origin")
    if allowed in (DISALLOWED_ORIGIN, "*"):
        raise CheckFailed(f"preflight from {DISALLOWED_ORIGIN} allowed (Access-Control-Allow-Origin "
                          f"{allowed!r}): CORS_ORIGINS lets any site call the API")
    return (f"preflight from {DISALLOWED_ORIGIN}: {response.status_code}, no Access-Control-Allow-Origin "
            f"(answered by {_answered_by(response)})")


def check_metrics(client, state):
    response = _expect_status(client.get("/metrics"), 200)
    if "# TYPE" not in response.text:
        raise CheckFailed(f"/metrics answered 200 but no Prometheus text "
                          f"(Content-Type {response.headers.get('Content-Type', 'none')})")
    families = response.text.count("# TYPE")
    return f"{families} metric families, {response.headers.get('Content-Type', 'no Content-Type')}"


CHECKS = (
    ("page", check_page),
    ("assets", check_assets),
    ("health", check_health),
    ("openapi", check_openapi),
    ("todos", check_todos),
    ("cors-allowed", check_cors_allowed),
    ("cors-denied", check_cors_denied),
    ("metrics", check_metrics),
)


def run_check(name, function, client, state, clock=time.monotonic):
    """One check, timed; its failure (or the stack's unreachability) becomes a FAIL result."""
    start = clock()
    try:
        ok, detail = True, function(client, state)
    except CheckFailed as failure:
        ok, detail = False, str(failure)
    except requests.RequestException as error:
        ok, detail = False, describe_error(error, client.timeout)
    return Check(name, ok, (clock() - start) * 1000, detail)


def run_checks(client, origin, checks=CHECKS):
    state = {"origin": origin}
    return [run_check(name, function, client, state) for name, function in checks]


# --- the task -----------------------------------------------------------------------------

def default_base_url(c, target):
    """The stack's public origin: its published frontend port, from .env or the environment."""
    return f"http://127.0.0.1:{target.port(target.public_port, effective_env(c))}"


def default_origin(c, target):
    """The origin the backend should allow: the first entry of CORS_ORIGINS as Compose
    passes it (an empty value counts as unset, as with Compose's `:-` default), else the
    compose files' default, localhost on the public port's default."""
    return (first_origin(effective_env(c).get("CORS_ORIGINS"))
            or f"http://localhost:{target.ports[target.public_port]}")


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


def run(c, target, base_url=None, origin=None, as_json=False, timeout=None, out=print):
    """Wait until the stack is ready, run every check, print the results; raise a Problem
    when the stack never got ready or any check failed."""
    base_url = check_base_url(base_url) if base_url else default_base_url(c, target)
    origin = (origin or default_origin(c, target)).rstrip("/")
    timeout = parse_timeout(timeout)
    client = Client(base_url)
    try:
        try:
            flag = " --prod" if target.name == "prod" else ""
            waited = wait_ready(client, timeout, hint=f"is the stack up? `inv ps{flag}` shows it, "
                                                      f"`inv up{flag}` starts it")
        except Problem as problem:
            if as_json:
                out(json.dumps(report(base_url, origin, [], 0.0, timeout, ready=False, error=str(problem)), indent=2))
            raise
        if not as_json:
            out(f"smoke: {base_url} ready after {waited:.1f} s")
        start = time.monotonic()
        checks = run_checks(client, origin)
        seconds = time.monotonic() - start
    finally:
        client.close()
    if as_json:
        out(json.dumps(report(base_url, origin, checks, seconds, waited), indent=2))
    else:
        for line in lines(checks, seconds):
            out(line)
    failed = [check.name for check in checks if not check.ok]
    if failed:
        raise Problem(f"smoke: {', '.join(failed)} failed against {base_url}; see the FAIL lines")
    return checks
