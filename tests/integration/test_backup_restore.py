"""Backups restored for real, on a dev and a prod stack of their own (a copy of the tree: these
tests reset, restore and break databases): awkward rows back byte for byte after `inv reset`,
sequences that continue, a dev dump restored into the prod stack whose least-privilege role
keeps exactly its grants, the prod backend not ready on a schema the code does not know, and
every bad input refused in one line with the database untouched."""

import os
import subprocess
import sys

import pytest

from stackctl.envfile import read_env
from tests.helpers import assert_one_line_failure
from tests.integration.stacks import StackCopy, api, wait_until

# Titles are at most 200 characters (app.models.TITLE_MAX_LENGTH): the longest are at the limit.
AWKWARD_TITLES = [
    "emoji 😀 family 👩‍👩‍👧‍👦 flag 🏳️‍🌈 skin 👍🏽",
    "quotes 'single' \"double\" `back` \\backslash\\ '); DROP TABLE todos; --",
    "combining e\u0301 a\u0308 o\u0323\u0302 Z\u0324\u0354\u0367\u0311\u0313",
    "RTL שלום עולם مرحبا بالعالم \u202eoverride\u202c \u200fmark",
    "tab\there, newline\nthere",
    "zero width \u200b\u200c\u200d joiner, BOM \ufeff, NBSP\u00a0, ideographic 全角　space",
    "format strings %s %(x)s {0} $1 ${HOME} \\N \\. COPY end",
    "😀" * 200,
    "ß" * 200,
    "a" * 200,
]
ROWS = 5000


@pytest.fixture(scope="module")
def stack():
    stack = StackCopy("backup")
    try:
        stack.ok("up")
        stack.ok("migrate")
        stack.ok("up", "--prod")
        yield stack
    finally:
        stack.remove()


def psql(stack, sql, prod=False, user=None, binary=False):
    """SQL in a stack's postgres as the owner (or `user`) over its unix socket; the CompletedProcess."""
    return subprocess.run(
        [
            "docker",
            "exec",
            stack.container("postgres", prod),
            "sh",
            "-c",
            f'exec psql -X -q -v ON_ERROR_STOP=1 -tA -U "{user or "$POSTGRES_USER"}" -d "$POSTGRES_DB" -c "$0"',
            sql,
        ],
        capture_output=True,
        text=not binary,
    )


def sql_value(stack, sql, prod=False):
    result = psql(stack, sql, prod)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def snapshot(stack, prod=False):
    """Every todo as COPY writes it (bytes, in id order), and the sequence's position."""
    rows = psql(stack, "COPY (SELECT * FROM todos ORDER BY id) TO STDOUT", prod, binary=True)
    assert rows.returncode == 0, rows.stderr
    sequence = sql_value(stack, "SELECT last_value, is_called FROM todos_id_seq", prod)
    return rows.stdout, sequence


def backup_file(stack, *flags):
    """`inv db-backup FLAGS`; the file it names."""
    result = stack.ok("db-backup", *flags)
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("db-backup: backups/") and "restores cleanly: todos " in line, line
    path = stack.path / line.split()[1]
    assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
    return path, line


def fill(stack):
    """The awkward titles through the API, thousands of rows, and gaps in the ids."""
    for title in AWKWARD_TITLES:
        response = api(stack, "POST", "/api/v1/todos", json={"title": title, "done": len(title) % 2 == 0})
        assert response.status_code == 201, response.text
    sql_value(
        stack,
        f"INSERT INTO todos (title, done) SELECT 'row ' || n || ' ' || repeat('ü€😀', n % 60), n % 3 = 0 "
        f"FROM generate_series(1, {ROWS}) n; DELETE FROM todos WHERE id % 7 = 0",
    )


def test_a_round_trip_through_reset_brings_every_row_back_byte_for_byte(stack):
    fill(stack)
    before = snapshot(stack)
    count = int(sql_value(stack, "SELECT count(*) FROM todos"))
    assert count > ROWS * 0.8
    path, line = backup_file(stack)
    assert f"todos {count} rows" in line
    stack.backup = path

    stack.ok("reset", "--yes")
    stack.ok("up")
    stack.ok("migrate")
    assert api(stack, "GET", "/api/v1/todos").json()["total"] == 0
    backend_started = stack.started_at("backend")

    restored = stack.ok("db-restore", str(path.relative_to(stack.path)), "--yes")
    assert f"todos {count} rows" in restored.stdout, restored.stdout
    assert snapshot(stack) == before
    assert stack.started_at("backend") != backend_started, "the backend was not stopped and started again"

    # The sequence continues: a new todo gets an id above every restored one, and the app works.
    highest = int(sql_value(stack, "SELECT max(id) FROM todos"))
    created = api(stack, "POST", "/api/v1/todos", json={"title": "after the restore"})
    assert created.status_code == 201 and created.json()["id"] > highest, created.text
    listed = api(stack, "GET", "/api/v1/todos?limit=5").json()
    assert listed["total"] == count + 1 and listed["items"][0]["title"] == "after the restore"
    titles = {t for (t,) in (row.split("\t")[1:2] for row in before[0].decode().splitlines())}
    assert "😀" * 200 in titles  # COPY output holds them as stored
    health = api(stack, "GET", "/health").json()
    assert health["migrations"] == "current", health


def inv_args():
    return [sys.executable, "-m", "invoke"]


def test_a_backup_while_the_app_writes_succeeds_and_the_app_keeps_answering(stack):
    """pg_dump reads one snapshot while the app keeps writing: every write is answered, and
    the dump holds as many rows as there were at some moment during it."""
    before = int(sql_value(stack, "SELECT count(*) FROM todos"))
    process = subprocess.Popen(
        [*inv_args(), "db-backup"],
        cwd=stack.path,
        env={**os.environ, **stack.env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    written = 0
    while process.poll() is None:
        assert api(stack, "POST", "/api/v1/todos", json={"title": f"during {written}"}).status_code == 201
        written += 1
    out, err = process.communicate()
    assert process.returncode == 0, out + err
    dumped = int(out.split("restores cleanly: todos ")[1].split()[0])
    assert written > 0 and before <= dumped <= before + written, (before, dumped, written)


@pytest.fixture
def untouched(stack):
    """The test must leave the dev database exactly as it found it (rows and sequence)."""
    before = snapshot(stack)
    yield
    assert snapshot(stack) == before, "the database changed"
    databases = sql_value(stack, "SELECT string_agg(datname, ' ') FROM pg_database WHERE datname LIKE 'restore_%'")
    assert databases == "", f"scratch databases left: {databases}"


def test_a_file_that_is_not_a_dump_is_refused(stack, untouched):
    bogus = stack.path / "backups" / "not-a-dump.dump"
    bogus.write_text("-- PostgreSQL database dump\nDROP TABLE todos;\n")
    assert_one_line_failure(
        stack.inv("db-restore", str(bogus), "--yes"), "backups/not-a-dump.dump is not a pg_dump archive (custom format)"
    )


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_dump_is_refused(stack, untouched, keep):
    data = stack.backup.read_bytes()
    truncated = stack.path / "backups" / f"truncated-{keep}.dump"
    truncated.write_bytes(data[: int(len(data) * keep)])
    assert_one_line_failure(
        stack.inv("db-restore", str(truncated), "--yes"), "could not be restored, so it is truncated or damaged"
    )


def test_a_dump_from_a_newer_schema_is_refused_and_migrate_refuses_that_database(stack, untouched):
    head = sql_value(stack, "SELECT version_num FROM alembic_version")
    sql_value(stack, "UPDATE alembic_version SET version_num = 'ffffffffffff'")
    try:
        assert_one_line_failure(
            stack.inv("migrate"), f"is at revision ffffffffffff, which this code does not know (its head is {head})"
        )
        newer, line = backup_file(stack)
        assert line.endswith("revision ffffffffffff")
    finally:
        sql_value(stack, f"UPDATE alembic_version SET version_num = '{head}'")
    assert_one_line_failure(
        stack.inv("db-restore", str(newer), "--yes"),
        "is at revision ffffffffffff, which this code does not know",
    )


def test_a_missing_file_is_refused(stack, untouched):
    assert_one_line_failure(stack.inv("db-restore", "backups/nothing-here.dump", "--yes"), "does not exist")


def test_a_restore_without_a_terminal_needs_yes(stack, untouched):
    assert_one_line_failure(stack.inv("db-restore", str(stack.backup)), "rerun with --yes to confirm")


def test_a_backup_outside_the_project_is_refused(stack, untouched, tmp_path):
    assert_one_line_failure(stack.inv("db-backup", "--output", str(tmp_path / "x.dump")), "is outside the project")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_no_file(stack, untouched):
    """backups/ on a 16 KiB tmpfs, mounted in a mount namespace of this one command only."""
    backups = stack.path / "backups"
    backups.mkdir(exist_ok=True)
    before = sorted(os.listdir(backups))
    script = 'mount -t tmpfs -o size=16k tmpfs "$1" && shift && "$@"; code=$?; ls -A "$BACKUPS"; exit $code'
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", str(backups), *inv_args(), "db-backup"],
        cwd=stack.path,
        env={**os.environ, **stack.env, "BACKUPS": str(backups)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line_failure(result, ": No space left on device; nothing was written")
    leftovers = [line for line in result.stdout.splitlines() if line.endswith((".dump", ".partial"))]
    assert leftovers == [], leftovers
    assert sorted(os.listdir(backups)) == before


def test_a_backup_with_the_stack_down_is_refused(stack):
    stack.ok("down")
    try:
        assert_one_line_failure(
            stack.inv("db-backup"), f"backup: postgres of '{stack.project}' is not running: start the stack"
        )
        assert_one_line_failure(stack.inv("db-restore", str(stack.backup), "--yes"), "is not running")
    finally:
        stack.ok("up")


# --- prod: the least-privilege role -----------------------------------------------------------

PRIVILEGES = """
SELECT string_agg(format('%s:%s', table_name, privilege_type), ' ' ORDER BY table_name, privilege_type)
FROM information_schema.role_table_grants WHERE grantee = '{role}'
"""


def test_a_dev_dump_restores_into_prod_and_the_app_role_keeps_exactly_its_grants(stack):
    role = read_env(stack.path / ".env")["APP_DB_USER"]
    grants = sql_value(stack, PRIVILEGES.format(role=role), prod=True)
    assert "todos:INSERT" in grants and "alembic_version:SELECT" in grants and "alembic_version:INSERT" not in grants
    prod_before = backup_file(stack, "--prod")[0]
    backend_started = stack.started_at("backend", prod=True)

    stack.ok("db-restore", "--prod", "--yes", str(stack.backup))
    assert sql_value(stack, PRIVILEGES.format(role=role), prod=True) == grants
    assert stack.started_at("backend", prod=True) != backend_started
    rows, _ = snapshot(stack, prod=True)
    assert "😀" * 200 in rows.decode()
    # Through the app (as the app role): reads, writes, and no more than that.
    created = api(stack, "POST", "/api/v1/todos", via="PROD_PORT", json={"title": "prod after restore"})
    assert created.status_code == 201, created.text
    health = api(stack, "GET", "/health", via="PROD_PORT").json()
    assert health["migrations"] == "current" and health["status"] == "ok", health
    refused = psql(stack, "DROP TABLE todos", prod=True, user=role)
    assert refused.returncode != 0 and "must be owner of table todos" in refused.stderr, refused.stderr
    # And the prod stack's own backup restores into it again.
    stack.ok("db-restore", "--prod", "--yes", str(prod_before))
    assert "prod after restore" not in snapshot(stack, prod=True)[0].decode()


def test_the_prod_backend_is_not_ready_on_a_schema_the_code_does_not_know(stack):
    head = sql_value(stack, "SELECT version_num FROM alembic_version", prod=True)
    backend = stack.container("backend", prod=True)

    def health():
        return api(stack, "GET", "/health", via="PROD_PORT")

    sql_value(stack, "UPDATE alembic_version SET version_num = 'ffffffffffff'", prod=True)
    try:
        assert_one_line_failure(stack.inv("migrate", "--prod"), "is at revision ffffffffffff, which this code")
        subprocess.run(["docker", "restart", backend], check=True, capture_output=True)
        assert wait_until(lambda: health().status_code == 503, timeout=60, interval=0.5) is not None
        body = health().json()
        assert body["migrations"] == "unknown" and body["database"] == "connected", body
        unhealthy = wait_until(
            lambda: stack.inspect("backend", prod=True)["State"]["Health"]["Status"] == "unhealthy", 90, 1
        )
        assert unhealthy is not None, "the container stayed healthy on an unknown schema"
    finally:
        sql_value(stack, f"UPDATE alembic_version SET version_num = '{head}'", prod=True)
    # Readiness comes back without a restart once the schema is the code's head again.
    assert wait_until(lambda: health().status_code == 200, timeout=60, interval=0.5) is not None
    assert health().json()["migrations"] == "current"
