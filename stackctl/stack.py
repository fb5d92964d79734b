"""Running the stack: its services, their health, and the checks before `up`."""

import json
import os

from . import ROOT, Problem
from .compose import docker_compose
from .envfile import read_env


def require_env(c):
    env_file = c.config.stack.env_file
    if not (ROOT / env_file).is_file():
        raise Problem(f"{env_file} not found: run `inv setup` to create it")


def effective_env(c):
    """Variables as Compose interpolates them: the shell's environment over .env."""
    return {**read_env(ROOT / c.config.stack.env_file), **os.environ}


def _compose_error(result):
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else "docker compose failed"


def service_names(c, target):
    """The services the compose file defines (Compose's own parse, so config errors surface
    here), sorted: Compose lists them in an order of their dependencies that varies from run
    to run between services on the same level (postgres and redis), and what the tasks print
    should not."""
    result = docker_compose(c, target, "config --services", hide=True, warn=True)
    if not result.ok:
        raise Problem(_compose_error(result))
    return sorted(result.stdout.split())


def config(c, target):
    """Compose's resolved configuration of the target (`config --format json`: interpolated
    from .env, paths absolute), as a dict."""
    result = docker_compose(c, target, "config --format json", hide=True, warn=True)
    if not result.ok:
        raise Problem(_compose_error(result))
    return json.loads(result.stdout)


def check_services(c, target, requested):
    """The requested services (all when none are), refusing names the compose file lacks."""
    known = service_names(c, target)
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise Problem(f"unknown service {', '.join(unknown)}: choose from {', '.join(known)}")
    return list(requested) or known


def containers(c, target):
    """`docker compose ps --all --format json`, as a list of dicts (Compose prints either
    one JSON document per line or one array, depending on its version)."""
    result = docker_compose(c, target, "ps --all --format json", hide=True, warn=True)
    if not result.ok:
        raise Problem(_compose_error(result))
    text = result.stdout.strip()
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def running(c, target, service):
    return any(ct["Service"] == service and ct["State"] == "running" for ct in containers(c, target))


def status(container):
    """'healthy', 'starting', 'unhealthy', 'running' (no health check), 'completed' (a one-shot
    job such as migrate that exited 0) or the stopped state."""
    if container["State"] == "exited" and container.get("ExitCode") == 0:
        return "completed"
    if container["State"] != "running":
        return f"{container['State']} (exit {container.get('ExitCode', '?')})"
    return container.get("Health") or "running"


DONE = ("healthy", "running", "completed")


def up(c, target, services, build=False, timeout=180):
    """`docker compose up --wait`: start the services and wait until each is healthy (running,
    without a health check; exited 0, for a one-shot job such as migrate). On failure, prints
    the last log lines of every service that is not, and raises a Problem naming them."""
    command = f"up --detach --wait --wait-timeout {int(timeout)} {'--build ' if build else ''}{' '.join(services)}"
    if docker_compose(c, target, command, warn=True).ok:
        return
    states = {ct["Service"]: status(ct) for ct in containers(c, target) if ct["Service"] in services}
    pending = {s: states.get(s, "missing") for s in services if states.get(s) not in DONE}
    for service in pending:
        print(f"--- last log lines of {service} ---")
        docker_compose(c, target, f"logs --no-color --tail 25 {service}", warn=True)
    summary = ", ".join(f"{s} ({state})" for s, state in pending.items()) or "see the output above"
    raise Problem(
        f"not healthy within {int(timeout)} s: {summary}; see the log lines above (`inv logs -s SERVICE` for more)"
    )


def published_urls(c, target):
    """{service: 'host:port'} for each published port of the running containers."""
    urls = {}
    for ct in containers(c, target):
        for publisher in ct.get("Publishers") or []:
            if publisher.get("PublishedPort"):
                urls.setdefault(ct["Service"], f"{publisher['URL']}:{publisher['PublishedPort']}")
    return urls


# `docker compose down` keeps every volume it does not name with --volumes, anonymous ones
# included, and the next `up` creates fresh ones: each cycle of the dev stack would leave the
# frontend's anonymous node_modules volume behind (about 100 MB). `rm --volumes` removes the
# anonymous volumes of the containers it removes and never a named one, so `down` first
# removes the containers that way; `up` then seeds a new node_modules volume from the image,
# in step with it after a rebuild.
DOWN_COMMANDS = ("rm --stop --force --volumes", "down --remove-orphans")


def compose(c, target, command):
    """docker compose with its output on screen; a failure ends the task in one line."""
    result = docker_compose(c, target, command, warn=True)
    if not result.ok:
        raise Problem(f"docker compose {command.split()[0]} failed (exit {result.exited}); see its output above")


def down(c, target):
    """Stop and remove the stack's containers, their anonymous volumes and the networks;
    named volumes (the database) are kept."""
    for command in DOWN_COMMANDS:
        compose(c, target, command)
