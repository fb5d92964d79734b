"""Migration gates: which Alembic revisions the code knows (backend/alembic/versions, read
without running anything), whether a database is at one of them, upgrading a stack's
database, and `alembic check` (the models and the migrations agree) on a throwaway PostgreSQL."""

import ast
import secrets
import shlex
from contextlib import contextmanager

from . import ROOT, Problem
from .compose import docker_compose
from .database import contents
from .engine import inspect_image
from .images import built_images
from .stack import effective_env, service_names
from .wait import wait_until

VERSIONS_DIR = ROOT / "backend" / "alembic" / "versions"


def _assigned(tree, name):
    """The literal value a module assigns to `name` (plain or annotated), else None."""
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return ast.literal_eval(node.value)
    return None


def code_revisions(versions_dir=VERSIONS_DIR):
    """{revision: (the revisions it follows)} of every migration file."""
    revisions = {}
    for path in sorted(versions_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        revision = _assigned(tree, "revision")
        if revision:
            down = _assigned(tree, "down_revision")
            revisions[revision] = tuple(down) if isinstance(down, (list, tuple)) else (down,) if down else ()
    return revisions


def code_head(revisions):
    """The one revision no other follows; a Problem for none or several (a merge left undone)."""
    followed = {down for downs in revisions.values() for down in downs}
    heads = sorted(set(revisions) - followed)
    if len(heads) != 1:
        raise Problem(
            f"backend/alembic/versions has {len(heads)} heads ({', '.join(heads) or 'none'}): "
            "there must be exactly one (`alembic merge` joins several)"
        )
    return heads[0]


def refuse_unknown(task, subject, revision, revisions, advice):
    """A Problem when `subject` (a database, a dump) is at a revision the code does not know: a
    newer deploy migrated it. Nothing this code runs can read or revert that schema."""
    if revision is not None and revision not in revisions:
        raise Problem(
            f"{task}: {subject} is at revision {revision}, which this code does not know (its head is "
            f"{code_head(revisions)}): a newer deploy migrated it. {advice}"
        )


def check_database(c, target, task="migrate"):
    """Refuse a target's database at a revision the code does not know (a rolled-back deploy)."""
    revisions = code_revisions()
    refuse_unknown(
        task,
        f"the database of '{target.project}'",
        contents(c, target)["revision"],
        revisions,
        "Deploy that code again, or downgrade with it (`inv downgrade --revision "
        f"{code_head(revisions)}` in its checkout), or restore a backup made before it (`inv db-restore FILE`)",
    )


def upgrade_command(c, target, revision="head", in_running_backend=False):
    """The `docker compose` command that upgrades a target's database: in its one-shot migrate
    service where it has one (prod: as the owner, with the app role's grants), else in the
    running backend, or a one-off backend container (the dev stack)."""
    alembic = f"alembic upgrade {shlex.quote(revision)}"
    if "migrate" in service_names(c, target):
        return f"run --rm migrate {alembic}"
    if in_running_backend:
        return f"exec -T backend {alembic}"
    return f"run --rm --no-deps -T backend {alembic}"


# `alembic check` runs in the dev backend image with the working tree's backend mounted (the
# models and migrations as they are now), against a PostgreSQL of its own: a container of the
# stack's postgres image with its data on a tmpfs and no network, whose network namespace the
# check's container shares (127.0.0.1). Both are removed afterwards: nothing is left behind.
CHECK_USER = "alembic_check"
ALEMBIC_CHECK = "alembic upgrade head && alembic check"


@contextmanager
def scratch_server(c, name):
    """A throwaway PostgreSQL container `name` (the stack's postgres image), ready; removed after."""
    image = effective_env(c).get("POSTGRES_IMAGE") or "postgres:17"
    start = (
        f"docker run --detach --rm --name {name} --network none --tmpfs /var/lib/postgresql/data "
        f"-e POSTGRES_USER={CHECK_USER} -e POSTGRES_PASSWORD={CHECK_USER} -e POSTGRES_DB={CHECK_USER} "
        f"{shlex.quote(image)}"
    )
    started = c.run(start, hide=True, warn=True)
    try:
        if not started.ok:
            raise Problem(f"cannot start a PostgreSQL of {image}: {(started.stderr.strip().splitlines() or ['?'])[-1]}")
        # The image's first start runs a temporary server on the socket only; TCP answers once it is done.
        ready = f"docker exec {name} pg_isready -q -h 127.0.0.1 -U {CHECK_USER}"
        if wait_until(lambda: c.run(ready, hide=True, warn=True).ok, timeout=60, interval=0.25) is None:
            raise Problem(f"the throwaway PostgreSQL ({image}) did not get ready within 60 s")
        yield f"postgresql://{CHECK_USER}:{CHECK_USER}@127.0.0.1:5432/{CHECK_USER}"
    finally:
        c.run(f"docker rm --force --volumes {name}", hide=True, warn=True)


def alembic_check(c, target, backend=ROOT / "backend"):
    """`alembic upgrade head && alembic check` on a throwaway database, for the backend source
    in `backend`; the Result. Builds the dev backend image first when it is missing."""
    image = built_images(c, target)["backend"]
    if not inspect_image(c, image):
        docker_compose(c, target, "build backend", hide=True, warn=True)
    name = f"{target.project}-alembic-check-{secrets.token_hex(3)}"
    with scratch_server(c, name) as url:
        return c.run(
            f"docker run --rm --network container:{name} -v {shlex.quote(str(backend))}:/app:ro "
            f"-e DATABASE_URL={url} -e PYTHONDONTWRITEBYTECODE=1 {shlex.quote(image)} "
            f"sh -c {shlex.quote(ALEMBIC_CHECK)}",
            hide=True,
            warn=True,
        )
