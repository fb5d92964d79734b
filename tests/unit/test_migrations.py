"""Migration gates: the code's revisions read from the migration files, the refusal of a
database at a revision the code does not know (`inv migrate`), the upgrade command of each
stack, and `alembic check` on a throwaway PostgreSQL that is always removed."""

import shlex

import pytest
from invoke import MockContext, Result

import tasks
from stackctl import Problem, migrations, stack
from stackctl.compose import stack_target
from tests.helpers import project_config

MIGRATION = '''"""{doc}"""
from alembic import op

revision: str = "{rev}"
down_revision: str | None = {down}
branch_labels = None
'''


def versions(tmp_path, *specs):
    for rev, down in specs:
        (tmp_path / f"{rev}_x.py").write_text(MIGRATION.format(doc=rev, rev=rev, down=repr(down)))
    return tmp_path


def test_the_codes_revisions_are_read_from_the_migration_files():
    revisions = migrations.code_revisions()
    assert revisions["0001"] == ()
    assert migrations.code_head(revisions) in revisions


def test_a_chain_and_a_merge_have_one_head(tmp_path):
    revisions = migrations.code_revisions(versions(tmp_path, ("a", None), ("b", "a"), ("c", "a"), ("d", ("b", "c"))))
    assert revisions == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    assert migrations.code_head(revisions) == "d"


def test_two_heads_are_refused_in_one_line(tmp_path):
    revisions = migrations.code_revisions(versions(tmp_path, ("a", None), ("b", "a"), ("c", "a")))
    with pytest.raises(Problem, match=r"has 2 heads \(b, c\): there must be exactly one"):
        migrations.code_head(revisions)


def test_a_revision_the_code_does_not_know_is_refused_in_one_line():
    revisions = {"0001": (), "0002": ("0001",)}
    for known in (None, "0001", "0002"):
        migrations.refuse_unknown("restore", "x.dump", known, revisions, "Use its code.")
    with pytest.raises(Problem) as refused:
        migrations.refuse_unknown("restore", "x.dump", "9f3e", revisions, "Use its code.")
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        "restore: x.dump is at revision 9f3e, which this code does not know (its head is 0002): "
        "a newer deploy migrated it. Use its code."
    )


@pytest.mark.parametrize(
    ("services", "in_running_backend", "expected"),
    [
        (["postgres", "migrate", "backend"], False, "run --rm migrate alembic upgrade head"),
        (["postgres", "migrate", "backend"], True, "run --rm migrate alembic upgrade head"),
        (["postgres", "backend"], True, "exec -T backend alembic upgrade head"),
        (["postgres", "backend"], False, "run --rm --no-deps -T backend alembic upgrade head"),
    ],
)
def test_the_upgrade_runs_in_the_migrate_service_else_in_the_backend(
    monkeypatch, services, in_running_backend, expected
):
    monkeypatch.setattr(migrations, "service_names", lambda c, target: services)
    c = MockContext(config=project_config())
    assert migrations.upgrade_command(c, stack_target(c), in_running_backend=in_running_backend) == expected


def migrate_context(monkeypatch, revision, services=("postgres", "backend")):
    """tasks.migrate with its stack checks passing and the database at `revision`."""
    c = MockContext(config=project_config(), run=Result(), repeat=True)
    monkeypatch.setattr(tasks, "_ready", lambda c, prod=False: stack_target(c, prod))
    monkeypatch.setattr(stack, "service_names", lambda c, target: list(services))
    monkeypatch.setattr(migrations, "service_names", lambda c, target: list(services))
    monkeypatch.setattr(stack, "running", lambda c, target, service: True)
    monkeypatch.setattr(stack, "up", lambda c, target, services: None)
    monkeypatch.setattr(migrations, "contents", lambda c, target: {"revision": revision, "rows": {}})
    return c


def test_migrate_refuses_a_database_the_code_does_not_know_before_running_alembic(monkeypatch):
    c = migrate_context(monkeypatch, "ffffffffffff")
    with pytest.raises(Problem) as refused:
        tasks.migrate(c)
    assert str(refused.value).startswith("migrate: the database of 'todostack' is at revision ffffffffffff, which")
    assert "Deploy that code again, or downgrade with it (`inv downgrade --revision 0001`" in str(refused.value)
    assert not [call for call in c.run.call_args_list if "alembic" in call.args[0]]


@pytest.mark.parametrize("revision", [None, "0001"])
def test_migrate_upgrades_a_database_at_a_known_revision_or_none(monkeypatch, revision):
    c = migrate_context(monkeypatch, revision)
    tasks.migrate(c)
    assert c.run.call_args_list[-1].args[0].endswith(" exec -T backend alembic upgrade head")


def test_migrate_on_prod_starts_postgres_and_runs_the_one_shot_service(monkeypatch):
    c = migrate_context(monkeypatch, "0001", services=("postgres", "migrate", "backend", "frontend"))
    started = []
    monkeypatch.setattr(stack, "up", lambda c, target, services: started.append(services))
    tasks.migrate(c, prod=True, revision="0001")
    assert started == [["postgres"]]
    assert c.run.call_args_list[-1].args[0].endswith(" run --rm migrate alembic upgrade 0001")


def check_context(monkeypatch, ready=True, check_ok=True, image_present=True):
    results = []

    def run(command, **kwargs):
        results.append(command)
        if " pg_isready " in command:
            return Result(exited=0 if ready else 2)
        if "alembic check" in command:
            return Result(
                stdout="FAILED: New upgrade operations detected" if not check_ok else "", exited=0 if check_ok else 255
            )
        return Result()

    c = MockContext(config=project_config(), run=Result(), repeat=True)
    c.run = run
    monkeypatch.setattr(migrations, "built_images", lambda c, target: {"backend": "todostack-backend"})
    monkeypatch.setattr(migrations, "inspect_image", lambda c, image: {"Id": "x"} if image_present else None)
    monkeypatch.setattr(migrations, "wait_until", lambda predicate, timeout, interval: 0 if predicate() else None)
    return c, results


def test_alembic_check_runs_in_the_dev_backend_image_beside_a_throwaway_postgres(monkeypatch):
    c, commands = check_context(monkeypatch)
    assert migrations.alembic_check(c, stack_target(c)).ok
    start, ready, check, remove = commands
    name = shlex.split(start)[shlex.split(start).index("--name") + 1]
    assert name.startswith("todostack-alembic-check-")
    assert " --rm " in start and "--network none" in start and "--tmpfs /var/lib/postgresql/data" in start
    assert ready == f"docker exec {name} pg_isready -q -h 127.0.0.1 -U alembic_check"
    args = shlex.split(check)
    assert args[:4] == ["docker", "run", "--rm", "--network"] and args[4] == f"container:{name}"
    assert f"{migrations.ROOT / 'backend'}:/app:ro" in args and "todostack-backend" in args
    assert args[-1] == "alembic upgrade head && alembic check"
    assert remove == f"docker rm --force --volumes {name}"


def test_a_failing_check_keeps_its_output_and_still_removes_the_server(monkeypatch):
    c, commands = check_context(monkeypatch, check_ok=False)
    result = migrations.alembic_check(c, stack_target(c))
    assert not result.ok and "New upgrade operations detected" in result.stdout
    assert commands[-1].startswith("docker rm --force --volumes todostack-alembic-check-")


def test_a_server_that_never_gets_ready_is_a_problem_and_is_removed(monkeypatch):
    c, commands = check_context(monkeypatch, ready=False)
    with pytest.raises(Problem, match=r"did not get ready within 60 s"):
        migrations.alembic_check(c, stack_target(c))
    assert commands[-1].startswith("docker rm --force --volumes ")
    assert not [command for command in commands if "alembic check" in command]


def test_a_missing_dev_backend_image_is_built_through_compose_first(monkeypatch):
    c, commands = check_context(monkeypatch, image_present=False)
    migrations.alembic_check(c, stack_target(c))
    assert commands[0] == f"{shlex.join(stack_target(c).args())} build backend"
