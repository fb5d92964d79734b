"""The one place that assembles `docker compose` command lines, for a stack target: which
Compose project, files, directory and env file a command acts on, and what it publishes."""

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import ROOT


@dataclass(frozen=True)
class Target:
    """One stack as Compose sees it. Tasks choose it once (`stack_target(c, prod)`) and pass it down."""

    name: str
    project: str
    files: tuple[Path, ...]
    env_file: Path | None = None
    # Published host ports: the .env variable and its default.
    ports: dict = field(default_factory=dict)
    # Which of them is the stack's public origin (the frontend).
    public_port: str | None = None

    @property
    def directory(self):
        """Relative paths in compose files resolve against the first file's directory."""
        return self.files[0].parent

    def port(self, variable, env):
        """A published port as Compose will publish it: its value in `env`, else its default."""
        return int(env.get(variable) or self.ports[variable])

    def args(self):
        """The `docker compose` prefix: project name, directory, files, env file (when it exists)."""
        args = ["docker", "compose", "--project-name", self.project, "--project-directory", str(self.directory)]
        for compose_file in self.files:
            args += ["-f", str(compose_file)]
        if self.env_file is not None and self.env_file.is_file():
            args += ["--env-file", str(self.env_file)]
        return args


def stack_target(c, prod=False, name=None):
    """The dev or the prod stack (or the one `name`s, e.g. swarm), as invoke.yaml's
    `stack.targets` describes it."""
    name = name or ("prod" if prod else "dev")
    spec = c.config.stack.targets[name]
    return Target(
        name=name,
        project=spec.project_name,
        files=tuple(ROOT / f for f in spec.compose_files),
        env_file=ROOT / c.config.stack.env_file,
        ports=dict(spec.ports),
        public_port=spec.public_port,
    )


def docker_compose(c, target, command, **run_kwargs):
    """Run `docker compose <command>` for a target; extra kwargs go to `c.run`."""
    return c.run(f"{shlex.join(target.args())} {command}", **run_kwargs)


def compose_process(target, command, **popen_kwargs):
    """`docker compose <command>` for a target as a subprocess.Popen: for byte streams (a
    database dump) that `c.run`, which decodes text, cannot carry."""
    return subprocess.Popen([*target.args(), *shlex.split(command)], **popen_kwargs)
