"""The smoke suite's options, its HTTP client and its output. Instead of pytest's report it
prints one line per check as it finishes (`ok    page      12 ms  detail`, `FAIL  todos  ...
reason`), then `smoke: N passed, M failed in S s`; with --smoke-json it also writes the
results as one JSON document. `inv smoke` runs it (stackctl/smoke.py: suite_args)."""

import json
import time
from pathlib import Path

import pytest
import requests

from stackctl import smoke


def pytest_addoption(parser):
    group = parser.getgroup("smoke", "the smoke checks")
    group.addoption("--smoke-base-url", help="origin of the stack to check, e.g. http://127.0.0.1:8080")
    group.addoption("--smoke-origin", help="origin the CORS check expects the stack to allow")
    group.addoption("--smoke-json", help="write the results as one JSON document to this file")
    group.addoption(
        "--smoke-waited",
        type=float,
        default=0.0,
        help="seconds the caller waited for the stack to be ready (for the JSON document)",
    )


def pytest_configure(config):
    for option in ("--smoke-base-url", "--smoke-origin"):
        if not config.getoption(option):
            raise pytest.UsageError(f"the smoke suite needs {option}")
    config.pluginmanager.register(Lines(config), "smoke-lines")


@pytest.fixture(scope="session")
def base_url(pytestconfig):
    return pytestconfig.getoption("--smoke-base-url").rstrip("/")


@pytest.fixture(scope="session")
def origin(pytestconfig):
    return pytestconfig.getoption("--smoke-origin").rstrip("/")


@pytest.fixture(scope="session")
def client(base_url):
    """The stack's origin, by path: a timeout on every request, no redirect followed, no proxy
    for a stack on this machine."""
    with smoke.Client(base_url) as session:
        yield session


def why(error):
    """A check's failure as its FAIL line's detail: the assertion's message, or the stack's
    unreachability in a few words."""
    if isinstance(error, requests.RequestException):
        return smoke.describe_error(error, smoke.REQUEST_TIMEOUT)
    if isinstance(error, (pytest.fail.Exception, pytest.skip.Exception)):
        message = error.msg
    elif isinstance(error, AssertionError):
        message = str(error)  # its first line: what the check says, before pytest's explanation
    else:
        message = f"{type(error).__name__}: {error}"
    return (message or type(error).__name__).splitlines()[0]


class Lines:
    """One line per check (a test's name without `test_`, underscores as hyphens), the summary,
    the JSON document. A check passes when every phase of its test passed; a passing check's
    detail is what it recorded with record_property("detail", ...)."""

    def __init__(self, config):
        self.config = config
        self.checks = {}  # nodeid -> {"name", "ok", "ms", "detail"}
        self.ran = []  # the checks that finished, in order
        self.width, self.start = 0, time.monotonic()

    @property
    def terminal(self):
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def pytest_collection_finish(self, session):
        for item in session.items:
            self.checks[item.nodeid] = {
                "name": item.name.removeprefix("test_").replace("_", "-"),
                "ok": True,
                "ms": 0.0,
                "detail": "",
            }
        self.width = max((len(check["name"]) for check in self.checks.values()), default=0)
        self.start = time.monotonic()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if call.excinfo is not None:
            report.smoke_detail = why(call.excinfo.value)
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report, config):
        category, _, _ = yield
        return category, "", ""  # no dots or words: the lines below say it

    def pytest_runtest_logreport(self, report):
        check = self.checks[report.nodeid]
        if report.when == "call":
            check["ms"] = report.duration * 1000
            check["detail"] = dict(report.user_properties).get("detail", "")
        if not report.passed and check["ok"]:
            check["ok"], check["detail"] = False, getattr(report, "smoke_detail", report.outcome)

    def pytest_runtest_logfinish(self, nodeid):
        check = self.checks[nodeid]
        self.ran.append(check)
        status = "ok" if check["ok"] else "FAIL"
        line = f"{status:<4}  {check['name']:<{self.width}}  {check['ms']:>5.0f} ms  {check['detail']}"
        self.terminal.write_line(line.rstrip())

    def pytest_sessionfinish(self, session):
        checks, seconds = self.ran, time.monotonic() - self.start
        passed = sum(check["ok"] for check in checks)
        # No newline: pytest's terminal reporter ends the session with one, after this hook
        # (and before any section of its own, such as a warnings summary).
        self.terminal.write(f"smoke: {passed} passed, {len(checks) - passed} failed in {seconds:.1f} s")
        path = self.config.getoption("--smoke-json")
        if path:
            option = self.config.getoption
            document = smoke.report(
                option("--smoke-base-url").rstrip("/"),
                option("--smoke-origin").rstrip("/"),
                checks,
                seconds,
                option("--smoke-waited"),
            )
            Path(path).write_text(json.dumps(document, indent=2) + "\n")
