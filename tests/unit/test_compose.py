import shlex

from invoke import MockContext, Result

from stackctl import ROOT
from stackctl.compose import Target, docker_compose, stack_target
from tests.helpers import project_config


def context(tmp_path, env_text=None, **dev):
    env_file = tmp_path / ".env"
    if env_text is not None:
        env_file.write_text(env_text)
    config = project_config(
        stack={"env_file": str(env_file), "targets": {"dev": dev}} if dev else {"env_file": str(env_file)}
    )
    return MockContext(config=config, run=Result(), repeat=True)


def files(args):
    return [args[i + 1] for i, a in enumerate(args) if a == "-f"]


def test_dev_target_names_project_directory_and_dev_file(tmp_path):
    args = stack_target(context(tmp_path)).args()
    assert args[:4] == ["docker", "compose", "--project-name", "todostack"]
    assert args[args.index("--project-directory") + 1] == str(ROOT)
    assert files(args) == [str(ROOT / "docker-compose.yml")]


def test_env_file_is_passed_only_when_it_exists(tmp_path):
    assert "--env-file" not in stack_target(context(tmp_path)).args()
    args = stack_target(context(tmp_path, env_text="A=1\n")).args()
    assert args[args.index("--env-file") + 1] == str(tmp_path / ".env")


def test_prod_target_has_its_own_project_files_and_ports(tmp_path):
    target = stack_target(context(tmp_path), prod=True)
    assert (target.name, target.project, target.public_port) == ("prod", "todostack-prod", "PROD_PORT")
    assert files(target.args()) == [str(ROOT / "docker-compose.prod.yml")]
    assert target.ports == {"PROD_PORT": 8080}


def test_dev_target_publishes_the_configured_ports(tmp_path):
    target = stack_target(context(tmp_path))
    assert target.ports == {"FRONTEND_PORT": 3000, "BACKEND_PORT": 8000, "POSTGRES_PORT": 5432}
    assert target.port("FRONTEND_PORT", {}) == 3000 and target.port("FRONTEND_PORT", {"FRONTEND_PORT": "3999"}) == 3999


def test_project_name_comes_from_config(tmp_path):
    args = stack_target(context(tmp_path, project_name="other")).args()
    assert args[args.index("--project-name") + 1] == "other"


def test_a_target_of_other_files_resolves_against_the_first_one(tmp_path):
    target = Target(name="bases", project="localbase", files=(ROOT / "bases/compose.yaml",))
    args = target.args()
    assert args[args.index("--project-directory") + 1] == str(ROOT / "bases")
    assert "--env-file" not in args


def test_paths_with_spaces_stay_one_word(tmp_path):
    checkout = tmp_path / "my checkout's $dir"
    target = Target(name="dev", project="p", files=(checkout / "docker-compose.yml",))
    assert shlex.split(shlex.join(target.args()))[-1] == str(checkout / "docker-compose.yml")


def test_docker_compose_runs_the_assembled_command(tmp_path):
    c = context(tmp_path)
    target = stack_target(c)
    docker_compose(c, target, "ps --format json", hide=True)
    command = c.run.call_args.args[0]
    assert command == shlex.join(target.args()) + " ps --format json"
    assert c.run.call_args.kwargs == {"hide": True}
