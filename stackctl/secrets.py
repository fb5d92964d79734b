"""The stack's secrets in .env: generated once, and never replaced while a database volume
initialised with them exists, so that `inv setup` cannot lock anyone out of their data. The
prod stack reads them as files (Compose secrets): secrets/ holds a copy of each, written from
.env."""

import json

from . import ROOT, Problem
from .compose import stack_target
from .envfile import backup_path, create_or_complete, write_atomically_once
from .stack import effective_env

# Compose bind-mounts a secret file as it is on the host: it cannot change its owner or mode
# outside Swarm, and the containers' users (postgres, app) are not the host's. So the files
# are world-readable, and the directory (mode 0700) is what keeps other host users out.
SECRET_FILE_MODE = 0o644
SECRETS_DIR_MODE = 0o700


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


def write_files(c):
    """secrets/NAME for each stack.secret_files entry, holding its variable's value as Compose
    would interpolate it (the environment over .env); a file is rewritten only when it
    differs. Returns the paths."""
    config = c.config.stack
    directory = ROOT / config.secrets_dir
    env = effective_env(c)
    directory.mkdir(exist_ok=True)
    directory.chmod(SECRETS_DIR_MODE)
    paths = []
    for name, variable in config.secret_files.items():
        value = env.get(variable) or ""
        if not value:
            raise Problem(
                f"{variable} must be set for the production stack (a secret file): it has no value in "
                f"{config.env_file}; run `inv setup` to generate it"
            )
        path = directory / name
        if not path.is_file() or path.read_text() != value:
            write_atomically_once(path, value, SECRET_FILE_MODE)
        paths.append(path)
    return paths
