"""Tasks that destroy data ask first, and refuse without a terminal unless --yes is given."""

import io

import pytest
from invoke import MockContext

import tasks
from stackctl import Problem
from stackctl.compose import stack_target
from stackctl.confirm import confirm
from tests.helpers import project_config


class Stdin(io.StringIO):
    def __init__(self, text="", tty=False):
        super().__init__(text)
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.fixture
def no_stack_checks(monkeypatch):
    """The tasks' own checks (.env, engine) pass; any command they run raises (MockContext)."""
    monkeypatch.setattr(tasks, "_ready", lambda c, prod=False: stack_target(c, prod))


@pytest.mark.parametrize(
    "task, consequence",
    [
        (tasks.downgrade, "downgrade to -1 drops the tables and columns of the reverted migrations, with their data"),
        (tasks.reset, "reset deletes the database volume"),
    ],
)
def test_without_a_terminal_destructive_tasks_refuse_before_running_anything(
    monkeypatch, no_stack_checks, task, consequence
):
    monkeypatch.setattr("sys.stdin", Stdin())
    with pytest.raises(Problem, match=f"^{consequence}; rerun with --yes to confirm$"):
        task(MockContext(config=project_config()))


@pytest.mark.parametrize("answer", ["", "n", "no", "maybe"])
def test_anything_but_yes_at_the_terminal_cancels(monkeypatch, answer):
    monkeypatch.setattr("sys.stdin", Stdin(answer + "\n", tty=True))
    with pytest.raises(Problem, match="^cancelled; nothing was changed$"):
        confirm(False, "Drop everything?", "drops everything")


@pytest.mark.parametrize("answer", ["y", "YES", " yes "])
def test_yes_at_the_terminal_goes_on(monkeypatch, answer):
    monkeypatch.setattr("sys.stdin", Stdin(answer + "\n", tty=True))
    confirm(False, "Drop everything?", "drops everything")


def test_the_flag_goes_on_without_asking(monkeypatch):
    monkeypatch.setattr("sys.stdin", Stdin())
    confirm(True, "Drop everything?", "drops everything")
