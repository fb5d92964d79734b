"""`inv lint`: every linter of the project, one function each, run in the order of LINTERS.

A linter takes the Invoke context and the Options and returns an Outcome; its output is shown
only when it fails. The Python and shell linters run from .venv (requirements.txt pins them);
anything JavaScript runs in the dev frontend container (`docker compose run`), so the host
needs no Node.js."""

import os
import re
import shlex
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import ROOT, migrations
from .compose import docker_compose, stack_target

SKIP_DIRS = {".git", ".cache", "node_modules", ".venv", "dist"}
YAML_FILES = [
    "docker-compose.yml",
    "docker-compose.prod.yml",
    "bases/compose.yaml",
    "invoke.yaml",
    "tests/integration/fixtures/compose.yaml",
    ".yamllint.yaml",
    ".hadolint.yaml",
    ".github/workflows/ci.yml",
    # The Kubernetes manifests and inv k8s's skip list.
    *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "deploy" / "k8s").glob("*.yaml")),
]
# A POSIX shell or bash script without the .sh suffix (inv, .ci/run) says so on its first line.
SHELL_SHEBANG = re.compile(rb"#!\s*(?:/usr)?/bin/(?:env\s+)?(?:sh|bash|dash)\b")
# The frontend's API types: openapi-typescript's rendering of the backend's OpenAPI document.
API_TYPES = "frontend/src/api-schema.d.ts"
# Run by the dev backend image's python: writes the OpenAPI document to the file it is given.
OPENAPI_DUMP = "import json, sys; from app.main import app; json.dump(app.openapi(), open(sys.argv[1], 'w'), indent=2)"


@dataclass(frozen=True)
class Options:
    """What `inv lint` was asked for."""

    fix_types: bool = False


@dataclass(frozen=True)
class Outcome:
    """A linter's verdict: `output` is shown under a FAIL line, `note` on the status line."""

    ok: bool
    output: str = ""
    note: str = ""


def project_files(wanted):
    """Relative paths of the project's files for which wanted(path) is true, skipping caches
    and dependencies, sorted."""
    found = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
        found += [os.path.relpath(path, ROOT) for path in (Path(directory, f) for f in files) if wanted(path)]
    return sorted(found)


def dockerfiles():
    """Every Dockerfile in the project."""
    return project_files(lambda path: path.name == "Dockerfile")


def is_shell_script(path):
    if path.suffix == ".sh":
        return True
    if path.suffix or path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as script:
        return bool(SHELL_SHEBANG.match(script.readline(200)))


def shell_scripts():
    """Every shell script we write: *.sh, and the files without a suffix starting with a shell
    shebang."""
    return project_files(is_shell_script)


def _text(result):
    return "\n".join(part.rstrip() for part in (result.stdout, result.stderr) if part.strip())


def _run(c, args):
    """Run a command line (a list of arguments), output captured."""
    result = c.run(shlex.join(args), hide=True, warn=True)
    return Outcome(result.ok, _text(result))


def _container(c, target, service, command, mounts=()):
    """A command in a one-off container of a dev service (its image, with the source mounted as
    the stack mounts it), output captured. mounts: (host directory, path inside) pairs."""
    volumes = "".join(f"-v {shlex.quote(f'{host}:{inside}')} " for host, inside in mounts)
    return docker_compose(c, target, f"run --rm --no-deps -T {volumes}{service} {command}", hide=True, warn=True)


def hadolint(c, options):
    return _run(c, ["hadolint", "--config", str(ROOT / ".hadolint.yaml"), *dockerfiles()])


def shellcheck(c, options):
    return _run(c, ["shellcheck", *shell_scripts()])


def ruff_check(c, options):
    return _run(c, ["ruff", "check", "--output-format", "concise", "."])


def ruff_format(c, options):
    """The formatter's verdict only: `ruff format` (not run by lint) rewrites the files."""
    return _run(c, ["ruff", "format", "--check", "--output-format", "concise", "."])


def yamllint(c, options):
    return _run(c, ["yamllint", "--strict", "-c", str(ROOT / ".yamllint.yaml"), *YAML_FILES])


def compose_config(prod):
    """Compose's own validation of one stack's files: clean means no error and no warning."""

    def check(c, options):
        result = docker_compose(c, stack_target(c, prod), "config --quiet", hide=True, warn=True)
        # Compose validates quietly but still prints warnings (obsolete keys, unset variables).
        return Outcome(result.ok and not result.stderr.strip(), _text(result))

    return check


@contextmanager
def scratch_directory():
    """A directory the containers can write to, under .cache/ (bind-mountable wherever the
    project is), removed afterwards."""
    (ROOT / ".cache").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="lint-", dir=ROOT / ".cache"))
    try:
        # Written by the containers' users (root in the backend, node in the frontend).
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def generate_api_types(c, target, directory):
    """openapi-typescript's types for the backend's OpenAPI document, as it is now: the
    document from the dev backend image, the types from the dev frontend container. Returns
    (Outcome of the failed step or None, the types' path in directory)."""
    mounts = [(directory, "/lint")]
    steps = [
        ("backend", f"python -c {shlex.quote(OPENAPI_DUMP)} /lint/openapi.json"),
        ("frontend", "node_modules/.bin/openapi-typescript /lint/openapi.json --output /lint/schema.d.ts"),
    ]
    for service, command in steps:
        result = _container(c, target, service, command, mounts)
        if not result.ok:
            return Outcome(False, _text(result)), None
    return None, Path(directory) / "schema.d.ts"


def api_types(c, options):
    """The committed API types against what the backend's OpenAPI document generates; with
    fix_types, rewrites them when they differ."""
    committed = ROOT / API_TYPES
    with scratch_directory() as directory:
        failed, generated = generate_api_types(c, stack_target(c), directory)
        if failed:
            return failed
        fresh = generated.read_bytes()
    if committed.is_file() and committed.read_bytes() == fresh:
        return Outcome(True)
    if options.fix_types:
        committed.write_bytes(fresh)
        return Outcome(True, note=f"{API_TYPES} regenerated")
    return Outcome(
        False, f"{API_TYPES} does not match the backend's OpenAPI document: `inv lint --fix-types` regenerates it"
    )


def eslint(c, options):
    """The frontend's `npm run lint` (tsc, then ESLint) in the dev frontend container."""
    result = _container(c, stack_target(c), "frontend", "npm run --silent lint")
    return Outcome(result.ok, _text(result))


def alembic_check(c, options):
    """`alembic check`: the models and the migrations agree (a model change without its
    migration fails), on a throwaway PostgreSQL migrated to head (stackctl/migrations.py)."""
    result = migrations.alembic_check(c, stack_target(c))
    return Outcome(result.ok, _text(result))


LINTERS = [
    ("hadolint", hadolint),
    ("shellcheck", shellcheck),
    ("ruff check", ruff_check),
    ("ruff format", ruff_format),
    ("yamllint", yamllint),
    ("compose config (dev)", compose_config(prod=False)),
    ("compose config (prod)", compose_config(prod=True)),
    ("alembic check", alembic_check),
    ("api types", api_types),
    ("eslint", eslint),
]


def project_objects(c, target):
    """The volumes and networks of a target's Compose project, as ("volume"|"network", name)."""
    found = set()
    for kind in ("volume", "network"):
        result = c.run(
            f"docker {kind} ls --format '{{{{.Name}}}}' "
            f"--filter label=com.docker.compose.project={shlex.quote(target.project)}",
            hide=True,
            warn=True,
        )
        found |= {(kind, name) for name in result.stdout.split()} if result.ok else set()
    return found


@contextmanager
def leaving_no_objects(c, target):
    """`docker compose run` creates every volume and network of the project, the database's
    volume too (which `inv setup --regenerate-secrets` would then refuse to ignore): remove the
    ones that were not there before."""
    before = project_objects(c, target)
    try:
        yield
    finally:
        for kind, name in sorted(project_objects(c, target) - before):
            c.run(f"docker {kind} rm {shlex.quote(name)}", hide=True, warn=True)


def run_linters(c, options=Options(), out=print):
    """Run every linter, one status line each (a failure's output under it); returns the names
    of those that failed."""
    failed = []
    with c.cd(shlex.quote(str(ROOT))), leaving_no_objects(c, stack_target(c)):
        for name, linter in LINTERS:
            outcome = linter(c, options)
            out(f"{'ok  ' if outcome.ok else 'FAIL'}  {name}{f' ({outcome.note})' if outcome.note else ''}")
            if not outcome.ok:
                failed.append(name)
                if outcome.output:
                    out(outcome.output)
    return failed
