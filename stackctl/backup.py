"""`inv db-backup` and `inv db-restore`: a stack's database to a pg_dump archive and back.

A backup is `pg_dump --format custom` of the app's database, streamed out of the postgres
container into a file written atomically (a hidden partial file, renamed once complete and
flushed), then checked the way it will be used: restored into a scratch database, whose
revision and row counts are what the task prints. pg_dump reads one snapshot, so the file is
consistent while the stack serves requests.

A restore touches nothing until the file has proven itself: it is restored into a scratch
database first (a damaged or truncated archive fails there), whose Alembic revision must be one
the code knows. Then the backend stops, the scratch database takes the app database's name in
two renames, the migrations run on it (upgrading an older dump, and giving the prod stack's app
role its grants again), its row counts are compared with the file's, and the backend starts
again. On any failure the previous database is put back; on success it is dropped."""

import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from . import ROOT, Problem
from .compose import compose_process, docker_compose
from .database import MAINTENANCE_DATABASE, contents, query, require_postgres
from .images import build_contexts
from .migrations import code_head, code_revisions, refuse_unknown, upgrade_command
from .stack import running
from .stack import up as stack_up

BACKUPS_DIR = ROOT / "backups"
# Every pg_dump archive (custom format) starts with these bytes.
ARCHIVE_MAGIC = b"PGDMP"
DUMP = 'exec pg_dump -U "$POSTGRES_USER" -d "$POSTGRES_DB" --format custom'
# Objects end up owned by the owner role, without the dump's grants: the migrations grant the
# app role what it needs in the stack restored into (a dev dump restores into prod and back).
RESTORE = 'exec pg_restore -U "$POSTGRES_USER" -d {database} --exit-on-error --no-owner --no-privileges'
CHUNK = 1 << 20


def shown(path):
    """A path as the user knows it: relative to the project when inside it."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else str(path)


def output_path(c, target, output=None, now=None):
    """Where a backup goes: backups/PROJECT-YYYYMMDDTHHMMSSZ.dump, or --output, which must be
    inside the project, outside every build context, and not exist yet."""
    if output is None:
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        return BACKUPS_DIR / f"{target.project}-{stamp}.dump"
    path = Path(output).expanduser().resolve()
    if not path.is_relative_to(ROOT):
        raise Problem(
            f"backup: {output} is outside the project ({ROOT}): a backup is written inside it "
            "(by default under backups/, which git and the images ignore); copy it elsewhere afterwards"
        )
    for context in build_contexts(c, target):
        if path.is_relative_to(context):
            raise Problem(f"backup: {output} is inside the build context {shown(context)}/: choose a path outside it")
    if path.exists():
        raise Problem(f"backup: {output} exists: choose another --output (a backup never replaces a file)")
    return path


def _last_line(stream):
    stream.seek(0)
    lines = stream.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def write_dump(target, path):
    """pg_dump of the target's app database into path, atomically: a partial file beside it
    (mode 0600: it holds every row), flushed to disk, then renamed. Nothing is left on failure."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(3)}.partial")
    with tempfile.TemporaryFile() as errors:
        process = compose_process(
            target,
            f"exec -T postgres sh -c {shlex.quote(DUMP)}",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        try:
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                shutil.copyfileobj(process.stdout, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            if process.wait() != 0:
                raise Problem(f"backup: pg_dump in {target.project}'s postgres failed: {_last_line(errors)}")
            os.replace(partial, path)
        except OSError as error:
            raise Problem(
                f"backup: cannot write {shown(path)}: {error.strerror}; nothing was written "
                "(free space on its file system, or choose another --output)"
            ) from None
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
            partial.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def check_archive(task, path):
    """A Problem unless path is a readable file that starts like a pg_dump archive."""
    if not path.is_file():
        raise Problem(f"{task}: {shown(path)} does not exist or is not a file: give a file `inv db-backup` wrote")
    try:
        with open(path, "rb") as archive:
            start = archive.read(len(ARCHIVE_MAGIC))
    except OSError as error:
        raise Problem(f"{task}: cannot read {shown(path)}: {error.strerror}") from None
    if start != ARCHIVE_MAGIC:
        raise Problem(
            f"{task}: {shown(path)} is not a pg_dump archive (custom format): give a file `inv db-backup` wrote"
        )


def drop(c, target, database):
    query(c, target, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', MAINTENANCE_DATABASE)


def load_into_scratch(c, target, task, path):
    """Restore an archive into a new database of the target's server; (its name, its contents).
    A truncated or damaged archive fails here, and the scratch database goes with it."""
    scratch = f"restore_{secrets.token_hex(4)}"
    query(c, target, f'CREATE DATABASE "{scratch}"', MAINTENANCE_DATABASE)
    try:
        with open(path, "rb") as archive, tempfile.TemporaryFile() as errors:
            command = f"exec -T postgres sh -c {shlex.quote(RESTORE.format(database=scratch))}"
            process = compose_process(target, command, stdin=archive, stdout=subprocess.DEVNULL, stderr=errors)
            if process.wait() != 0:
                raise Problem(
                    f"{task}: {shown(path)} could not be restored, so it is truncated or damaged "
                    f"(pg_restore: {_last_line(errors).removeprefix('pg_restore: ')}); the database is untouched"
                )
        return scratch, contents(c, target, scratch)
    except BaseException:
        drop(c, target, scratch)
        raise


def backup(c, target, output=None):
    """Dump the target's app database and check the file by restoring it into a scratch
    database (dropped again); (the file's path, what it holds). A file that fails the check
    is removed."""
    path = output_path(c, target, output)
    require_postgres(c, target, "backup")
    write_dump(target, path)
    try:
        scratch, found = load_into_scratch(c, target, "backup", path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    drop(c, target, scratch)
    return path, found


def validate(c, target, path):
    """The archive restored into a scratch database, checked: it is this app's database at a
    revision the code knows. (the scratch database's name, its contents)."""
    scratch, found = load_into_scratch(c, target, "restore", path)
    try:
        if found["revision"] is None:
            raise Problem(
                f"restore: {shown(path)} has no alembic_version table: it is not a backup of this app's database; "
                "the database is untouched"
            )
        refuse_unknown(
            "restore",
            shown(path),
            found["revision"],
            code_revisions(),
            "Restore it with the code that wrote it; the database is untouched",
        )
    except BaseException:
        drop(c, target, scratch)
        raise
    return scratch, found


def _swap(c, target, incoming, current, outgoing):
    """`incoming` takes the name `current`; the database called `current` becomes `outgoing`,
    both renames in one transaction. Nobody may connect to it meanwhile: new connections are
    refused, open ones ended; a failed swap lets them in again."""
    query(
        c,
        target,
        [
            f'ALTER DATABASE "{current}" WITH ALLOW_CONNECTIONS false',
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{current}'",
            f"""DO $$ BEGIN
              FOR i IN 1..100 LOOP
                EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = '{current}');
                PERFORM pg_sleep(0.05);
              END LOOP;
            END $$""",
            # One -c, so one transaction: both names change, or neither.
            f'ALTER DATABASE "{current}" RENAME TO "{outgoing}"; '
            f'ALTER DATABASE "{incoming}" RENAME TO "{current}"; '
            f'ALTER DATABASE "{current}" WITH ALLOW_CONNECTIONS true',
        ],
        MAINTENANCE_DATABASE,
    )


def _allow_connections(c, target, database):
    query(c, target, f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true', MAINTENANCE_DATABASE)


def _migrate(c, target, path, found):
    """The migrations on the restored database (up to head; in prod also the app role's
    grants), then its revision and row counts against the file's."""
    result = docker_compose(c, target, upgrade_command(c, target), hide=True, warn=True)
    if not result.ok:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise Problem(f"restore: the migrations failed on {shown(path)}'s data: {lines[-1] if lines else 'no output'}")
    now = contents(c, target)
    head = code_head(code_revisions())
    differing = sorted(t for t, n in found["rows"].items() if now["rows"].get(t) != n)
    if now["revision"] != head or differing:
        raise Problem(
            f"restore: the restored database does not match {shown(path)} (revision {now['revision']}, "
            f"expected {head}; row counts differ in: {', '.join(differing) or 'none'})"
        )
    return now


def restore(c, target, path, ask):
    """Replace the target's app database with an archive's contents; what it holds now.
    `ask()` confirms once the file is known to be readable and the server running."""
    path = Path(path)
    check_archive("restore", path)
    require_postgres(c, target, "restore")
    ask()
    scratch, found = validate(c, target, path)
    current = query(c, target, "SELECT current_database()")
    previous = f"{current[:40]}_before_restore_{secrets.token_hex(3)}"
    backend_ran = running(c, target, "backend")
    swapped = False
    try:
        docker_compose(c, target, "stop backend", hide=True, warn=True)
        _swap(c, target, scratch, current, previous)
        swapped = True
        now = _migrate(c, target, path, found)
    except BaseException as error:
        if swapped:
            _swap(c, target, previous, current, scratch)
        else:
            _allow_connections(c, target, current)
        drop(c, target, scratch)
        if swapped and isinstance(error, Problem):
            raise Problem(f"{error}; the previous database is back in place") from None
        raise
    finally:
        if backend_ran:
            stack_up(c, target, ["backend"])
    drop(c, target, previous)
    return found, now
