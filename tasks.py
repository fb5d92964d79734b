"""Tasks for developing, testing and shipping the stack. `inv --list` shows them all;
the logic behind them lives in the stackctl package."""

import os
import shlex
import sys
import time

from invoke import task

# A task named like a stackctl module (or a builtin) is defined as NAME_ with
# @task(name="NAME"), so that the module keeps its own name here.
from stackctl import (
    ROOT,
    Problem,
    audit,
    backup,
    bases,
    bench,
    budgets,
    database,
    doctor,
    images,
    k8s,
    lint,
    migrations,
    provision,
    releases,
    sbom,
    scan,
    secrets,
    smoke,
    stack,
    swarm,
)
from stackctl.compose import docker_compose, stack_target
from stackctl.confirm import confirm
from stackctl.engine import inspect_image, require_engine

SERVICE_HELP = "Only this service; repeatable. Default: all"
PROD_HELP = "Act on the production stack (docker-compose.prod.yml)"


@task(
    help={
        "engine": "Also provision a Docker engine and Compose v2 when missing (Debian/Ubuntu, root)",
        "test_tools": "Also install what the tests drive: chromium and wrk (Debian/Ubuntu, root), "
        "and the registry and dind tool images",
        "force": "Rewrite .env from .env.example, keeping every value it has (secrets included)",
        "regenerate_secrets": "Give the secrets new values; refused while a database volume uses them",
    }
)
def setup(c, engine=False, test_tools=False, force=False, regenerate_secrets=False):
    """Prepare this machine: .env with fresh secrets, engine check, base images."""
    if engine:
        provision.engine(c)
    if test_tools:
        provision.test_tools(c)
    env_file = c.config.stack.env_file
    outcome, keys = secrets.write_env(c, rewrite=force, regenerate=regenerate_secrets)
    generated = ", ".join(k for k in keys if k in c.config.stack.secret_vars) or "none"
    print(
        {
            "created": f"setup: created {env_file} (secrets generated: {generated})",
            "completed": f"setup: added {', '.join(keys)} to {env_file}",
            "rewritten": f"setup: rewrote {env_file} from {c.config.stack.env_example} "
            f"(new values: {', '.join(keys) or 'none'}); the previous one is {env_file}.bak",
            "unchanged": f"setup: {env_file} is complete; left as it is",
        }[outcome]
    )
    written = secrets.write_files(c)
    print(f"setup: the prod stack's secrets are in {written[0].parent.name}/ ({', '.join(p.name for p in written)})")
    engine_version, compose_version = require_engine(c)
    print(f"setup: Docker Engine {engine_version}, Compose {compose_version}")
    overrides = bases.ensure_for_stack(c, ROOT / env_file)
    for variable, image in overrides.items():
        print(f"setup: {variable}={image} written to {env_file}")
    if test_tools:  # the swarm test's nodes and registry: there before the tests, like the bases
        for name in c.config.bases.tools:
            print(f"setup: tool image {bases.tool_image(c, name)} ready")
    print("setup: done; `inv doctor` checks everything")


@task(
    name="bases",
    iterable=["base"],
    help={
        "base": "Build only this base (python, node, postgres, nginx, valkey) or tool image (registry, "
        "dockerd); repeatable. Default: every base, no tool image",
    },
)
def bases_(c, base=None):
    """Build the local base images from Debian packages (no registry needed)."""
    selected = bases.select(c, base or [])
    require_engine(c)
    bases.provide(c, selected)


@task(name="doctor")
def doctor_(c):
    """Check engine, Compose, .env, ports, base images and disk; one line per problem."""
    findings = doctor.run_checks(c)
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if not f.ok]
    if failed:
        raise Problem(f"doctor: {len(failed)} problem(s) found; fix the FAIL lines above")
    print("doctor: all checks passed")


def _ready(c, prod=False):
    """What every stack task needs: .env and a reachable engine with Compose v2. Returns the
    stack the task acts on, chosen here once from its --prod flag."""
    stack.require_env(c)
    require_engine(c)
    if prod:
        secrets.write_files(c)
    return stack_target(c, prod)


@task(
    iterable=["service"],
    help={
        "build": "Rebuild images before starting (default: build only what is missing)",
        "service": SERVICE_HELP,
        "prod": PROD_HELP,
        "timeout": "Seconds to wait for every service to be healthy (default: stack.up_timeout)",
    },
)
def up(c, build=False, service=None, prod=False, timeout=None):
    """Start the stack and wait until every service is healthy; prints the URLs."""
    target = _ready(c, prod)
    services = stack.check_services(c, target, service or [])
    busy = [f for f in doctor.check_ports(c, engine_up=True, target=target) if not f.ok]
    if busy:
        raise Problem(busy[0].message)
    started = time.monotonic()
    stack.up(c, target, services, build=build, timeout=float(timeout or c.config.stack.up_timeout))
    print(f"up: {', '.join(services)} healthy after {time.monotonic() - started:.1f} s")
    for name, address in stack.published_urls(c, target).items():
        scheme = "" if name == "postgres" else "http://"
        print(f"  {name:<10} {scheme}{address}")


@task(help={"prod": PROD_HELP})
def down(c, prod=False):
    """Stop and remove the stack's containers and networks; named (data) volumes are kept."""
    stack.down(c, _ready(c, prod))


@task(help={"yes": "Do not ask for confirmation (required without a terminal)", "prod": PROD_HELP})
def reset(c, yes=False, prod=False):
    """Remove the stack with its volumes: the database is lost."""
    target = _ready(c, prod)
    confirm(
        yes,
        f"Delete every container and volume of '{target.project}', database included?",
        "reset deletes the database volume",
    )
    stack.compose(c, target, "down --volumes --remove-orphans")


@task(help={"prod": PROD_HELP})
def ps(c, prod=False):
    """List the stack's containers with their state and health."""
    stack.compose(c, _ready(c, prod), "ps --all")


@task(
    iterable=["service"],
    help={
        "service": SERVICE_HELP,
        "follow": "Keep printing new log lines",
        "tail": "Lines from the end of each log (default: all)",
        "prod": PROD_HELP,
    },
)
def logs(c, service=None, follow=False, tail=None, prod=False):
    """Show the services' logs."""
    target = _ready(c, prod)
    services = stack.check_services(c, target, service or []) if service else []
    options = ("--follow " if follow else "") + (f"--tail {int(tail)} " if tail else "")
    stack.compose(c, target, f"logs {options}{' '.join(services)}")


def _in_service(c, target, service, command, user=None):
    """Run a shell command in a service: exec when it runs, else in a one-off container."""
    stack.check_services(c, target, [service])
    tty = "" if sys.stdin.isatty() else "-T "
    as_user = f"--user {user} " if user else ""
    if stack.running(c, target, service):
        verb = f"exec {tty}{as_user}{service}"
    else:
        verb = f"run --rm --no-deps {tty}{as_user}{service}"
    return docker_compose(c, target, f"{verb} {command}", pty=sys.stdin.isatty(), warn=True)


def _finish(result):
    if not result.ok:
        raise Problem(f"command exited with status {result.exited}", code=result.exited)


@task(name="exec", help={"service": "Service to run the command in", "prod": PROD_HELP})
def exec_(c, service, prod=False):
    """Run a command in a service: inv exec SERVICE -- COMMAND..."""
    # Invoke's c.remainder joins the words after `--` and loses their quoting; argv keeps it.
    command = shlex.join(sys.argv[sys.argv.index("--") + 1 :]) if "--" in sys.argv else c.remainder
    if not command.strip():
        raise Problem("no command given: inv exec SERVICE -- COMMAND...")
    _finish(_in_service(c, _ready(c, prod), service, command))


@task(help={"service": "Service to open the shell in (default: backend)", "prod": PROD_HELP})
def shell(c, service="backend", prod=False):
    """Open a shell in a service's container."""
    _finish(_in_service(c, _ready(c, prod), service, "sh"))


@task(help={"prod": PROD_HELP})
def psql(c, prod=False):
    """Open psql on the stack's database."""
    target = _ready(c, prod)
    if not stack.running(c, target, "postgres"):
        raise Problem("postgres is not running: start it with `inv up`")
    _finish(_in_service(c, target, "postgres", 'sh -c \'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB"\''))


def _alembic(c, target, arguments, user=None):
    """Run alembic in the stack's running backend (it needs the database)."""
    if not stack.running(c, target, "backend"):
        raise Problem("the backend is not running: start the stack with `inv up`, then retry")
    _finish(_in_service(c, target, "backend", f"alembic {arguments}", user=user))


@task(
    help={
        "revision": "Target revision (default: head)",
        "prod": "Run the production stack's one-shot migrate service instead",
    }
)
def migrate(c, revision="head", prod=False):
    """Apply database migrations (alembic upgrade); refuses a database at a revision the code does not know."""
    target = _ready(c, prod)
    # A stack with a one-shot migrate service (prod) migrates in it; the dev stack in its backend.
    one_shot = "migrate" in stack.service_names(c, target)
    if one_shot:
        stack.up(c, target, ["postgres"])
    elif not stack.running(c, target, "backend"):
        raise Problem("the backend is not running: start the stack with `inv up`, then retry")
    migrations.check_database(c, target)
    _finish(
        docker_compose(c, target, migrations.upgrade_command(c, target, revision, in_running_backend=True), warn=True)
    )


@task(
    help={
        "prod": PROD_HELP,
        "output": "Write the dump to this path inside the project (default: backups/PROJECT-TIMESTAMP.dump)",
    }
)
def db_backup(c, prod=False, output=None):
    """Dump the stack's database (pg_dump) into backups/; checked by restoring it into a scratch database."""
    target = _ready(c, prod)
    path, found = backup.backup(c, target, output)
    size = path.stat().st_size / 1e6
    print(f"db-backup: {backup.shown(path)} ({size:.2f} MB), restores cleanly: {database.describe(found)}")


@task(
    help={
        "file": "The dump to restore: a file `inv db-backup` wrote",
        "yes": "Do not ask for confirmation (required without a terminal)",
        "prod": PROD_HELP,
    }
)
def db_restore(c, file, yes=False, prod=False):
    """Replace the stack's database with a dump once it restored into a scratch one; the backend stops meanwhile."""
    target = _ready(c, prod)

    def ask():
        confirm(
            yes,
            f"Replace the database of '{target.project}' with {file}? Its current data is lost.",
            f"restore replaces the database of '{target.project}' with {file}",
        )

    found, now = backup.restore(c, target, file, ask)
    print(f"db-restore: {file} restored into '{target.project}' and verified: {database.describe(now)}")


@task(
    help={
        "revision": "Target revision (default: -1, one step back)",
        "yes": "Do not ask for confirmation (required without a terminal)",
    }
)
def downgrade(c, revision="-1", yes=False):
    """Revert database migrations (alembic downgrade): drops what they created, data included."""
    target = _ready(c)
    confirm(
        yes,
        f"Downgrade the database to {revision}? Tables and columns the reverted migrations "
        "created are dropped with their data.",
        f"downgrade to {revision} drops the tables and columns of the reverted migrations, with their data",
    )
    _alembic(c, target, f"downgrade {shlex.quote(revision)}")


@task(help={"message": "What the migration does (becomes part of its file name)"})
def makemigration(c, message):
    """Autogenerate a migration from the models into backend/alembic/versions/."""
    # As the host user, so the new file belongs to whoever runs the task.
    _alembic(c, _ready(c), f"revision --autogenerate -m {shlex.quote(message)}", user=f"{os.getuid()}:{os.getgid()}")


@task(
    iterable=["service"],
    help={
        "prod": "Build the production images and enforce the size and build-time budgets",
        "no_cache": "Build without the build cache (a cold build; base images are kept)",
        "service": "Only this service's image; repeatable. Default: every image",
    },
)
def build(c, prod=False, no_cache=False, service=None):
    """Build the images; with --prod, time and measure them against their budgets, and write their SBOMs."""
    target = _ready(c, prod)
    wanted = stack.check_services(c, target, service or [])
    built = {s: image for s, image in images.built_images(c, target).items() if s in wanted}
    if not prod:
        stack.compose(c, target, f"build {'--no-cache ' if no_cache else ''}{' '.join(built)}")
        return
    # A cold build is timed, not judged: cold build time is the bench's figure (cold_build_total_s).
    limit = None if no_cache else c.config.build.warm_build_s
    measures = []
    for name, image in built.items():
        seconds = images.build_one(c, target, name, no_cache=no_cache)
        measure = images.measure(c, name, image, build_s=seconds)
        measure.budget_build_s = limit
        measures.append(budgets.judge(measure))
    print(budgets.table(measures))
    report = budgets.write_report(c.config.build.report, measures, no_cache=no_cache)
    shipped = {s: image for s, image in images.stack_images(c, target).items() if s in wanted}
    for path in sbom.write_all(c, shipped):
        print(f"build: SBOM {sbom.summary(path)}")
    breaches = [m.service for m in measures if m.breaches]
    if breaches:
        raise Problem(f"build: budget breached by {', '.join(breaches)}; see {report}")
    print(f"build: every image within budget; report in {report}")


@task(
    name="images",
    help={"save": "Directory to write the production images to, one tarball each (created when missing)"},
)
def images_(c, save):
    """Export the production images as tarballs, for `minikube image load` or `kind load image-archive`."""
    target = _ready(c, prod=True)
    for image, path in images.save(c, target, save):
        print(f"images: {path} {path.stat().st_size / 1e6:.1f} MB ({image})")
    print("images: load each into the cluster: minikube image load FILE, or kind load image-archive FILE")


@task(
    name="k8s",
    help={
        "tag": "Image tag the manifests deploy (an immutable one, e.g. the git commit; not latest)",
        "registry": "Registry prefix for our images, e.g. registry.example.com:5000/team (default: none)",
        "output": "Directory for the rendered todostack.yaml (default: k8s.output, dist/k8s)",
    },
)
def k8s_(c, tag, registry="", output=None):
    """Render deploy/k8s for an image tag and validate it offline: Kubernetes schemas, then checkov's policies."""
    k8s.run(c, tag, registry=registry, output=output)


@task(
    help={"rm": "Remove the registry's container instead; the volume with the pushed images stays"},
)
def registry(c, rm=False):
    """Run a local image registry (swarm.registry_publish) for `inv push` and the swarm's nodes."""
    require_engine(c)
    config = c.config.swarm
    if rm:
        removed = releases.remove_registry(c, config.registry_container)
        print(
            f"registry: {config.registry_container} {'removed' if removed else 'was not there'}; "
            f"its images stay in volume {config.registry_volume} (docker volume rm it to delete them)"
        )
        return
    image = bases.tool_image(c, "registry")
    outcome = releases.run_registry(
        c, config.registry_container, image, config.registry_publish, config.registry_volume
    )
    print(f"registry: {config.registry_container} ({image}) {outcome}, on {config.registry_publish}")


RELEASE_HELP = "Image tag of the release (default: the git commit, refused with uncommitted changes)"
REGISTRY_HELP = "Registry the swarm's nodes pull from, HOST:PORT[/PATH] (default: swarm.registry)"


@task(help={"tag": RELEASE_HELP, "registry": REGISTRY_HELP})
def push(c, tag=None, registry=None):
    """Tag the production images (and the bases they run on) by release and push them to the registry."""
    target = _ready(c, prod=True)
    release = releases.release_tag(c, tag)
    address = registry or c.config.swarm.registry
    for image, ref in releases.push(c, target, address, release).items():
        print(f"push: {image} -> {ref}")
    print(f"push: release {release} is in {address}; deploy it with `inv deploy --tag {release}`")


@task(
    help={
        "tag": RELEASE_HELP,
        "registry": REGISTRY_HELP,
        "rm": "Remove the stack from the swarm instead (its database volume stays on its node)",
    }
)
def deploy(c, tag=None, registry=None, rm=False):
    """Deploy the production stack to the swarm the Docker CLI points at: migrations first, then a rolling update."""
    _ready(c, prod=True)  # .env, the engine, and the secret files the stack's secrets are made from
    target = stack_target(c, name="swarm")
    swarm.require_manager(c)
    if rm:
        swarm.remove(c, target.project, timeout=c.config.swarm.deploy_timeout)
        print(f"deploy: stack {target.project} removed; its database volume stays on its node")
        return
    release = releases.release_tag(c, tag)
    address = registry or c.config.swarm.registry
    pinned = {
        image: releases.pinned(c, releases.reference(address, image, release))
        for image in images.stack_images(c, target).values()
    }
    started = time.monotonic()
    path = swarm.deploy(c, target, pinned, timeout=c.config.swarm.deploy_timeout)
    print(
        f"deploy: {target.project} runs release {release} from {address}, converged in "
        f"{time.monotonic() - started:.0f} s (stack file: {path.relative_to(ROOT)})"
    )


@task(help={"prod": "Production images (default: development images)"})
def sizes(c, prod=False):
    """Show the size of each built image, and how much it adds over its base."""
    target = _ready(c, prod)
    measures = [
        budgets.judge(images.measure(c, name, image))
        for name, image in images.built_images(c, target).items()
        if inspect_image(c, image)
    ]
    if not measures:
        raise Problem(f"no {'production ' if prod else ''}images built yet: run `inv build{' --prod' if prod else ''}`")
    print(budgets.table(measures))


@task(name="lint", help={"fix_types": f"Regenerate {lint.API_TYPES} from the backend's OpenAPI document"})
def lint_(c, fix_types=False):
    """Lint everything: Dockerfiles, shell, Python, YAML, compose files, the frontend, its API types."""
    _ready(c)
    failed = lint.run_linters(c, lint.Options(fix_types=fix_types))
    if failed:
        raise Problem(f"lint: {', '.join(failed)} failed; see above")
    print("lint: all clean")


def _verdict(subject, found):
    """One line for what was scanned, its findings under it; returns them."""
    print(f"{'ok  ' if not found else 'FAIL'}  {subject}")
    for finding in found:
        print(f"      {finding.check}: {finding.message}")
    return found


@task(name="scan")
def scan_(c):
    """Check the production images, the prod stack's public origin headers and its containers.

    Images: non-root user, HEALTHCHECK, no .env, keys or secrets. Headers, when the stack is up:
    CSP, X-Frame-Options and the others. Containers, stopped ones too: non-root, no secret value
    in `docker inspect`."""
    _ready(c)
    secret_values = scan.configured_secrets(c, stack.effective_env(c))
    prod = stack_target(c, prod=True)
    findings = []
    for image in images.built_images(c, prod).values():
        findings += _verdict(image, scan.scan_image(c, image, secret_values))
    headers_checked = True
    for subject, found in scan.origin_headers(smoke.default_base_url(c, prod)):
        if found is None:
            print(f"skip  {subject}")
            headers_checked = False
        else:
            findings += _verdict(subject, found)
    # Stopped ones too: the one-shot migrate's inspect output keeps whatever it was given.
    containers = stack.containers(c, prod)
    for ct in containers:
        findings += _verdict(f"container {ct['Name']}", scan.scan_containers(c, [ct["ID"]], secret_values))
    if not containers:
        print(f"scan: no container of {prod.project}: `inv up --prod` first to check them too")
    if findings:
        raise Problem(f"scan: {len(findings)} finding(s); see above")
    clean = ["every image clean"]
    clean += ["security headers in place"] if headers_checked else []
    clean += ["every container clean"] if containers else []
    print(f"scan: {'; '.join(clean)}")


@task(name="audit")
def audit_(c):
    """Check the locked Python and npm dependencies for known vulnerabilities (pip-audit, npm audit).
    Exits 1 on a finding at or above audit.fail_on, 3 when no advisory service answered."""
    _ready(c)
    audit.run(c)


@task(
    name="bench",
    iterable=["only"],
    help={
        "quick": "Fewer runs and shorter loads (bench.quick_runs, bench.load.quick_duration_s), to fit in CI",
        "json": "Print the JSON report instead of the table",
        "check": "Exit 1 when a median breaks its budget in invoke.yaml (bench.budgets), naming each breach",
        "only": "Only this section: build, rebuild, sizes, load, up, reload; repeatable. Default: all",
    },
)
def bench_(c, quick=False, json=False, check=False, only=None):
    """Measure builds, inv up, reloads and API load in an isolated copy; reports/bench.json."""
    sections = bench.select_sections(only or [])
    _ready(c)
    report = bench.run(c, quick=quick, sections=sections, say=lambda line: print(line, file=sys.stderr))
    print(budgets.as_json(report) if json else budgets.bench_table(report))
    if check and report["breaches"]:
        raise Problem(
            f"bench: {len(report['breaches'])} budget(s) breached: {'; '.join(report['breaches'])}; "
            f"see {c.config.bench.report}"
        )


@task(
    name="smoke",
    help={
        "prod": "Check the production stack (default URL: its PROD_PORT) instead of the dev stack",
        "base_url": "Origin to check, e.g. http://127.0.0.1:8080 (default: the stack's published frontend)",
        "origin": "Origin the CORS check expects allowed (default: the first entry of CORS_ORIGINS)",
        "json": "Print one JSON document (checks and summary) instead of lines",
        "timeout": "Seconds to wait for the stack to be ready (/health with the database connected); default 60",
    },
)
def smoke_(c, prod=False, base_url=None, origin=None, json=False, timeout=None):
    """Check a running stack from outside through its public origin: page, assets, health, API, CORS, no /metrics."""
    smoke.run(c, stack_target(c, prod), base_url=base_url, origin=origin, as_json=json, timeout=timeout)


@task(help={"unit": "Only the unit tests (seconds, no Docker needed)"})
def test(c, unit=False):
    """Run every test: unit tests, then integration tests against the real engine."""
    # The 20 slowest steps close the report, so every run (and CI's log) shows where the time goes.
    tests = str(ROOT / "tests" / ("unit" if unit else ""))
    c.run(shlex.join([sys.executable, "-m", "pytest", "--durations=20", tests]), pty=False)
