"""The production stack's API under generated and hostile input, through the frontend's
origin: schemathesis derives requests from the OpenAPI document (valid and invalid ones)
and no response may be a server error; oversized and malformed bodies are refused with
clean 4xx answers, by nginx and by the backend itself."""

import collections
import json
import subprocess
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.integration.stacks import http

SEED = 20261122  # fixed: a failure reproduces with the same requests
EXAMPLES_PER_OPERATION = 60  # per generation mode (valid, invalid)
MIN_REQUESTS = 500
MAX_REQUESTS = 1500  # hard cap on what one run sends
MAX_FUZZ_SECONDS = 300  # and on how long it sends for
MAX_BODY = 1024 * 1024  # MAX_BODY_SIZE of the backend, client_max_body_size of nginx


@pytest.fixture(scope="module")
def stack(prod_stack):
    return prod_stack


def api(stack, method, path, **kwargs):
    return http(method, stack.url("PROD_PORT") + path, **kwargs)


class Tally:
    """Every response schemathesis got, by status; the server errors kept for the report."""

    def __init__(self):
        self.statuses = collections.Counter()
        self.per_operation = collections.Counter()
        self.server_errors = []
        self.tracebacks = []
        self.started = time.monotonic()

    @property
    def total(self):
        return sum(self.statuses.values())

    def exhausted(self):
        return self.total >= MAX_REQUESTS or time.monotonic() - self.started > MAX_FUZZ_SECONDS

    def record(self, label, case, response):
        self.statuses[response.status_code] += 1
        self.per_operation[label] += 1
        if response.status_code >= 500:
            self.server_errors.append(
                f"{response.status_code} {label}: {response.text[:200]}\n    {case.as_curl_command()}"
            )
        if "Traceback" in response.text:
            self.tracebacks.append(f"{label}: {case.as_curl_command()}")


def sender(operation, mode, origin, session, tally):
    """A Hypothesis test that sends EXAMPLES_PER_OPERATION generated cases of one operation."""
    label = f"{operation.label} ({mode.value})"

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case):
        if tally.exhausted():
            return
        tally.record(label, case, case.call(base_url=origin, session=session, timeout=15))

    return send


def fuzz(origin, tally):
    """Send every operation's generated cases, valid and invalid ones."""
    schema = schemathesis.openapi.from_url(origin + "/openapi.json", timeout=10)
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sender(operation, mode, origin, session, tally)()
            except Unsatisfiable:
                # Nothing invalid to send: the operation takes no input (GET /health).
                assert mode is GenerationMode.NEGATIVE, operation.label


def test_schemathesis_finds_no_server_error(stack, measure):
    tally = Tally()
    fuzz(stack.url("PROD_PORT"), tally)
    measure("fuzz: schemathesis requests", tally.total, "requests")
    measure("fuzz: schemathesis 5xx responses", len(tally.server_errors), "responses")
    print(f"schemathesis: {tally.total} requests; statuses {dict(sorted(tally.statuses.items()))}")
    for label, count in sorted(tally.per_operation.items()):
        print(f"  {count:4d}  {label}")
    assert not tally.server_errors, f"{len(tally.server_errors)} server errors:\n" + "\n".join(tally.server_errors[:10])
    assert not tally.tracebacks, "responses with a traceback:\n" + "\n".join(tally.tracebacks[:10])
    assert tally.total >= MIN_REQUESTS, f"only {tally.total} requests generated"
    assert tally.statuses[201] and tally.statuses[422], "neither valid nor invalid input got through"
    assert api(stack, "GET", "/health").json()["status"] == "ok"


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
