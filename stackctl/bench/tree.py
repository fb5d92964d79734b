"""The bench's copy of the tree (copies.TreeCopy): what it runs there goes to the bench log, a
command that fails ends the bench with a Problem, and it brings its stacks to where a section
starts (images built, dev stack up), untimed."""

import subprocess
import time
from contextlib import contextmanager

from .. import ROOT, Problem
from ..compose import docker_compose
from ..copies import TreeCopy
from ..engine import inspect_image
from ..images import build_one, built_images
from ..stack import containers


class BenchCopy(TreeCopy):
    def __init__(self, c, log):
        if not (ROOT / c.config.stack.env_file).is_file():
            raise Problem(f"{c.config.stack.env_file} not found: run `inv setup` to create it")
        # The load comes from one client address: a limit it never reaches, so the limiter
        # runs (and costs what it costs) without refusing anything.
        super().__init__(
            c, "todostack-bench", settings={"RATE_LIMIT_REQUESTS": c.config.bench.load.rate_limit_requests}
        )
        self.log = log
        self.timeout = int(c.config.bench.command_timeout_s)
        self.ctx.config.run.timeout = self.timeout
        self.dev_built = False

    def inv(self, *args):
        """Run `inv ARGS` in the copy; returns seconds taken. Output goes to the log."""
        self.log.write(f"\n$ inv {' '.join(args)}\n")
        self.log.flush()
        start = time.monotonic()
        try:
            result = super().inv(*args, timeout=self.timeout, stdout=self.log, stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            raise Problem(f"bench: `inv {' '.join(args)}` took over {self.timeout} s; see the bench log") from None
        if result.returncode != 0:
            raise Problem(f"bench: `inv {' '.join(args)}` failed in the bench copy; see the bench log")
        return time.monotonic() - start

    @contextmanager
    def logged(self):
        """Commands run inside print to the bench log instead of the terminal."""
        run = self.ctx.config.run
        run.out_stream = run.err_stream = self.log
        try:
            yield
        finally:
            run.out_stream = run.err_stream = None

    def compose(self, command, prod=False, env=None):
        """`docker compose COMMAND` on the copy's stack, with `env` over the copy's variables."""
        with self.logged():
            result = docker_compose(self.ctx, self.target(prod), command, warn=True, env={**self.env, **(env or {})})
        if not result.ok:
            raise Problem(f"bench: `docker compose {command}` failed; see the bench log")
        return result

    def images(self, prod):
        return built_images(self.ctx, self.target(prod))

    def build(self, service, no_cache=False):
        """Build one prod image; returns seconds (images.build_one)."""
        self.log.write(f"\n$ build {service}{' --no-cache' if no_cache else ''}\n")
        with self.logged():
            seconds = build_one(self.ctx, self.target(prod=True), service, no_cache=no_cache)
        return seconds

    def container_pid(self, service, prod=False):
        cid = docker_compose(self.ctx, self.target(prod), f"ps -q {service}", hide=True, warn=True).stdout.strip()
        result = self.ctx.run(f"docker inspect -f '{{{{.State.Pid}}}}' {cid}", hide=True, warn=True) if cid else None
        return int(result.stdout.strip()) if result is not None and result.ok else None

    def container_names(self, prod=True):
        """{container name: service} of the running containers."""
        return {ct["Name"]: ct["Service"] for ct in containers(self.ctx, self.target(prod)) if ct["State"] == "running"}

    # -- what a section starts from (not timed) ------------------------------

    def prod_images_built(self, say):
        """Build the prod images that are missing."""
        for service, image in self.images(True).items():
            if inspect_image(self.ctx, image) is None:
                say(f"bench: prod build of {service} (not timed)")
                self.build(service)

    def dev_stack_up(self, say):
        """The dev stack running (its images built once per bench)."""
        if {"postgres", "backend", "frontend"} <= set(self.container_names(prod=False).values()):
            return
        if not self.dev_built:
            say("bench: building the dev images (not timed)")
            self.compose("build")
            self.dev_built = True
        say("bench: starting the dev stack (first start: database initialised, not timed)")
        self.inv("up")
