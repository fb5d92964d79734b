"""The README documents every task, and CI runs exactly the README's test command."""

from invoke import Collection

import tasks
from tests.helpers import ROOT, readme_block


def test_ci_runs_exactly_the_readme_test_command():
    assert f"\n{readme_block('test-command')}\n" in (ROOT / ".ci/run").read_text()


def test_every_task_is_in_the_readme():
    names = Collection.from_module(tasks).task_names
    readme = (ROOT / "README.md").read_text()
    assert names and not [name for name in names if f"inv {name}" not in readme]


def test_every_task_flag_has_help():
    for task in Collection.from_module(tasks).tasks.values():
        flags = [arg for arg in task.get_arguments() if arg.name != "help"]
        assert all(flag.help for flag in flags), f"{task.name}: flag without help"
