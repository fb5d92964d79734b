"""`inv down`: the command lines it runs (no anonymous volume left behind, named ones kept)."""

import shlex

import pytest
from invoke import MockContext, Result

import tasks
from stackctl import Problem, stack
from stackctl.compose import stack_target
from tests.helpers import project_config


def context(tmp_path, *results):
    (tmp_path / ".env").write_text("A=1\n")
    config = project_config(stack={"env_file": str(tmp_path / ".env")})
    return MockContext(config=config, run=list(results) or Result(), repeat=not results)


def commands(c):
    return [call.args[0] for call in c.run.call_args_list]


@pytest.mark.parametrize("prod", [False, True])
def test_down_removes_containers_with_their_anonymous_volumes_then_the_rest(tmp_path, prod):
    c = context(tmp_path)
    target = stack_target(c, prod)
    stack.down(c, target)
    prefix = shlex.join(target.args())
    assert commands(c) == [f"{prefix} rm --stop --force --volumes", f"{prefix} down --remove-orphans"]


def test_down_never_removes_named_volumes(tmp_path):
    # `rm --volumes` removes only the anonymous volumes of the containers it removes;
    # `down --volumes` (or -v) would remove the named ones too: the database.
    c = context(tmp_path)
    stack.down(c, stack_target(c))
    down = shlex.split(commands(c)[-1])
    assert down[down.index("down") :] == ["down", "--remove-orphans"]


def test_a_failing_step_stops_down_with_one_line(tmp_path):
    c = context(tmp_path, Result(exited=1))
    with pytest.raises(Problem, match=r"^docker compose rm failed \(exit 1\); see its output above$"):
        stack.down(c, stack_target(c))
    assert len(commands(c)) == 1


def test_the_down_task_runs_stack_down(tmp_path, monkeypatch):
    calls = []
    c = MockContext(config=project_config())
    monkeypatch.setattr(tasks, "_ready", lambda c, prod=False: stack_target(c, prod))
    monkeypatch.setattr(stack, "down", lambda c, target: calls.append(target.name))
    tasks.down(c, prod=True)
    assert calls == ["prod"]


def test_service_names_come_in_one_order_whatever_order_compose_lists_them_in(tmp_path):
    # Compose's dependency order varies between services on one level (postgres and redis).
    for listing in ("postgres\nredis\nbackend\n", "redis\npostgres\nbackend\n"):
        c = context(tmp_path, Result(stdout=listing))
        assert stack.service_names(c, stack_target(c)) == ["backend", "postgres", "redis"]
