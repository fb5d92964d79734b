"""SQL in a stack's PostgreSQL: psql in the postgres container, as the owner role
(POSTGRES_USER) over the container's unix socket, for the backup, the restore and the
migration gate. What a database holds (its Alembic revision and row counts) in one query."""

import json
import shlex

from . import Problem
from .compose import docker_compose
from .stack import running

# The container's own variables name the owner and the app's database: the same in both stacks.
# The statements follow as arguments, one -c each: psql runs each in its own transaction (one
# holding several runs them in one), on one connection. Not on stdin: Invoke never closes it.
PSQL = 'exec psql -X -q -v ON_ERROR_STOP=1 -tA -U "$POSTGRES_USER" -d "{database}" "$@"'
APP_DATABASE = "$POSTGRES_DB"
# The server's maintenance database: where databases are created, renamed and dropped.
MAINTENANCE_DATABASE = "postgres"

# The Alembic revision (null without alembic_version) and the rows of every table of the public
# schema but alembic_version, as one JSON line. query_to_xml counts a table named at run time
# in one statement; CASE only reads alembic_version where it exists.
CONTENTS = """
SELECT json_build_object(
  'revision', CASE WHEN to_regclass('public.alembic_version') IS NOT NULL THEN
    (xpath('/row/v/text()',
      query_to_xml('SELECT max(version_num) AS v FROM public.alembic_version', false, true, '')))[1]::text
  END,
  'rows', (SELECT coalesce(json_object_agg(tablename, (xpath('/row/n/text()',
      query_to_xml(format('SELECT count(*) AS n FROM public.%I', tablename), false, true, '')))[1]::text::bigint
      ORDER BY tablename), '{}')
    FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'));
"""


def require_postgres(c, target, task):
    """A Problem unless the target's postgres container runs."""
    if not running(c, target, "postgres"):
        flag = " --prod" if target.name == "prod" else ""
        raise Problem(f"{task}: postgres of '{target.project}' is not running: start the stack with `inv up{flag}`")


def query(c, target, statements, database=APP_DATABASE):
    """Run SQL in a database of the target: a statement, or a list run in order, each in its own
    transaction. psql's unaligned output; a failure is a Problem with psql's last line."""
    statements = [statements] if isinstance(statements, str) else statements
    arguments = " ".join(f"-c {shlex.quote(statement)}" for statement in statements)
    command = f"exec -T postgres sh -c {shlex.quote(PSQL.format(database=database))} sh {arguments}"
    result = docker_compose(c, target, command, hide=True, warn=True)
    if not result.ok:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise Problem(f"psql in {target.project}'s postgres failed: {lines[-1] if lines else f'exit {result.exited}'}")
    return result.stdout.strip()


def contents(c, target, database=APP_DATABASE):
    """{"revision": the Alembic revision or None, "rows": {table: count}} of a database."""
    return json.loads(query(c, target, CONTENTS, database))


def describe(found):
    """'todos 3012 rows; revision 0001' for contents()."""
    tables = ", ".join(f"{table} {count} rows" for table, count in found["rows"].items()) or "no tables"
    return f"{tables}; revision {found['revision'] or 'none'}"
