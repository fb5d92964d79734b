"""The README's stack-up command on a pristine Debian 12 and Debian 13 host (issue 9).

Each host is a container made from a clean Debian root filesystem holding only what the
README lists as requirements, with no Docker at all, that can run an engine of its own
(tests/integration/pristine.py). Inside it: clone the repository, run the command exactly
as the README shows it, check from inside that the stack is healthy, run it again (nothing
changes), `inv doctor`; provisioning as a non-root user and with PyPI unreachable refuse in
one line. Full logs of every step: reports/pristine/SUITE/."""

import pytest

from stackctl.copies import copy_tree
from tests.helpers import assert_one_line_failure, readme_block
from tests.integration.pristine import SOURCE, PristineHost, make_repository

SUITES = ["bookworm", "trixie"]
UP_COMMAND = readme_block("up-command")
FIRST_RUN_TIMEOUT_S = 1200  # bounds a hang; the target from nothing to healthy is 180 s
AGAIN_TIMEOUT_S = 300

# Run inside with the host's python3: the page, the backend's /health, and a todo round trip
# through the frontend's origin as a browser makes it. One line per check; exit 1 on any failure.
CHECK_STACK = r"""
import json, sys, urllib.error, urllib.request

def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()

failed = 0
def check(name, ok, detail):
    global failed
    failed += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail[:300]}")
    return ok

app, api = "http://127.0.0.1:3000", "http://127.0.0.1:8000"
status, kind, body = call("GET", app + "/")
check("frontend serves HTML", status == 200 and "text/html" in kind and "<html" in body.lower(),
      f"{status} {kind}")
status, _, body = call("GET", api + "/health")
check("health: database connected", status == 200 and json.loads(body).get("database") == "connected",
      f"{status} {body}")
status, _, body = call("POST", app + "/api/v1/todos", {"title": "pristine round trip"})
if check("create a todo", status == 201, f"{status} {body}"):
    todo = json.loads(body)
    status, _, body = call("GET", f"{app}/api/v1/todos/{todo['id']}")
    check("read it back", status == 200 and json.loads(body)["title"] == "pristine round trip",
          f"{status} {body}")
    status, _, body = call("DELETE", f"{app}/api/v1/todos/{todo['id']}")
    check("delete it", status == 204, f"{status} {body}")
    status, _, body = call("GET", f"{app}/api/v1/todos/{todo['id']}")
    check("gone", status == 404, f"{status} {body}")
sys.exit(1 if failed else 0)
"""

# What the command may change on a second run: nothing. Containers with their start times,
# images, volumes, networks and .env.
# Sorted: the engine lists images made in the same second in no fixed order (Engine 26).
STATE = (
    "{ sha256sum .env; "
    "docker ps -aq --no-trunc | xargs -r docker inspect -f '{{.Name}} {{.Id}} {{.State.StartedAt}}'; "
    "docker image ls --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'; "
    "docker volume ls -q; docker network ls --format '{{.Name}} {{.ID}}'; } | sort"
)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """The working tree (tracked and unignored files) committed to a repository of its own."""
    return make_repository(copy_tree(tmp_path_factory.mktemp("pristine-repo")))


@pytest.fixture(scope="module", params=SUITES)
def host(request, repository):
    pristine = PristineHost(request.param)
    try:
        pristine.start(repository)
        yield pristine
    finally:
        pristine.close()


@pytest.fixture(scope="module")
def first_run(host, measure):
    run = host.run(
        UP_COMMAND, timeout=FIRST_RUN_TIMEOUT_S, log="1-up-command-first", env={"PYTHONUNBUFFERED": "1"}
    )  # only so that the log shows progress as it comes
    if run.ok:
        measure(f"pristine_{host.suite}_first_run_s", run.seconds, "s")
    return run


def require(host, first_run):
    assert first_run.ok, (
        f"the first run failed, see test_up_command_from_nothing_to_healthy:\n{host.failure(first_run)}"
    )


def check_stack(host, log):
    checked = host.run("python3 -", stdin=CHECK_STACK, timeout=180, log=log)
    assert checked.ok, host.failure(checked)


def test_up_command_from_nothing_to_healthy(host, first_run):
    assert first_run.ok, host.failure(first_run)
    check_stack(host, "2-check-stack")


def test_up_command_again_changes_nothing(host, first_run, measure):
    require(host, first_run)
    before = host.run(STATE, timeout=60)
    again = host.run(UP_COMMAND, timeout=AGAIN_TIMEOUT_S, log="3-up-command-again")
    assert again.ok, host.failure(again)
    measure(f"pristine_{host.suite}_second_run_s", again.seconds, "s")
    after = host.run(STATE, timeout=60)
    assert before.ok and after.ok, before.stderr + after.stderr
    assert after.stdout == before.stdout, f"[{host.suite}] the second run changed:\n" + "\n".join(
        [f"- {line}" for line in set(before.stdout.splitlines()) - set(after.stdout.splitlines())]
        + [f"+ {line}" for line in set(after.stdout.splitlines()) - set(before.stdout.splitlines())]
    )
    check_stack(host, "4-check-stack-again")


def test_doctor_passes(host, first_run):
    require(host, first_run)
    doctor = host.run("./inv doctor", timeout=120, log="5-doctor")
    assert doctor.ok and "FAIL" not in doctor.stdout, host.failure(doctor)


def test_provisioning_as_non_root_refuses_in_one_line(host, first_run):
    # The first run's ./inv made .venv (whatever happened after); the clone is readable by all.
    refused = host.run("runuser -u nobody -- ./inv setup --engine", timeout=120)
    (host.logs / "6-non-root.log").write_text(refused.stdout + refused.stderr)
    assert refused.returncode not in (0, None), refused.describe()
    assert "Traceback" not in refused.stdout + refused.stderr, refused.describe()
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "root" in lines[0], (
        f"[{host.suite}] stderr is not one line naming root:\n{refused.stderr}"
    )


def test_unreachable_pypi_fails_in_one_line(host):
    # A fresh clone (no .venv yet): ./inv's first step installs the requirements from PyPI.
    command = f"git clone --quiet {SOURCE} /srv/offline && cd /srv/offline && ./inv --list"
    offline = host.run(command, cwd="/", timeout=180, env={"PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    (host.logs / "7-pypi-unreachable.log").write_text(offline.stdout + offline.stderr)
    assert offline.returncode is not None, offline.describe()
    assert_one_line_failure(offline, "check that PyPI is reachable")
