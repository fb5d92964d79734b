"""SQL in a stack's postgres: psql in its container as the owner, statements as arguments (one
transaction each), a failure in one line; a database's revision and row counts."""

import shlex

import pytest
from invoke import MockContext, Result

from stackctl import Problem, database
from stackctl.compose import stack_target
from tests.helpers import project_config


def run_query(result, *args, **kwargs):
    c = MockContext(config=project_config(), run=result)
    target = stack_target(c, prod=True)
    return c, target, database.query(c, target, *args, **kwargs)


def test_each_statement_is_its_own_psql_argument_in_the_postgres_container():
    c, target, out = run_query(Result(stdout="app\n"), ["SELECT 1", "DO $$ BEGIN PERFORM 'x'; END $$"], "postgres")
    assert out == "app"
    command = c.run.call_args.args[0]
    prefix = shlex.join(target.args())
    assert command.startswith(prefix + " exec -T postgres sh -c ")
    args = shlex.split(command[len(prefix) :])
    assert args[:5] == ["exec", "-T", "postgres", "sh", "-c"]
    assert args[6] == "sh" and args[7:] == ["-c", "SELECT 1", "-c", "DO $$ BEGIN PERFORM 'x'; END $$"]
    assert args[5] == database.PSQL.format(database="postgres")
    assert '-U "$POSTGRES_USER"' in args[5] and "ON_ERROR_STOP=1" in args[5]


def test_the_app_database_is_the_containers_own():
    c, target, _ = run_query(Result(), "SELECT 1")
    assert '-d "$POSTGRES_DB"' in c.run.call_args.args[0].replace("'\"'\"'", "'")


def test_a_failing_statement_is_one_line():
    with pytest.raises(Problem, match=r"^psql in todostack-prod's postgres failed: ERROR:  boom$"):
        run_query(Result(stderr="psql:x\nERROR:  boom\n", exited=3), "SELECT boom")


def test_contents_and_their_description():
    c = MockContext(config=project_config(), run=Result(stdout='{"revision": "0001", "rows": {"todos": 3}}\n'))
    found = database.contents(c, stack_target(c), "restore_ab")
    assert found == {"revision": "0001", "rows": {"todos": 3}}
    assert database.describe(found) == "todos 3 rows; revision 0001"
    assert database.describe({"revision": None, "rows": {}}) == "no tables; revision none"
