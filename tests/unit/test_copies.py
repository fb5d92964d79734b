"""An isolated copy of the tree: its own project names, free ports and image tag, the same files."""

import os
import shutil
import subprocess
import sys

import pytest
from invoke import Context

from stackctl.compose import stack_target
from stackctl.copies import TreeCopy, tree_files
from stackctl.envfile import read_env
from tests.helpers import ROOT, project_config


@pytest.fixture
def copy(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("FRONTEND_PORT=3000\nPROD_PORT=8080\nPOSTGRES_PASSWORD=pw\n")
    copy = TreeCopy(Context(project_config(stack={"env_file": str(env)})), "unit")
    yield copy
    shutil.rmtree(copy.path)


def test_the_copy_holds_the_working_trees_files_and_no_env_of_the_user(copy):
    assert sorted(tree_files(copy.path)) == sorted(tree_files(ROOT))
    assert (copy.path / "tasks.py").read_bytes() == (ROOT / "tasks.py").read_bytes()


def test_every_published_port_of_every_target_is_its_own(copy):
    config = project_config()
    variables = {v for target in config.stack.targets for v in config.stack.targets[target].ports}
    assert set(copy.ports) == variables and len(set(copy.ports.values())) == len(variables)
    env = read_env(copy.path / ".env")
    assert {v: int(env[v]) for v in variables} == copy.ports
    assert env["IMAGE_TAG"] == copy.name and env["POSTGRES_PASSWORD"] == "pw"


def test_settings_go_over_the_projects_env(tmp_path):
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=pw\nRATE_LIMIT_REQUESTS=\n")
    config = project_config(stack={"env_file": str(env)})
    copy = TreeCopy(Context(config), "unit", settings={"RATE_LIMIT_REQUESTS": 1000, "RATE_LIMIT_WINDOW_S": 5})
    try:
        copied = read_env(copy.path / ".env")
        assert (copied["RATE_LIMIT_REQUESTS"], copied["RATE_LIMIT_WINDOW_S"]) == ("1000", "5")
        assert copied["POSTGRES_PASSWORD"] == "pw" and copied["IMAGE_TAG"] == copy.name
        assert read_env(env)["RATE_LIMIT_REQUESTS"] == "", "the project's own .env changed"
    finally:
        shutil.rmtree(copy.path)


def test_its_targets_are_its_own_projects_on_its_own_files(copy):
    dev, prod = copy.target(), copy.target(prod=True)
    assert dev.project == copy.name and prod.project == f"{copy.name}-prod"
    assert dev.files == (copy.path / "docker-compose.yml",) and dev.env_file == copy.path / ".env"
    assert prod.files == (copy.path / "docker-compose.prod.yml",)


def test_inv_in_the_copy_sees_the_same_targets(copy):
    """The environment it runs `inv` with makes the tasks there choose the copy's projects."""
    probe = (
        "from invoke import Config; from stackctl.compose import stack_target; from invoke import Context;"
        "c = Config(project_location='.'); c.load_project(); c.load_shell_env();"
        "x = Context(c); print(stack_target(x).project, stack_target(x, True).project)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy.path,
        capture_output=True,
        text=True,
        env={**os.environ, **copy.env},
        check=True,
    )
    assert result.stdout.split() == [copy.name, f"{copy.name}-prod"]
    assert stack_target(Context(project_config())).project == "todostack"
