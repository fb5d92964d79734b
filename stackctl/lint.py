"""`inv lint`: hadolint on every Dockerfile, Compose's own validation of both compose
files, yamllint on the project's YAML."""
import os
import shlex

from . import ROOT
from .compose import docker_compose, stack_target

SKIP_DIRS = {".git", ".cache", "node_modules", ".venv", "dist"}
YAML_FILES = ["docker-compose.yml", "docker-compose.prod.yml", "bases/compose.yaml", "invoke.yaml",
              "tests/integration/fixtures/compose.yaml", ".yamllint.yaml", ".hadolint.yaml",
              ".github/workflows/ci.yml"]


def dockerfiles():
    """Every Dockerfile in the project (relative paths), skipping caches and dependencies."""
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
        found += [os.path.relpath(os.path.join(directory, f), ROOT) for f in files if f == "Dockerfile"]
    return sorted(found)


def run_linters(c):
    """Run every linter, printing their output; returns the names of those that failed."""
    failed = []
    hadolint = shlex.join(["hadolint", "--config", str(ROOT / ".hadolint.yaml"), *dockerfiles()])
    checks = [("hadolint", lambda: c.run(hadolint, warn=True)),
              ("yamllint", lambda: c.run(shlex.join(["yamllint", "--strict", "-c", str(ROOT / ".yamllint.yaml"),
                                                     *YAML_FILES]), warn=True))]
    for target in (stack_target(c), stack_target(c, prod=True)):
        checks.append((f"compose config ({target.name})",
                       lambda target=target: docker_compose(c, target, "config --quiet", warn=True)))
    with c.cd(shlex.quote(str(ROOT))):
        for name, check in checks:
            result = check()
            # Compose validates quietly but still prints warnings (obsolete keys, unset variables).
            clean = result.ok and not (name.startswith("compose") and result.stderr.strip())
            print(f"{'ok  ' if clean else 'FAIL'}  {name}")
            if not clean:
                failed.append(name)
    return failed
