"""Session-wide: measurements that tests record (latencies, sizes) are printed after the
run and written to reports/measurements.json; and the leak check: whatever image,
container, volume or network a test created and did not remove fails the run.

tests/smoke is not collected from here: it checks a running stack, and `inv smoke` runs it
(the stack tests through `inv smoke` on theirs). That run alone has no leak check: it only
reads a stack and adds and deletes its own rows, while other tests change the engine."""

import json
import subprocess

import pytest

from tests.helpers import ROOT
from tests.integration.stacks import running_stack

_MEASURED = {}
collect_ignore = ["smoke"]


@pytest.fixture(scope="session")
def prod_stack():
    """The one production stack (built, up, migrated) that every test shares which only reads
    it or adds rows: the prod stack checks, smoke, fuzz, load, the browser. Tests that break
    or reset a stack (faults, the dev lifecycle, setup) make their own. A test that stops a
    service starts it again (`inv up --prod`)."""
    with running_stack("todostack-prod", prod=True) as stack:
        yield stack


@pytest.fixture(scope="session")
def dev_stack():
    """The one dev stack (up, migrated) shared likewise: the dev stack checks, reloads, smoke,
    the browser. A test that edits a file of it restores the file."""
    with running_stack("todostack-dev") as stack:
        yield stack


@pytest.fixture(scope="session")
def measure():
    """measure(name, value, unit): record a figure to report at the end of the run."""

    def record(name, value, unit):
        _MEASURED[name] = {"value": round(value, 3), "unit": unit}

    return record


# --- leak check -------------------------------------------------------------------------
# (kind, docker command listing every object as one JSON document per line, how to name one)
_LISTINGS = (
    ("image", ["image", "ls", "--all", "--no-trunc"], lambda o: o["ID"]),
    (
        "image tag",
        ["image", "ls", "--no-trunc", "--filter", "dangling=false"],
        lambda o: f"{o['Repository']}:{o['Tag']}",
    ),
    ("container", ["container", "ls", "--all", "--no-trunc"], lambda o: o["ID"]),
    ("volume", ["volume", "ls"], lambda o: o["Name"]),
    ("network", ["network", "ls", "--no-trunc"], lambda o: o["ID"]),
)
_DESCRIBE = {
    "image": lambda o: f"{o['Repository']}:{o['Tag']} created {o['CreatedAt']}",
    "image tag": lambda o: o["ID"],
    "container": lambda o: f"{o['Names']} (image {o['Image']}, {o['State']})",
    "volume": lambda o: f"driver {o['Driver']}",
    "network": lambda o: o["Name"],
}
_LEAKS = {"before": None, "left": None, "unchecked": None}


def engine_objects(timeout=30):
    """{(kind, key): description} of every image (dangling ones too), container (stopped
    ones too), volume and network of the engine; None when the engine does not answer."""
    objects = {}
    for kind, args, key in _LISTINGS:
        try:
            result = subprocess.run(
                ["docker", *args, "--format", "{{json .}}"], capture_output=True, text=True, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0:
            return None
        for line in filter(str.strip, result.stdout.splitlines()):
            item = json.loads(line)
            objects.setdefault((kind, key(item)), _DESCRIBE[kind](item))
    return objects


def _smoke_only(config):
    smoke = ROOT / "tests" / "smoke"
    return all(
        (config.invocation_params.dir / arg.split("::")[0]).resolve().is_relative_to(smoke) for arg in config.args
    )


def pytest_sessionstart(session):
    if not _smoke_only(session.config):
        _LEAKS["before"] = engine_objects()


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown
def pytest_sessionfinish(session):
    if _LEAKS["before"] is None:
        return  # no engine at the start: nothing a test made can be on it
    after = engine_objects()
    if after is None:
        _LEAKS["unchecked"] = "the engine did not answer at the end of the run"
        return
    left = {key: what for key, what in after.items() if key not in _LEAKS["before"]}
    # A new tag names a new image (reported as such) or, alone, a new tag on an old image.
    _LEAKS["left"] = {
        (kind, key): what for (kind, key), what in left.items() if kind != "image tag" or ("image", what) not in left
    }
    if _LEAKS["left"] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _MEASURED:
        terminalreporter.section("measurements")
        for name, figure in _MEASURED.items():
            terminalreporter.write_line(f"{name:<45} {figure['value']:>10} {figure['unit']}")
        reports = ROOT / "reports"
        reports.mkdir(exist_ok=True)
        (reports / "measurements.json").write_text(json.dumps(_MEASURED, indent=2) + "\n")
    if _LEAKS["unchecked"]:
        terminalreporter.write_line(f"leak check skipped: {_LEAKS['unchecked']}", yellow=True)
    if _LEAKS["left"]:
        terminalreporter.section("docker objects left behind", red=True)
        for (kind, key), what in sorted(_LEAKS["left"].items()):
            terminalreporter.write_line(f"left: {kind} {key} {what}")
        terminalreporter.write_line(
            f"leak check FAILED: {len(_LEAKS['left'])} docker object(s) created during "
            "the run are still there; the tests that made them must remove them",
            red=True,
            bold=True,
        )
