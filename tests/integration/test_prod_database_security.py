"""The prod stack's database and secrets as a security reviewer checks them: the app connects
as a role that can only read and write the app's tables; the passwords reach the containers as
files and show nowhere in `docker inspect`; a broken secret file stops its service with one
line naming it; the postgres container runs with no capability on a read-only root; and
`inv down --prod` under load answers every request it accepted.

A stack of its own: these tests drop the app's role, break secret files and take the stack
down, which the shared prod stack's readers must never see."""

import http.client
import json
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from stackctl.compose import docker_compose
from stackctl.envfile import read_env
from tests.integration.stacks import api, running_stack


@pytest.fixture(scope="module")
def stack():
    with running_stack("dbsec-prod", prod=True) as stack:
        stack.env_values = read_env(stack.path / ".env")
        yield stack


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def psql(stack, sql, user=None):
    """SQL in the postgres container over its unix socket (trusted: no password), as `user`
    (default: the owner); the CompletedProcess, never raising."""
    values = stack.env_values
    return docker(
        "exec",
        stack.container("postgres", prod=True),
        *("psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA", "-U", user or values["POSTGRES_USER"]),
        *("-d", values["POSTGRES_DB"], "-c", sql),
        check=False,
    )


def app_role(stack):
    return stack.env_values["APP_DB_USER"]


def prod_containers(stack):
    ids = docker("ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={stack.prod_project}")
    return json.loads(docker("inspect", *ids.stdout.split()).stdout)


def create_todo(stack, title):
    response = api(stack, "POST", "/api/v1/todos", via="PROD_PORT", json={"title": title})
    assert response.status_code == 201, response.text
    return response.json()


def test_the_backend_connects_as_the_app_role_which_is_not_privileged(stack):
    create_todo(stack, "through the app role")
    connected = psql(stack, "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name <> 'psql'")
    assert app_role(stack) in connected.stdout.split(), connected
    attributes = psql(
        stack,
        f"SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = '{app_role(stack)}'",
    )
    assert attributes.stdout.strip() == "f|f|f|f", attributes


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("DROP TABLE todos", "must be owner of table todos"),
        ("CREATE ROLE intruder LOGIN", "permission denied to create role"),
        ("CREATE TABLE intruder (id int)", "permission denied for schema public"),
        ("ALTER TABLE todos ADD COLUMN intruder int", "must be owner of table todos"),
        ("TRUNCATE todos", "permission denied for table todos"),
        ("UPDATE alembic_version SET version_num = 'x'", "permission denied for table alembic_version"),
    ],
)
def test_the_app_role_cannot_change_the_schema_or_the_roles(stack, sql, refusal):
    result = psql(stack, sql, user=app_role(stack))
    assert result.returncode != 0 and refusal in result.stderr, result


def test_the_app_role_reads_and_writes_todos(stack):
    title = f"dml-{uuid.uuid4().hex}"
    sql = (
        f"INSERT INTO todos (title) VALUES ('{title}'); "
        f"UPDATE todos SET done = true WHERE title = '{title}'; "
        f"SELECT done FROM todos WHERE title = '{title}'; "
        f"DELETE FROM todos WHERE title = '{title}'; "
        f"SELECT count(*) FROM todos WHERE title = '{title}';"
    )
    result = psql(stack, sql, user=app_role(stack))
    assert result.returncode == 0 and result.stdout.split() == ["t", "0"], result


def test_an_existing_volume_without_the_app_role_gets_it_from_the_migrations(stack):
    """A database made before the role existed (or by the dev stack's layout): the next
    `inv migrate --prod` creates the role with its grants, and the backend reconnects."""
    role = app_role(stack)
    dropped = psql(
        stack,
        f"ALTER ROLE {role} NOLOGIN; "
        f"SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity WHERE usename = '{role}'; "
        f"DROP OWNED BY {role}; DROP ROLE {role};",
    )
    assert dropped.returncode == 0, dropped
    assert psql(stack, f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}'").stdout.strip() == "0"
    stack.ok("migrate", "--prod")
    # The pool drops connections the server closed and opens new ones, as the new role.
    deadline = time.monotonic() + 30
    while True:
        response = api(stack, "POST", "/api/v1/todos", via="PROD_PORT", json={"title": "after the role came back"})
        if response.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 201, response.text
    refused = psql(stack, "DROP TABLE todos", user=role)
    assert "must be owner of table todos" in refused.stderr, refused


def test_no_secret_value_in_docker_inspect_of_any_container(stack):
    containers = prod_containers(stack)
    services = {c["Config"]["Labels"]["com.docker.compose.service"] for c in containers}
    assert services == {"postgres", "redis", "migrate", "backend", "frontend"}
    text = json.dumps(containers)
    for variable in ("POSTGRES_PASSWORD", "APP_DB_PASSWORD"):
        value = stack.env_values[variable]
        assert len(value) >= 32
        assert value not in text, f"the value of {variable} is in `docker inspect`"
    mounts = {
        c["Config"]["Labels"]["com.docker.compose.service"]: {m["Destination"] for m in c["Mounts"]} for c in containers
    }
    assert "/run/secrets/postgres_password" in mounts["postgres"]
    assert "/run/secrets/app_db_password" in mounts["backend"]
    assert "/run/secrets/postgres_password" not in mounts["backend"], "the backend holds the owner's password"


def test_postgres_runs_without_capabilities_on_a_read_only_root(stack):
    postgres = stack.inspect("postgres", prod=True)
    host = postgres["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["ReadonlyRootfs"] is True
    assert postgres["Config"]["User"] == "999:999"
    status = docker("exec", stack.container("postgres", prod=True), "grep", "^Cap", "/proc/1/status").stdout
    assert all(line.split()[1] == "0000000000000000" for line in status.splitlines()), status
    wrote = docker("exec", stack.container("postgres", prod=True), "touch", "/etc/intruder", check=False)
    assert wrote.returncode != 0 and "Read-only file system" in wrote.stderr


def test_the_data_network_is_internal_and_every_service_rotates_its_logs(stack):
    network = json.loads(docker("network", "inspect", f"{stack.prod_project}_data").stdout)[0]
    assert network["Internal"] is True
    for container in prod_containers(stack):
        log = container["HostConfig"]["LogConfig"]
        assert log["Type"] == "json-file" and log["Config"].get("max-size") and log["Config"].get("max-file"), (
            container["Name"]
        )
    stop_timeouts = {
        name: stack.inspect(name, prod=True)["Config"].get("StopTimeout")
        for name in ("postgres", "redis", "backend", "frontend")
    }
    # uvicorn's graceful shutdown takes up to 20 s: Compose must wait longer before its kill.
    assert stop_timeouts["backend"] > 20, stop_timeouts
    assert all(timeout for timeout in stop_timeouts.values()), stop_timeouts


def secret_path(stack, name):
    return stack.path / "secrets" / name


def replace_secret(stack, name, make):
    """Swap a secret file for what `make(path)` leaves at its path (a new inode: the running
    containers keep the good one). The next `inv ... --prod` rewrites it from .env."""
    path = secret_path(stack, name)
    path.unlink()
    make(path)


def compose(stack, command):
    """Compose directly, as a user without the tasks would: no rewrite of the secret files."""
    return docker_compose(stack.ctx, stack.target(prod=True), command, hide=True, warn=True, timeout=120)


def restore_secrets(stack):
    stack.ok("ps", "--prod")  # every prod task writes secrets/ from .env
    assert secret_path(stack, "app_db_password").read_text() == stack.env_values["APP_DB_PASSWORD"]


BROKEN_FILES = {
    "empty": (lambda path: path.write_text(""), "is empty"),
    # Not readable by the container's user: the host's mode carries over into the bind mount.
    "unreadable": (lambda path: (path.write_text("x" * 40), path.chmod(0o000)), "cannot read"),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_FILES))
def test_postgres_refuses_a_broken_password_file_in_one_line(stack, broken):
    make, message = BROKEN_FILES[broken]
    replace_secret(stack, "postgres_password", make)
    try:
        result = compose(stack, "run --rm --no-deps postgres")
    finally:
        restore_secrets(stack)
    output = result.stdout + result.stderr
    assert result.exited != 0
    lines = [line for line in output.splitlines() if line.startswith("entrypoint: ")]
    assert len(lines) == 1, output
    assert lines[0].startswith("entrypoint: POSTGRES_PASSWORD_FILE: ") and "/run/secrets/postgres_password" in lines[0]
    assert message in lines[0], output


@pytest.mark.parametrize("broken", sorted(BROKEN_FILES))
def test_the_backend_refuses_a_broken_password_file_in_one_line(stack, broken):
    make, message = BROKEN_FILES[broken]
    replace_secret(stack, "app_db_password", make)
    try:
        result = compose(stack, "run --rm --no-deps backend")
    finally:
        restore_secrets(stack)
    output = result.stdout + result.stderr
    assert result.exited != 0
    lines = [line for line in output.splitlines() if line.startswith("settings: ")]
    assert len(lines) == 1, output
    assert lines[0].startswith("settings: DB_PASSWORD_FILE: ") and "/run/secrets/app_db_password" in lines[0], output
    assert message in lines[0] and "Traceback" not in output, output


def test_compose_names_a_missing_secret_file(stack):
    secret_path(stack, "app_db_password").unlink()
    try:
        result = compose(stack, "run --rm --no-deps backend")
    finally:
        restore_secrets(stack)
    assert result.exited != 0
    assert str(secret_path(stack, "app_db_password")) in result.stdout + result.stderr, result.stderr


def request_once(port, index):
    """One request on a new connection: ("refused", None) when the connection was refused,
    ("lost", title) when it was made but no answer came, else ("status", code). A POST's
    title tells afterwards whether the app handled it."""
    title = f"shutdown-{uuid.uuid4().hex}"
    post = index % 2 == 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.connect()
    except OSError:
        return "refused", None
    try:
        if post:
            body = json.dumps({"title": title})
            connection.request("POST", "/api/v1/todos", body=body, headers={"Content-Type": "application/json"})
        else:
            connection.request("GET", "/api/v1/todos?limit=5")
        response = connection.getresponse()
        response.read()
        return "status", response.status
    except (OSError, http.client.HTTPException):
        return "lost", title if post else None
    finally:
        connection.close()


def test_down_under_load_answers_every_request_the_app_accepted(stack):
    """Clients keep sending while `inv down --prod` runs. Fine: connections refused once nginx
    stopped listening, and a connection closed unanswered whose request the app never saw (it
    was still in the kernel's accept queue; a POST's title is then not in the database). Not
    fine: any 5xx, or a POST the app stored whose answer was lost (killed mid-request)."""
    port = stack.ports["PROD_PORT"]
    outcomes, stop = [], threading.Event()
    down_started = []

    def client(worker):
        index = worker
        while not stop.is_set():
            outcome = request_once(port, index)
            outcomes.append((time.monotonic(), *outcome))
            index += 8
            if outcome[0] == "refused":
                time.sleep(0.01)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for worker in range(8):
            pool.submit(client, worker)
        time.sleep(2)
        down_started.append(time.monotonic())
        result = stack.inv("down", "--prod")
        stop.set()
    assert result.returncode == 0, result.stdout + result.stderr

    answered_during_down = [o for o in outcomes if o[0] >= down_started[0] and o[1] == "status" and o[2] < 500]
    server_errors = [o for o in outcomes if o[1] == "status" and o[2] >= 500]
    lost_posts = [o[2] for o in outcomes if o[1] == "lost" and o[2]]
    assert len([o for o in outcomes if o[1] == "status"]) > 50, "too little load to tell anything"
    assert answered_during_down, "no request was answered after `inv down --prod` began: nothing was in flight"
    assert not server_errors, f"5xx during shutdown: {server_errors[:5]}"
    assert any(o[1] == "refused" for o in outcomes), "the stack was never seen gone"

    # The database volume outlives `down`: start again and look for the lost POSTs.
    stack.ok("up", "--prod")
    if lost_posts:
        listed = ", ".join(f"'{title}'" for title in lost_posts)
        stored = psql(stack, f"SELECT title FROM todos WHERE title IN ({listed})")
        assert stored.returncode == 0, stored
        assert not stored.stdout.split(), f"handled but never answered: {stored.stdout.split()}"
