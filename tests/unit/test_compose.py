import shlex

from invoke import MockContext, Result

from stackctl import ROOT
from stackctl.compose import compose_args, docker_compose
from tests.helpers import project_config


def context(tmp_path, env_text=None, **stack):
    env_file = tmp_path / ".env"
    if env_text is not None:
        env_file.write_text(env_text)
    config = project_config(stack={"env_file": str(env_file), **stack})
    return MockContext(config=config, run=Result(), repeat=True)


def test_dev_command_names_project_directory_and_dev_file(tmp_path):
    args = compose_args(context(tmp_path))
    assert args[:4] == ["docker", "compose", "--project-name", "todostack"]
    assert args[args.index("--project-directory") + 1] == str(ROOT)
    assert [args[i + 1] for i, a in enumerate(args) if a == "-f"] == [str(ROOT / "docker-compose.yml")]


def test_env_file_is_passed_only_when_it_exists(tmp_path):
    assert "--env-file" not in compose_args(context(tmp_path))
    args = compose_args(context(tmp_path, env_text="A=1\n"))
    assert args[args.index("--env-file") + 1] == str(tmp_path / ".env")


def test_prod_uses_prod_files(tmp_path):
    args = compose_args(context(tmp_path), prod=True)
    assert [args[i + 1] for i, a in enumerate(args) if a == "-f"] == [str(ROOT / "docker-compose.prod.yml")]


def test_project_name_comes_from_config(tmp_path):
    args = compose_args(context(tmp_path, project_name="other"))
    assert args[args.index("--project-name") + 1] == "other"


def test_explicit_files_set_the_project_directory(tmp_path):
    args = compose_args(context(tmp_path), files=["bases/compose.yaml"], project="localbase")
    assert args[args.index("--project-directory") + 1] == str(ROOT / "bases")
    assert args[args.index("--project-name") + 1] == "localbase"


def test_docker_compose_runs_the_assembled_command(tmp_path):
    c = context(tmp_path)
    docker_compose(c, "ps --format json", hide=True)
    command = c.run.call_args.args[0]
    assert command == shlex.join(compose_args(c)) + " ps --format json"
    assert c.run.call_args.kwargs == {"hide": True}
