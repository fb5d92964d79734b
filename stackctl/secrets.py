"""The stack's secrets in .env: generated once, and never replaced while a database volume
initialised with them exists, so that `inv setup` cannot lock anyone out of their data."""

import json

from . import ROOT, Problem
from .compose import stack_target
from .envfile import backup_path, create_or_complete


def data_volumes(c):
    """Names of the named volumes of the dev and prod stacks, or None when the engine does not
    answer (then nobody can tell)."""
    found = []
    for project in (stack_target(c).project, stack_target(c, prod=True).project):
        result = c.run(
            "docker volume ls --format '{{json .}}' --filter label=com.docker.compose.volume "
            f"--filter label=com.docker.compose.project={project}",
            hide=True,
            warn=True,
        )
        if not result.ok:
            return None
        found += [json.loads(line)["Name"] for line in result.stdout.splitlines() if line.strip()]
    return sorted(found)


def write_env(c, rewrite=False, regenerate=False):
    """Create or complete .env (see envfile.create_or_complete), refusing whatever would give
    an existing database volume a password other than the one it was initialised with."""
    config = c.config.stack
    env_path = ROOT / config.env_file
    secrets = list(config.secret_vars)
    if regenerate or not env_path.exists():
        volumes = data_volumes(c)
        if regenerate and volumes is None:
            raise Problem(
                "setup: cannot check for database volumes (the Docker engine does not answer), "
                "so secrets are not regenerated: start the engine and rerun"
            )
        if volumes and regenerate:
            raise Problem(
                f"setup: regenerating {', '.join(secrets)} would lock the stack out of its data: "
                f"volume {', '.join(volumes)} keeps the current password. Rerun without "
                "--regenerate-secrets, or delete the data first (inv reset, inv reset --prod)"
            )
        if volumes:
            backup = backup_path(env_path)
            hint = f"restore it from {backup.name}" if backup.exists() else "restore it"
            raise Problem(
                f"setup: {config.env_file} is missing but volume {', '.join(volumes)} was "
                f"initialised with the password in it: {hint}, or delete the data first "
                f"(docker volume rm {' '.join(volumes)})"
            )
    return create_or_complete(
        env_path, ROOT / config.env_example, secrets, rewrite=rewrite, regenerate=secrets if regenerate else ()
    )
