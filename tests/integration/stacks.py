"""A stack under test: a copy of the working tree with the project's .env, its own
Compose project names, ports and image tag, driven through `inv` as a user drives it."""
import json
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests

from stackctl.bench import wait_until  # noqa: F401  (re-exported for the stack tests)
from stackctl.envfile import set_values
from tests.helpers import ROOT, free_port, inv, make_checkout

TIMEOUT = 5


class StackCopy:
    def __init__(self, name):
        assert (ROOT / ".env").is_file(), "no .env: run `inv setup` first"
        # A suffix of its own: two runs sharing an engine never drive each other's stacks.
        name = f"{name}-{uuid.uuid4().hex[:6]}"
        (ROOT / ".cache").mkdir(exist_ok=True)
        # Under the project, not a private temp dir: container users (node) read the bind mounts.
        self.path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ROOT / ".cache"))
        self.path.chmod(0o755)
        make_checkout(self.path)
        shutil.copy(ROOT / ".env", self.path / ".env")
        self.ports = {name: free_port() for name in ("FRONTEND_PORT", "BACKEND_PORT", "POSTGRES_PORT", "PROD_PORT")}
        set_values(self.path / ".env", {**self.ports, "IMAGE_TAG": name})
        self.project, self.prod_project = name, f"{name}-prod"
        self.env = {"INVOKE_STACK_PROJECT_NAME": self.project, "INVOKE_STACK_PROD_PROJECT_NAME": self.prod_project,
                    "INVOKE_BUILD_REPORT": str(self.path / "reports/build-prod.json")}

    def url(self, variable):
        return f"http://127.0.0.1:{self.ports[variable]}"

    def inv(self, *args, env=None):
        return inv(*args, cwd=self.path, env={**self.env, **(env or {})})

    def ok(self, *args, env=None):
        result = self.inv(*args, env=env)
        assert result.returncode == 0, f"inv {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def started_at(self, service, prod=False):
        return self.inspect(service, prod)["State"]["StartedAt"]

    def container(self, service, prod=False):
        return f"{self.prod_project if prod else self.project}-{service}-1"

    def inspect(self, service, prod=False):
        out = subprocess.run(["docker", "inspect", self.container(service, prod)],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)[0]

    def images(self, prod):
        if prod:
            return [f"todostack/backend:{self.project}", f"todostack/frontend:{self.project}"]
        return [f"{self.project}-backend", f"{self.project}-frontend"]

    def teardown(self, prod=False):
        """Remove what the copy made: the stack with its volumes, its images, the copy."""
        self.inv("reset", "--yes", *(["--prod"] if prod else []))
        subprocess.run(["docker", "rmi", *self.images(prod)], capture_output=True)
        self.remove()

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def running_stack(name, prod=False):
    """A stack from a copy of the tree, up and migrated; torn down afterwards. Prod images
    are built first whatever their budgets say: budgets are test_prod_stack's business."""
    stack = StackCopy(name)
    flags = ["--prod"] if prod else []
    try:
        stack.ok("reset", "--yes", *flags)
        if prod:
            built = stack.inv("build", "--prod")
            assert built.returncode == 0 or "build: budget breached by" in built.stderr, built.stdout + built.stderr
        stack.ok("up", *flags)
        stack.ok("migrate", *flags)
        yield stack
    finally:
        stack.teardown(prod)


def http(method, url, **kwargs):
    return requests.request(method, url, timeout=TIMEOUT, **kwargs)
