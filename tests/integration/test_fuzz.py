"""The production stack's API under generated and hostile input, through the frontend's
origin: schemathesis derives requests from the OpenAPI document (valid and invalid ones,
strings from the whole of Unicode with lone surrogates, controls, bidi controls,
noncharacters and emoji mixed in), then follows the OpenAPI links of a created todo
(read, update, delete it). No response may be a server error, a non-JSON answer on /api,
a traceback, or lack the CORS headers the page's origin needs. Fixed cases pin what the
fuzzing found; oversized and malformed bodies are refused with clean 4xx answers, by
nginx and by the backend itself."""

import collections
import json
import subprocess
import time
from http.client import HTTPConnection
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    use_after_free,
)

from stackctl.envfile import read_env
from tests.integration.stacks import http

SEED = 20261122  # fixed: a failure reproduces with the same requests
EXAMPLES_PER_OPERATION = 150  # per /api operation and generation mode (valid, invalid)
SCENARIOS = 100  # stateful: sequences of calls that follow the links of a created todo
STEPS_PER_SCENARIO = 10
MIN_REQUESTS = 2000
MAX_REQUESTS = 5000  # hard cap on what one run sends
MAX_FUZZ_SECONDS = 240  # and on how long it sends for
MAX_BODY = 1024 * 1024  # MAX_BODY_SIZE of the backend, client_max_body_size of nginx

# Characters that break naive code, mixed into generated strings. Refused in titles: NUL,
# C0 and C1 controls, lone and reversed surrogates (requests sends JSON with ensure_ascii:
# they reach the server as escapes such as "\ud800"). Accepted: bidi controls, zero-width
# characters, a BOM, noncharacters, the last code point, astral emoji and a ZWJ sequence.
REFUSED = "\x00\x01\x08\x0b\x0c\r\x1b\x1f\x7f\x80\x85\x9f" + "\ud800\udbff\udc00\udfff"
ODD = (
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
    "\u200b\u200d\ufeff"
    "\ufdd0\ufdef\ufffe\uffff\U0001fffe\U0010ffff"
    "\U0001f600\U0001f4a9\U0001f469\u200d\U0001f4bb"
)
# Anything at all, whitespace too: st.characters() draws from every code point, surrogates included.
HOSTILE_TEXT = st.lists(
    st.one_of(st.sampled_from(REFUSED + ODD + "\t\n \u2028"), st.characters()),
    max_size=40,
).map("".join)
# Titles the API must accept and give back unchanged: no controls, no surrogates, no
# whitespace (that could be trimmed at the edges).
ODD_BUT_VALID_TITLE = st.lists(
    st.one_of(st.sampled_from(ODD), st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"])),
    min_size=1,
    max_size=60,
).map("".join)
# What happens to a generated JSON object body: nothing, a hostile title, an odd but valid
# title, or an extra field with a hostile name.
TWISTS = st.one_of(
    st.none(),
    st.tuples(st.just("title"), HOSTILE_TEXT),
    st.tuples(st.just("title"), ODD_BUT_VALID_TITLE),
    st.tuples(HOSTILE_TEXT, st.just("x")),
)
# Schemathesis's own checks on top of ours: answers as documented, and (stateful) a created
# todo can be read, a deleted one cannot.
CHECKS = [content_type_conformance, response_schema_conformance]
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]
HYPOTHESIS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}


@pytest.fixture(scope="module")
def stack(prod_stack):
    return prod_stack


@pytest.fixture(scope="module")
def origin(stack):
    """An origin the stack's CORS_ORIGINS allows: the page's, as a browser sends it."""
    allowed = read_env(stack.path / ".env").get("CORS_ORIGINS") or "http://localhost:8080"
    return allowed.split(",")[0].strip()


def api(stack, method, path, **kwargs):
    return http(method, stack.url("PROD_PORT") + path, **kwargs)


REFUSED_BY_NGINX = {414, 431}


def problems_with(response, origin):
    """What is wrong with one answer (a requests or schemathesis response) from the frontend
    origin, whatever the request was: [] when nothing is."""
    request, problems = response.request, []
    path = requests.utils.urlparse(request.url).path
    content_type = response.headers.get("content-type") or ""
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if response.status_code >= 500:
        problems.append("server error")
    if b"Traceback" in response.content:
        problems.append("traceback in the body")
    if path.startswith("/api/"):
        if response.status_code == 204:
            if response.content:
                problems.append("204 with a body")
        elif not content_type.startswith("application/json"):
            problems.append(f"not JSON ({content_type or 'no content type'})")
        else:
            try:
                json.loads(response.content.decode("utf-8"))
            except ValueError:
                problems.append("a body that is not JSON in UTF-8")
        allowed = response.headers.get("access-control-allow-origin")
        allowed = allowed[0] if isinstance(allowed, list) else allowed
        # What nginx refuses itself (a URI or headers past its buffers) never reaches the
        # backend, which alone knows CORS_ORIGINS: JSON, but without CORS headers.
        if allowed not in (origin, "*") and response.status_code not in REFUSED_BY_NGINX:
            problems.append(f"no CORS header (access-control-allow-origin: {allowed}, Origin: {origin})")
    if request.method in ("POST", "PATCH") and response.status_code in (200, 201) and not problems:
        sent, got = json.loads(request.body), json.loads(response.content)
        # Titles are trimmed; one with nothing to trim must come back as it was sent.
        title = sent.get("title") if isinstance(sent, dict) else None
        if isinstance(title, str) and title == title.strip() and got.get("title") != title:
            problems.append(f"title changed (sent {title!r}, got {got.get('title')!r})")
    return problems


def describe(response):
    body = response.request.body
    body = body[:300] if isinstance(body, bytes) else body
    return (
        f"{response.status_code} {response.request.method} {response.request.url} body {body!r}\n"
        f"      -> {response.content[:300]!r}"
    )


class Tally:
    """Every response of the fuzzing, by status and operation; the problems kept for the report."""

    def __init__(self, origin):
        self.origin = origin
        self.statuses = collections.Counter()
        self.per_operation = collections.Counter()
        self.problems = collections.Counter()  # kind -> how many responses have it
        self.examples = {}
        self.started = time.monotonic()

    @property
    def total(self):
        return sum(self.statuses.values())

    def exhausted(self):
        return self.total >= MAX_REQUESTS or time.monotonic() - self.started > MAX_FUZZ_SECONDS

    def record(self, label, case, response, checks, recorder=None):
        self.statuses[response.status_code] += 1
        self.per_operation[label] += 1
        problems = problems_with(response, self.origin)
        try:
            case.validate_response(response, checks=checks, recorder=recorder)
        except FailureGroup as failures:
            problems += [failure.title for failure in failures.exceptions]
        kinds = [f"{label}: {problem.split(' (')[0]}" for problem in problems]
        self.problems.update(kinds)
        if problems:  # the first response with these problems
            self.examples.setdefault(tuple(kinds), f"{label}: {'; '.join(problems)}\n    {describe(response)}")


def sender(operation, mode, url, session, tally):
    """A Hypothesis test that sends EXAMPLES_PER_OPERATION generated cases of one operation,
    most of them twisted: a JSON object body gets a hostile title, an odd but valid one, or
    a field with a hostile name (sent as the body instead of the generated one)."""
    label = f"{operation.label} ({mode.value})"

    @seed(SEED)
    @settings(max_examples=EXAMPLES_PER_OPERATION, phases=[Phase.explicit, Phase.generate], **HYPOTHESIS)
    @given(case=operation.as_strategy(generation_mode=mode), twist=TWISTS)
    def send(case, twist):
        if tally.exhausted():
            return
        body = {}
        if twist is not None and isinstance(case.body, dict):
            name, value = twist
            body = {"json": {**case.body, name: value}}
        response = case.call(base_url=url, session=session, timeout=15, **body)
        tally.record(label, case, response, CHECKS)

    return send


def stateful(schema, url, session, tally):
    """Schemathesis's state machine over the OpenAPI links: create a todo, then read, update
    and delete that id (and the list), valid and (one step in ten) invalid calls."""

    class Workflow(schema.as_state_machine()):
        scenarios = 0

        def get_call_kwargs(self, case):
            return {"base_url": url, "session": session, "timeout": 15}

        def validate_response(self, response, case, **kwargs):
            tally.record(f"{case.operation.label} (stateful)", case, response, STATEFUL_CHECKS, self.recorder)

        def teardown(self):
            Workflow.scenarios += 1

    for attempt in range(10):
        if Workflow.scenarios >= SCENARIOS or tally.exhausted():
            return
        seed(SEED + attempt)(Workflow)
        limits = settings(max_examples=SCENARIOS - Workflow.scenarios, stateful_step_count=STEPS_PER_SCENARIO)
        try:
            Workflow.run(settings=settings(limits, **HYPOTHESIS))
        except FlakyStrategyDefinition:
            # Hypothesis replayed the start of a scenario and the server answered otherwise than
            # the first time (its state moved on: an id since deleted): no finding. Go on.
            print(f"stateful: Hypothesis met a server whose state moved on after {Workflow.scenarios} scenarios")


def fuzz(url, tally):
    """Every /api operation's generated cases, valid and invalid ones (/ and /health take no
    input), then the stateful scenarios; every request carries the page's Origin."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json", timeout=10)
    # Strings over the whole of Unicode that UTF-8 can carry, NUL included (the defaults,
    # spelled out); the surrogates come with the twists above.
    schema.config.generation.update(allow_x00=True, codec="utf-8")
    session = requests.Session()
    session.headers["Origin"] = tally.origin
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [operation for operation in operations if operation.path.startswith("/api/")]
    assert operations, "the OpenAPI document lists no /api operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sender(operation, mode, url, session, tally)()
            except Unsatisfiable:
                pytest.fail(f"nothing to generate for {operation.label} ({mode.value})")
    stateful(schema, url, session, tally)


# --- fixed cases: what the fuzzing found, pinned as plain requests -------------------------

CONTROL_TITLES = [
    "a\x00b",
    "\x00",
    "a\x01b",
    "a\x08b",
    "a\x0bb",
    "a\x0cb",
    "a\rb",
    "\x1b[31mred",
    "a\x7fb",
    "a\x80b",
    "a\x85b",
    "a\x9fb",
]
ALLOWED_WHITESPACE_TITLES = ["a\tb", "line one\nline two", "tab\tand\nnewline"]
# Lone surrogates as JSON escapes (UTF-8 cannot carry them raw): high, low, a reversed pair
# in the title (the error names it), one in a field's name.
LONE_SURROGATE_BODIES = {  # body: the field the error must name
    b'{"title": "\\ud800"}': "title",
    b'{"title": "a\\udfffb"}': "title",
    b'{"title": "\\udc00\\ud800"}': "title",
    b'{"title": "ok", "\\ud800": true}': None,
}
ODD_TITLES = [
    "\u202eevil.exe\u202c",  # right-to-left override, pop directional formatting
    "\u2066isolated\u2069 \u2067rtl\u2069 \u2068first strong\u2069",
    "\U0001f600 \U0001f469\u200d\U0001f4bb \U0001f3f3\ufe0f\u200d\U0001f308",  # astral, ZWJ sequences
    "\ufdd0\ufdef\ufffe\uffff\U0001fffe\U0010ffff",  # noncharacters, the last code point
    "e\u0301 is not \u00e9",  # not normalized
    "zero\u200bwidth\ufeffBOM",
]


@pytest.fixture(scope="module")
def todo_path(stack, origin):
    """A todo for the PATCH cases."""
    created = api(
        stack, "POST", "/api/v1/todos", json={"title": "target of the fixed cases"}, headers={"Origin": origin}
    )
    assert created.status_code == 201, created.text
    return f"/api/v1/todos/{created.json()['id']}"


def write(stack, origin, todo_path, method, **kwargs):
    """POST a new todo or PATCH the existing one, from the page's origin."""
    path = "/api/v1/todos" if method == "POST" else todo_path
    return api(stack, method, path, headers={"Origin": origin, **kwargs.pop("headers", {})}, **kwargs)


def assert_refused(response, origin):
    """A 422 with the field errors, as JSON and with the CORS headers; the errors' locations."""
    problems = problems_with(response, origin)
    assert response.status_code == 422 and not problems, f"{response.status_code} {problems} {response.content[:200]!r}"
    errors = response.json()["detail"]
    assert errors and all(error["loc"][0] == "body" for error in errors), errors
    return [error["loc"] for error in errors]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("title", CONTROL_TITLES, ids=ascii)
def test_control_characters_in_a_title_are_422_naming_the_field(stack, origin, todo_path, method, title):
    response = write(stack, origin, todo_path, method, json={"title": title})
    assert ["body", "title"] in assert_refused(response, origin)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("body", LONE_SURROGATE_BODIES, ids=bytes.decode)
def test_a_lone_surrogate_is_a_json_422_with_cors_headers(stack, origin, todo_path, method, body):
    response = write(stack, origin, todo_path, method, data=body, headers={"Content-Type": "application/json"})
    locations = assert_refused(response, origin)
    field = LONE_SURROGATE_BODIES[body]
    assert field is None or ["body", field] in locations, locations


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("title", ALLOWED_WHITESPACE_TITLES + ODD_TITLES, ids=ascii)
def test_tabs_newlines_bidi_controls_and_emoji_are_kept_byte_for_byte(stack, origin, todo_path, method, title):
    written = write(stack, origin, todo_path, method, json={"title": title})
    assert written.status_code in (200, 201), f"{written.status_code} {written.content[:300]!r}"
    assert not problems_with(written, origin), problems_with(written, origin)
    read = api(stack, "GET", f"/api/v1/todos/{written.json()['id']}")
    for response in (written, read):
        assert response.json()["title"].encode() == title.encode(), (title, response.content)


def test_schemathesis_finds_no_server_error(stack, origin, measure):
    tally = Tally(origin)
    fuzz(stack.url("PROD_PORT"), tally)
    seconds = time.monotonic() - tally.started
    measure("fuzz: schemathesis requests", tally.total, "requests")
    measure("fuzz: schemathesis duration", seconds, "s")
    measure("fuzz: schemathesis 5xx responses", sum(n for s, n in tally.statuses.items() if s >= 500), "responses")
    print(f"schemathesis: {tally.total} requests in {seconds:.0f} s; statuses {dict(sorted(tally.statuses.items()))}")
    for label, count in sorted(tally.per_operation.items()):
        print(f"  {count:4d}  {label}")
    for kind, count in tally.problems.most_common():
        print(f"  PROBLEM {count:4d}  {kind}")
    if tally.problems:
        pytest.fail(f"{sum(tally.problems.values())} problems, for example:\n" + "\n".join(tally.examples.values()))
    assert tally.total >= MIN_REQUESTS, f"only {tally.total} requests generated"
    assert all(tally.statuses[s] for s in (201, 204, 422)), "valid or invalid input never got through"
    assert api(stack, "GET", "/health").json()["status"] == "ok"


# Requests nginx refuses before proxying (request line, URI, header size): sent byte for
# byte (requests would re-quote %zz). Under /api/ the refusal is JSON with a "detail",
# like the backend's; elsewhere it stays nginx's HTML page. No CORS header is asserted:
# nginx does not know the backend's CORS_ORIGINS.
NGINX_REFUSALS = {  # id: (target, extra headers, status)
    "NUL in the path": ("/api/v1/todos/%00", {}, 400),
    "bad percent escape": ("/api/v1/todos/%zz", {}, 400),
    "URI over 8 KiB": ("/api/v1/todos/" + "a" * 16384, {}, 414),
    "header over 8 KiB": ("/api/v1/todos", {"X-Padding": "a" * 16384}, 431),
}


def raw_get(stack, target, headers):
    """GET with the request target exactly as given; (status, content type, body)."""
    origin = urlsplit(stack.url("PROD_PORT"))
    connection = HTTPConnection(origin.hostname, origin.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("target, headers, status", NGINX_REFUSALS.values(), ids=NGINX_REFUSALS.keys())
def test_what_nginx_refuses_under_api_is_a_json_4xx(stack, origin, target, headers, status):
    got, content_type, body = raw_get(stack, target, {"Origin": origin, **headers})
    assert (got, content_type) == (status, "application/json"), f"{got} {content_type} {body[:200]!r}"
    assert isinstance(json.loads(body)["detail"], str), body


def test_what_nginx_refuses_outside_api_stays_its_html_page(stack):
    status, content_type, body = raw_get(stack, "/todos/%00", {})
    assert (status, content_type) == (400, "text/html"), f"{status} {content_type} {body[:200]!r}"


def title_body(size):
    """A JSON body of exactly `size` bytes: a todo whose title is far too long."""
    frame = json.dumps({"title": ""})
    return json.dumps({"title": "x" * (size - len(frame))}).encode()


def assert_refused_as_too_large(response):
    assert response.status_code == 413, f"{response.status_code} {response.text[:300]}"
    assert "Traceback" not in response.text


def test_a_body_over_one_mebibyte_is_refused_by_the_frontend_origin(stack):
    headers = {"Content-Type": "application/json"}
    assert_refused_as_too_large(api(stack, "POST", "/api/v1/todos", data=title_body(MAX_BODY + 1), headers=headers))
    assert_refused_as_too_large(api(stack, "PATCH", "/api/v1/todos/1", data=title_body(4 * MAX_BODY), headers=headers))

    def chunks():  # no Content-Length: sent chunked, counted as it arrives
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"x" * 65536

    assert_refused_as_too_large(api(stack, "POST", "/api/v1/todos", data=chunks(), headers=headers))
    # At the limit the body gets through to validation: the limit is where it should be.
    at_limit = api(stack, "POST", "/api/v1/todos", data=title_body(MAX_BODY), headers=headers)
    assert at_limit.status_code == 422 and at_limit.json()["detail"][0]["loc"] == ["body", "title"]
    assert api(stack, "GET", "/health").status_code == 200


# Run inside the backend container against uvicorn itself (the prod backend publishes no
# port): declares a body over the limit and reads the answer before sending any of it,
# as clients that send `Expect: 100-continue` (curl) do.
DIRECT = """
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=10)
conn.putrequest("POST", "/api/v1/todos")
conn.putheader("Content-Type", "application/json")
conn.putheader("Content-Length", str(int(sys.argv[1])))
conn.putheader("Expect", "100-continue")
conn.endheaders()
response = conn.getresponse()
print(json.dumps({"status": response.status, "type": response.getheader("Content-Type"),
                  "body": response.read().decode()}))
"""


def test_a_body_over_one_mebibyte_is_refused_by_the_backend_itself(stack):
    result = subprocess.run(
        ["docker", "exec", stack.container("backend", prod=True), "python", "-c", DIRECT, str(MAX_BODY + 1)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == 413 and answer["type"] == "application/json", answer
    assert json.loads(answer["body"]) == {"detail": f"Request body exceeds {MAX_BODY} bytes"}


@pytest.mark.parametrize("method, path", [("POST", "/api/v1/todos"), ("PATCH", "/api/v1/todos/1")])
def test_malformed_json_is_422_naming_where(stack, method, path):
    response = api(stack, method, path, data=b'{"title": "unfinished', headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid" and error["loc"][0] == "body" and isinstance(error["loc"][1], int)


def test_wrong_field_types_are_422_naming_each_field(stack):
    response = api(stack, "POST", "/api/v1/todos", json={"title": 5, "done": "yes", "colour": "red"})
    assert response.status_code == 422, response.text
    fields = {tuple(error["loc"]): error["type"] for error in response.json()["detail"]}
    assert fields == {
        ("body", "title"): "string_type",
        ("body", "done"): "bool_type",
        ("body", "colour"): "extra_forbidden",
    }
