"""A stack under test: a copy of the working tree (stackctl.copies.TreeCopy) driven through
`inv` as a user drives it, with assertions and docker lookups for the tests."""

import json
import subprocess
from contextlib import contextmanager

import requests
from invoke import Context

from stackctl.copies import TreeCopy
from stackctl.wait import wait_until  # noqa: F401  (re-exported for the stack tests)
from tests.helpers import ROOT, project_config

TIMEOUT = 5
# The rate limit of every stack under test but the rate limiter's own: the fuzz, race and load
# tests send thousands of requests from one address, and the limiter must run for them (what
# they hold the API to includes it) without refusing any.
UNREACHED_RATE_LIMIT = {"RATE_LIMIT_REQUESTS": "1000000000"}


class StackCopy(TreeCopy):
    def __init__(self, name, settings=None):
        """A copy with the project's .env and `settings` ({variable: value}) over it; by
        default a rate limit no test reaches."""
        assert (ROOT / ".env").is_file(), "no .env: run `inv setup` first"
        super().__init__(
            Context(project_config()), name, settings=UNREACHED_RATE_LIMIT if settings is None else settings
        )
        self.project, self.prod_project = self.target().project, self.target(prod=True).project

    def ok(self, *args, env=None):
        result = self.inv(*args, env=env)
        assert result.returncode == 0, f"inv {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def started_at(self, service, prod=False):
        return self.inspect(service, prod)["State"]["StartedAt"]

    def container(self, service, prod=False):
        return f"{self.prod_project if prod else self.project}-{service}-1"

    def inspect(self, service, prod=False):
        out = subprocess.run(
            ["docker", "inspect", self.container(service, prod)], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out)[0]


@contextmanager
def running_stack(name, prod=False, settings=None):
    """A stack from a copy of the tree (StackCopy), up and migrated; removed afterwards. Prod
    images are built first whatever their budgets say: budgets are test_prod_stack's business."""
    stack = StackCopy(name, settings)
    flags = ["--prod"] if prod else []
    try:
        if prod:
            built = stack.inv("build", "--prod")
            assert built.returncode == 0 or "build: budget breached by" in built.stderr, built.stdout + built.stderr
        stack.up_result = stack.ok("up", *flags)
        stack.ok("migrate", *flags)
        yield stack
    finally:
        stack.remove()


def http(method, url, **kwargs):
    return requests.request(method, url, timeout=TIMEOUT, **kwargs)


def api(stack, method, path, via="BACKEND_PORT", **kwargs):
    """A request to one of the stack's published ports (default: the dev backend's)."""
    return http(method, stack.url(via) + path, **kwargs)
