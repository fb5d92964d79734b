"""Tasks for developing, testing and shipping the stack. `inv --list` shows them all;
the logic behind them lives in the stackctl package."""
import sys

from invoke import task

from stackctl import ROOT, Problem, bases, doctor as diagnosis, envfile
from stackctl.engine import require_engine


@task(help={
    "engine": "Also provision a Docker engine and Compose v2 when missing (Debian/Ubuntu, root)",
    "force": "Recreate .env from .env.example with new secrets, replacing the existing one",
})
def setup(c, engine=False, force=False):
    """Prepare this machine: .env with fresh secrets, engine check, base images."""
    if engine:
        c.run(f"bash {ROOT / 'scripts/install-engine.sh'}")
    stack = c.config.stack
    env_path = ROOT / stack.env_file
    outcome, keys = envfile.create_or_complete(env_path, ROOT / stack.env_example,
                                               stack.secret_vars, force=force)
    print({"created": f"setup: created {stack.env_file} (secrets generated: "
                      f"{', '.join(k for k in keys if k in stack.secret_vars)})",
           "completed": f"setup: added {', '.join(keys)} to {stack.env_file}",
           "unchanged": f"setup: {stack.env_file} is complete; left as it is"}[outcome])
    engine_version, compose_version = require_engine(c)
    print(f"setup: Docker Engine {engine_version}, Compose {compose_version}")
    overrides = bases.ensure_for_stack(c, env_path)
    for variable, image in overrides.items():
        print(f"setup: {variable}={image} written to {stack.env_file}")
    print("setup: done; `inv doctor` checks everything")


@task(name="bases", iterable=["base"], help={
    "base": "Build only this base (python, node, postgres, nginx); repeatable. Default: all",
})
def bases_(c, base=None):
    """Build the local base images from Debian packages (no registry needed)."""
    selected = bases.select(c, base or [])
    require_engine(c)
    bases.provide(c, selected)


@task(help={"unit": "Only the unit tests (seconds, no Docker needed)"})
def test(c, unit=False):
    """Run every test: unit tests, then integration tests against the real engine."""
    c.run(f"{sys.executable} -m pytest {'tests/unit' if unit else 'tests'}", pty=False)


@task
def doctor(c):
    """Check engine, Compose, .env, ports, base images and disk; one line per problem."""
    findings = diagnosis.run_checks(c)
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if not f.ok]
    if failed:
        raise Problem(f"doctor: {len(failed)} problem(s) found; fix the FAIL lines above")
    print("doctor: all checks passed")

