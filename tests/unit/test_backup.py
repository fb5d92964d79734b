"""inv db-backup / db-restore: where a backup may go, the atomic write (nothing left behind on a
failure, a full disk included), the archive checks, and the restore's order: nothing touches
the app database until the file restored into a scratch database at a known revision; a
failure after the swap puts the previous database back. The real round trip runs in
tests/integration/test_backup_restore.py."""

import errno
import io
import shlex
from datetime import UTC, datetime

import pytest
from invoke import MockContext, Result

import tasks
from stackctl import ROOT, Problem, backup
from stackctl.compose import stack_target
from tests.helpers import project_config


@pytest.fixture
def c():
    return MockContext(config=project_config(), run=Result(), repeat=True)


@pytest.fixture
def no_build_contexts(monkeypatch):
    monkeypatch.setattr(backup, "build_contexts", lambda c, target: [ROOT / "backend", ROOT / "frontend"])


def test_the_default_backup_is_timestamped_under_backups(c, no_build_contexts):
    now = datetime(2026, 11, 23, 9, 5, 7, tzinfo=UTC)
    path = backup.output_path(c, stack_target(c, prod=True), now=now)
    assert path == ROOT / "backups" / "todostack-prod-20261123T090507Z.dump"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("/tmp/x.dump", "backup: /tmp/x.dump is outside the project ("),
        (str(ROOT / ".." / "x.dump"), "is outside the project"),
        (str(ROOT / "backend" / "x.dump"), "is inside the build context backend/: choose a path outside it"),
        (str(ROOT / "README.md"), "exists: choose another --output (a backup never replaces a file)"),
    ],
)
def test_an_output_outside_the_project_in_a_build_context_or_existing_is_refused(c, no_build_contexts, output, message):
    with pytest.raises(Problem) as refused:
        backup.output_path(c, stack_target(c), output)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_symlink_out_of_the_project_is_outside_it(c, no_build_contexts, tmp_path):
    link = ROOT / ".cache" / f"link-{tmp_path.name}"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(tmp_path)
    try:
        with pytest.raises(Problem, match="is outside the project"):
            backup.output_path(c, stack_target(c), str(link / "x.dump"))
    finally:
        link.unlink()


class FakeProcess:
    """compose_process's stand-in: writes `stderr` to the stderr file, serves `data` on stdout."""

    def __init__(self, data=b"", code=0, stderr=b""):
        self.data, self.code, self.stderr_text = data, code, stderr
        self.args = None

    def __call__(self, target, command, **kwargs):
        self.args = (command, kwargs)
        if kwargs.get("stderr") is not None and hasattr(kwargs["stderr"], "write"):
            kwargs["stderr"].write(self.stderr_text)
        self.stdout = io.BytesIO(self.data)
        if "stdin" in kwargs and hasattr(kwargs["stdin"], "read"):
            self.stdin_data = kwargs["stdin"].read()
        return self

    def poll(self):
        return self.code

    def wait(self):
        return self.code

    def kill(self):
        pass


def test_a_dump_is_written_atomically_and_readable_by_its_owner_only(c, tmp_path, monkeypatch):
    process = FakeProcess(b"PGDMP" + b"x" * 3_000_000)
    monkeypatch.setattr(backup, "compose_process", process)
    path = tmp_path / "sub" / "a.dump"
    backup.write_dump(stack_target(c), path)
    assert path.read_bytes() == process.data
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.dump"]
    command, kwargs = process.args
    assert shlex.split(command) == ["exec", "-T", "postgres", "sh", "-c", backup.DUMP]
    assert "--format custom" in backup.DUMP


def test_a_failing_pg_dump_leaves_no_file_and_says_why(c, tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "compose_process", FakeProcess(b"PGDMP partial", 1, b"pg_dump: error: oops\n"))
    path = tmp_path / "a.dump"
    with pytest.raises(Problem, match=r"^backup: pg_dump in todostack's postgres failed: pg_dump: error: oops$"):
        backup.write_dump(stack_target(c), path)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_no_file_and_says_so_in_one_line(c, tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "compose_process", FakeProcess(b"PGDMP" * 100))

    def full(source, destination, length):
        destination.write(b"PGDMP")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(backup.shutil, "copyfileobj", full)
    with pytest.raises(Problem) as refused:
        backup.write_dump(stack_target(c), tmp_path / "a.dump")
    assert str(refused.value).endswith(
        "a.dump: No space left on device; nothing was written "
        "(free space on its file system, or choose another --output)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist or is not a file: give a file `inv db-backup` wrote"),
        (b"", "is not a pg_dump archive (custom format)"),
        (b"-- PostgreSQL database dump\nCREATE TABLE", "is not a pg_dump archive (custom format)"),
    ],
)
def test_a_missing_file_or_one_that_is_no_archive_is_refused(tmp_path, content, message):
    path = tmp_path / "in.dump"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(Problem, match=r"^restore: .*in\.dump " + message.replace("(", r"\(").replace(")", r"\)")):
        backup.check_archive("restore", path)


class Server:
    """The stack's PostgreSQL as the restore sees it: every SQL statement and compose command,
    in order, and what contents() answers (the scratch database's, then the app database's)."""

    def __init__(self, monkeypatch, found, after=None, pg_restore_code=0, upgrade_ok=True):
        self.log = []
        self.found, self.after = found, after or found
        monkeypatch.setattr(backup, "require_postgres", lambda c, target, task: None)
        monkeypatch.setattr(backup, "running", lambda c, target, service: True)
        monkeypatch.setattr(backup, "upgrade_command", lambda c, target: "run --rm migrate alembic upgrade head")
        monkeypatch.setattr(backup, "code_revisions", lambda: {"0001": (), "0002": ("0001",)})
        monkeypatch.setattr(backup, "query", self.query)
        monkeypatch.setattr(backup, "contents", self.contents)
        monkeypatch.setattr(backup, "stack_up", lambda c, target, services: self.log.append(f"up {services}"))
        monkeypatch.setattr(
            backup,
            "docker_compose",
            lambda c, target, command, **kw: self.log.append(command) or Result(exited=0 if upgrade_ok else 1),
        )
        process = FakeProcess(code=pg_restore_code, stderr=b"pg_restore: error: could not read from input file\n")
        self.process = process
        monkeypatch.setattr(
            backup, "compose_process", lambda *a, **kw: self.log.append("pg_restore") or process(*a, **kw)
        )

    def query(self, c, target, sql, database="$POSTGRES_DB"):
        sql = "; ".join([sql] if isinstance(sql, str) else sql)
        self.log.append(" ".join(sql.split()))
        return "app" if "current_database()" in sql else ""

    def contents(self, c, target, database="$POSTGRES_DB"):
        return self.found if database.startswith("restore_") else self.after

    def touched_the_app_database(self):
        return [entry for entry in self.log if '"app"' in entry or entry.startswith(("stop", "up", "run"))]


def archive(tmp_path):
    path = tmp_path / "in.dump"
    path.write_bytes(b"PGDMP" + b"\0" * 100)
    return path


AT_HEAD = {"revision": "0002", "rows": {"todos": 3}}


def test_a_restore_validates_in_a_scratch_database_then_swaps_migrates_and_verifies(c, tmp_path, monkeypatch):
    server = Server(monkeypatch, AT_HEAD)
    asked = []
    found, now = backup.restore(c, stack_target(c, prod=True), archive(tmp_path), lambda: asked.append(len(server.log)))
    assert found == now == AT_HEAD and asked == [0]
    log = server.log
    scratch = log[0].split('"')[1]
    assert log[0] == f'CREATE DATABASE "{scratch}"' and scratch.startswith("restore_")
    assert log[1] == "pg_restore" and server.process.stdin_data == archive(tmp_path).read_bytes()
    assert "--exit-on-error --no-owner --no-privileges" in server.process.args[0]
    assert log[2] == "SELECT current_database()"
    assert log[3] == "stop backend"
    swap = log[4]
    assert swap.startswith('ALTER DATABASE "app" WITH ALLOW_CONNECTIONS false;')
    previous = swap.split('RENAME TO "')[1].split('"')[0]
    assert previous.startswith("app_before_restore_")
    assert f'ALTER DATABASE "app" RENAME TO "{previous}"; ALTER DATABASE "{scratch}" RENAME TO "app";' in swap
    assert log[5:] == [
        "run --rm migrate alembic upgrade head",
        "up ['backend']",
        f'DROP DATABASE IF EXISTS "{previous}" WITH (FORCE)',
    ]


@pytest.mark.parametrize(
    ("found", "pg_restore_code", "message"),
    [
        (
            AT_HEAD,
            1,
            "could not be restored, so it is truncated or damaged (pg_restore: error: could not read from input file)",
        ),
        ({"revision": None, "rows": {}}, 0, "has no alembic_version table: it is not a backup of this app's database"),
        ({"revision": "abc", "rows": {}}, 0, "is at revision abc, which this code does not know (its head is 0002)"),
    ],
)
def test_a_bad_archive_is_refused_before_the_app_database_is_touched(
    c, tmp_path, monkeypatch, found, pg_restore_code, message
):
    server = Server(monkeypatch, found, pg_restore_code=pg_restore_code)
    with pytest.raises(Problem) as refused:
        backup.restore(c, stack_target(c), archive(tmp_path), lambda: None)
    assert message in str(refused.value) and "the database is untouched" in str(refused.value)
    assert server.touched_the_app_database() == []
    scratch = server.log[0].split('"')[1]
    assert server.log[-1] == f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'


def test_a_refused_question_touches_nothing(c, tmp_path, monkeypatch):
    server = Server(monkeypatch, AT_HEAD)

    def refuse():
        raise Problem("cancelled; nothing was changed")

    with pytest.raises(Problem, match="cancelled"):
        backup.restore(c, stack_target(c), archive(tmp_path), refuse)
    assert server.log == []


@pytest.mark.parametrize(
    ("upgrade_ok", "after", "message"),
    [
        (False, AT_HEAD, "restore: the migrations failed on "),
        (True, {"revision": "0002", "rows": {"todos": 2}}, "row counts differ in: todos"),
    ],
)
def test_a_failure_after_the_swap_puts_the_previous_database_back(c, tmp_path, monkeypatch, upgrade_ok, after, message):
    server = Server(monkeypatch, AT_HEAD, after=after, upgrade_ok=upgrade_ok)
    with pytest.raises(Problem) as refused:
        backup.restore(c, stack_target(c), archive(tmp_path), lambda: None)
    assert message in str(refused.value) and str(refused.value).endswith("; the previous database is back in place")
    scratch = server.log[0].split('"')[1]
    previous = server.log[4].split('RENAME TO "')[1].split('"')[0]
    back = server.log[6]
    assert f'ALTER DATABASE "app" RENAME TO "{scratch}"; ALTER DATABASE "{previous}" RENAME TO "app";' in back
    assert server.log[7:] == [f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)', "up ['backend']"]


def test_a_backup_that_does_not_restore_is_removed(c, tmp_path, monkeypatch, no_build_contexts):
    Server(monkeypatch, AT_HEAD, pg_restore_code=1)
    written = tmp_path / "b.dump"
    monkeypatch.setattr(backup, "output_path", lambda c, target, output: written)
    monkeypatch.setattr(backup, "write_dump", lambda target, path: path.write_bytes(b"PGDMP"))
    with pytest.raises(Problem, match=r"^backup: .*b\.dump could not be restored, so it is truncated or damaged"):
        backup.backup(c, stack_target(c), None)
    assert not written.exists()


def test_restore_without_a_terminal_or_yes_refuses_before_anything(c, tmp_path, monkeypatch):
    server = Server(monkeypatch, AT_HEAD)
    monkeypatch.setattr(tasks, "_ready", lambda c, prod=False: stack_target(c, prod))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(Problem, match=r"^restore replaces the database of 'todostack' with .*; rerun with --yes"):
        tasks.db_restore(c, str(archive(tmp_path)))
    assert server.log == []
