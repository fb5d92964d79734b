"""The one place that assembles `docker compose` command lines."""
import shlex

from . import ROOT


def project_name(c, prod=False):
    """Dev and prod stacks are separate Compose projects: they never share containers."""
    return c.config.stack.prod_project_name if prod else c.config.stack.project_name


def compose_args(c, *, prod=False, files=None, project=None):
    """The `docker compose` prefix for this project: project name, directory, files, env file.

    `files` and `project` replace the configured ones (used for the base-image build).
    """
    stack = c.config.stack
    if files is None:
        files = stack.prod_compose_files if prod else stack.compose_files
    # Relative paths in compose files resolve against the first file's directory.
    args = ["docker", "compose", "--project-name", project or project_name(c, prod),
            "--project-directory", str((ROOT / files[0]).parent)]
    for compose_file in files:
        args += ["-f", str(ROOT / compose_file)]
    env_file = ROOT / stack.env_file
    if env_file.is_file():
        args += ["--env-file", str(env_file)]
    return args


def docker_compose(c, command, *, prod=False, files=None, project=None, **run_kwargs):
    """Run `docker compose <command>` for this project; extra kwargs go to `c.run`."""
    prefix = shlex.join(compose_args(c, prod=prod, files=files, project=project))
    return c.run(f"{prefix} {command}", **run_kwargs)
