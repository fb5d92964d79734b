"""An isolated copy of the working tree: the same stacks under Compose project names, host
ports and an image tag of their own, so the bench and the tests never touch a user's stacks.
The one way to make one; everything it creates goes with `remove()`."""

import fnmatch
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from invoke import Context

from . import ROOT
from .compose import docker_compose, stack_target
from .envfile import set_values


def tree_files(root=ROOT):
    """The tracked and unignored files of the working tree (what a clean checkout holds, with
    the changes not yet committed). Outside a git work tree (a copy of a copy): every file but
    those .gitignore's plain patterns name."""
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    if top.returncode == 0 and Path(top.stdout.strip()).resolve() == root.resolve():
        listing = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        # dict.fromkeys: in a merge with conflicts, git lists a file once per stage.
        return list(dict.fromkeys(name for name in listing.split("\0") if name and (root / name).is_file()))
    ignored = {
        ".git",
        *(
            line.strip().rstrip("/")
            for line in (root / ".gitignore").read_text().splitlines()
            if line.strip() and not line.startswith(("#", "!"))
        ),
    }
    return [
        str(path.relative_to(root))
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and not any(fnmatch.fnmatch(part, pattern) for part in path.relative_to(root).parts for pattern in ignored)
    ]


def copy_tree(destination, root=ROOT):
    """Copy the working tree's files (no .env, no caches) to destination; returns it."""
    for name in tree_files(root):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination / name)
    return destination


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TreeCopy:
    """A copy under .cache/ (not a private temp dir: container users such as `node` read its
    bind mounts) with the project's .env on free ports. `ctx` drives Compose on it in-process;
    `inv()` runs its tasks as a user would. The name gets a random suffix: two runs sharing an
    engine never drive each other's stacks."""

    def __init__(self, c, name, env=True, settings=None):
        """With env, the copy gets the project's .env, on free ports and with an image tag of
        its own, and with `settings` ({variable: value}, e.g. the rate limit) over it; without,
        it has no .env (a clean checkout: `inv setup` makes one)."""
        self.name = f"{name}-{secrets.token_hex(3)}"
        (ROOT / ".cache").mkdir(exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=ROOT / ".cache"))
        self.path.chmod(0o755)
        try:
            copy_tree(self.path)
            config = c.config.clone()
            targets = config.stack.targets
            self.ports = {variable: free_port() for target in targets for variable in targets[target].ports}
            self.env = {"INVOKE_BUILD_REPORT": str(self.path / "reports/build-prod.json")}
            for target in targets:
                spec = targets[target]
                spec.project_name = self.name if target == "dev" else f"{self.name}-{target}"
                spec.compose_files = [str(self.path / f) for f in spec.compose_files]
                self.env[f"INVOKE_STACK_TARGETS_{target.upper()}_PROJECT_NAME"] = spec.project_name
            config.stack.env_file = str(self.path / ".env")
            if env:
                shutil.copy(ROOT / c.config.stack.env_file, self.path / ".env")
                set_values(self.path / ".env", {**self.ports, "IMAGE_TAG": self.name, **(settings or {})})
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        config.run.env = dict(self.env)
        config.run.in_stream = False
        self.ctx = Context(config=config)

    def target(self, prod=False):
        return stack_target(self.ctx, prod)

    def url(self, variable, path=""):
        return f"http://127.0.0.1:{self.ports[variable]}{path}"

    def inv(self, *args, env=None, timeout=900, **run_kwargs):
        """`inv ARGS` in the copy, in a subprocess; the CompletedProcess (output captured as
        text unless stdout is given). Raises subprocess.TimeoutExpired after `timeout`."""
        if "stdout" not in run_kwargs:
            run_kwargs["capture_output"] = True
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=self.path,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env={**os.environ, **self.env, **(env or {})},
            **run_kwargs,
        )

    def remove(self):
        """The stacks with their volumes, every image the copy's builds made (Compose labels
        each with its project: tagged ones and those a rebuild left untagged), the copy itself."""
        for prod in (False, True):
            target = self.target(prod)
            docker_compose(self.ctx, target, "down --volumes --remove-orphans --timeout 5", hide=True, warn=True)
            built = self.ctx.run(
                f"docker image ls --quiet --no-trunc --filter label=com.docker.compose.project={target.project}",
                hide=True,
                warn=True,
            )
            for image in dict.fromkeys(built.stdout.split()):
                self.ctx.run(f"docker image rm --force {image}", hide=True, warn=True)
        shutil.rmtree(self.path, ignore_errors=True)
