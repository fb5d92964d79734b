"""The prod stack on a Docker Swarm (`inv deploy`): the stack file, made at each deploy from
docker-compose.prod.yml with deploy/swarm/docker-compose.swarm.yml merged over it (so the two
cannot drift), and the deploy itself: checks first, then the migrations as a job, then the
rest, waiting until Swarm has converged or rolled back."""

import hashlib
import json
import shlex
from pathlib import Path

import yaml

from . import ROOT, Problem
from .stack import config as compose_config
from .wait import wait_until

# The compose file format `docker stack deploy` reads (Compose's own output is newer).
STACK_FILE_VERSION = "3.9"
# What Swarm does not take from a compose file, or takes under another name (translated below).
UNSUPPORTED = ("build", "depends_on", "restart", "expose", "security_opt", "mem_limit", "pids_limit", "tmpfs")
RESTART_CONDITIONS = {"no": "none", "always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
# An update or rollback Swarm has finished, and the ones that end a deploy as failed.
UPDATE_DONE = {"completed"}
UPDATE_FAILED = {"rollback_completed", "rollback_paused", "paused"}


def _pruned(value):
    """Without None values and empty dicts/lists (Compose's config output is full of them)."""
    if isinstance(value, dict):
        kept = {k: _pruned(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v not in ({}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _memory(limit):
    """Compose's mem_limit (bytes, as a string) as Swarm's resources.limits.memory."""
    size = int(limit)
    return f"{size // 2**20}M" if size % 2**20 == 0 else str(size)


def _tmpfs(entry):
    """A compose tmpfs entry (PATH[:OPTIONS]) as a Swarm tmpfs mount. A stack file takes only
    a size: no owner (uid=, gid=) and no mode (`docker stack deploy` drops it)."""
    path, _, options = entry.partition(":")
    mount = {"type": "tmpfs", "target": path}
    settings = dict(option.partition("=")[::2] for option in options.split(",") if option)
    if "size" in settings:
        mount["tmpfs"] = {"size": settings["size"]}
    return mount


def _port(port):
    """A published port in host mode (the ingress routing mesh needs IPVS, and Swarm cannot
    bind a host address: every address of each node that runs the task)."""
    return {"target": port["target"], "published": int(port["published"]), "protocol": port["protocol"], "mode": "host"}


def service(spec, image):
    """One service of Compose's config output as Swarm runs it, with `image` (pinned by digest)."""
    # A network joined without settings is `name: null`: as a list, so that pruning keeps it.
    networks = spec.get("networks") or {}
    if not any(networks.values()):
        networks = sorted(networks)
    spec = _pruned(spec)
    swarm = {k: v for k, v in spec.items() if k not in UNSUPPORTED}
    swarm["image"] = image
    deploy = swarm.setdefault("deploy", {})
    # Every service is addressed by its tasks' own addresses (its name resolves to all of them),
    # not by a virtual IP: those need the kernel's IPVS, which not every host has (ours lack it),
    # and the frontend balances over the backends and retries by itself.
    deploy.setdefault("endpoint_mode", "dnsrr")
    limits = deploy.setdefault("resources", {}).setdefault("limits", {})
    if "mem_limit" in spec:
        limits.setdefault("memory", _memory(spec["mem_limit"]))
    if "pids_limit" in spec:
        limits.setdefault("pids", int(spec["pids_limit"]))
    if "restart" in spec:
        deploy.setdefault("restart_policy", {}).setdefault("condition", RESTART_CONDITIONS[spec["restart"]])
    if spec.get("tmpfs"):
        swarm["volumes"] = [*swarm.get("volumes", []), *map(_tmpfs, spec["tmpfs"])]
    if spec.get("ports"):
        swarm["ports"] = [_port(port) for port in spec["ports"]]
    return {**_pruned(swarm), "networks": networks}


def secret_name(stack, name, path):
    """A Swarm secret cannot change: each value gets a name of its own (its digest in it), so a
    new password makes a new secret, and the services move to it in a rolling update."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return f"{stack}_{name}_{digest}"


def stack_file(config, stack, images):
    """The stack file for Compose's config output `config` (the prod file with the Swarm
    override merged), with each service's image replaced by images[its image]."""
    services = {name: service(spec, images[spec["image"]]) for name, spec in config["services"].items()}
    networks = {
        name: {"driver": "overlay", **({"internal": True} if spec.get("internal") else {})}
        for name, spec in (config.get("networks") or {}).items()
    }
    return {
        "version": STACK_FILE_VERSION,
        "services": services,
        "networks": networks,
        "volumes": {name: {} for name in config.get("volumes") or {}},
        "secrets": {
            name: {"name": secret_name(stack, name, spec["file"]), "file": spec["file"]}
            for name, spec in (config.get("secrets") or {}).items()
        },
    }


def jobs_first(config):
    """The services a deploy starts first: the jobs (the migrations) with whatever they depend
    on, so that no new backend task starts before the schema is migrated."""
    services = config["services"]
    first = {name for name, spec in services.items() if (spec.get("deploy") or {}).get("mode") == "replicated-job"}
    pending = list(first)
    while pending:
        for needed in services[pending.pop()].get("depends_on") or {}:
            if needed not in first:
                first.add(needed)
                pending.append(needed)
    return sorted(first)


# --- the swarm -------------------------------------------------------------------------------


def swarm_info(c):
    """`docker info`'s Swarm part: LocalNodeState, ControlAvailable, NodeID, ..."""
    result = c.run("docker info --format '{{json .Swarm}}'", hide=True, warn=True)
    if not result.ok:
        raise Problem(
            "the Docker engine does not answer: start it, or point DOCKER_HOST (or `docker context use`) at a "
            "swarm manager"
        )
    return json.loads(result.stdout or "{}")


def require_manager(c):
    """Problem unless the engine the CLI points at is a manager of an active swarm."""
    info = swarm_info(c)
    state = info.get("LocalNodeState") or "inactive"
    if state != "active":
        raise Problem(
            f"this Docker engine is not in a swarm (state: {state}): run `docker swarm init` on the node that "
            "will manage it, or point DOCKER_HOST (or `docker context use`) at a manager"
        )
    if not info.get("ControlAvailable"):
        raise Problem(
            "this Docker engine is a swarm worker, and only a manager can deploy: point DOCKER_HOST (or `docker "
            "context use`) at a manager (`docker node ls` there lists them)"
        )


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stack_services(c, stack):
    """{name without the stack prefix: `docker service inspect` document} of the stack's services."""
    listed = c.run(
        f"docker service ls --quiet --filter label=com.docker.stack.namespace={shlex.quote(stack)}",
        hide=True,
        warn=True,
    )
    ids = listed.stdout.split() if listed.ok else []
    if not ids:
        return {}
    found = json.loads(c.run(f"docker service inspect {' '.join(ids)}", hide=True).stdout)
    return {s["Spec"]["Name"].removeprefix(f"{stack}_"): s for s in found}


def tasks(c, service_id):
    """`docker inspect` documents of a service's tasks (the current and the recent ones)."""
    listed = c.run(f"docker service ps --quiet --no-trunc {shlex.quote(service_id)}", hide=True, warn=True)
    ids = listed.stdout.split() if listed.ok else []
    return json.loads(c.run(f"docker inspect {' '.join(ids)}", hide=True).stdout) if ids else []


def job_outcome(c, service):
    """'complete', 'failed: REASON' or None (still running) for a job service's current run."""
    iteration = ((service.get("JobStatus") or {}).get("JobIteration") or {}).get("Index")
    current = [t for t in tasks(c, service["ID"]) if (t.get("JobIteration") or {}).get("Index") == iteration]
    states = [t["Status"]["State"] for t in current]
    if states and all(state == "complete" for state in states):
        return "complete"
    for task in current:
        if task["Status"]["State"] in ("failed", "rejected", "orphaned"):
            status = task["Status"]
            return f"failed: {status.get('Err') or status.get('Message') or status['State']}"
    return None


class RolledBack(Exception):
    """Swarm rolled back the update a deploy made to a service."""

    def __init__(self, service, message):
        super().__init__(f"{service}: {message}")
        self.service, self.message = service, message


def converged(c, service, updated):
    """True when a long-running service runs what its spec says, healthy; RolledBack when
    Swarm rolled back the update this deploy made (`updated`: its spec changed)."""
    update = (service.get("UpdateStatus") or {}) if updated else {}
    if update.get("State") in UPDATE_FAILED:
        raise RolledBack(service["Spec"]["Name"], update.get("Message", ""))
    if update and update.get("State") not in UPDATE_DONE:
        return False
    running = [t for t in tasks(c, service["ID"]) if t["DesiredState"] == "running"]
    ready = [t for t in running if t["Status"]["State"] == "running"]
    desired = (service["Spec"]["Mode"].get("Replicated") or {}).get("Replicas")
    return bool(ready) and len(ready) == len(running) and (desired is None or len(ready) == desired)


# Each step's stack file: the last one deployed stays, for reading.
STACK_FILE = ROOT / "dist" / "swarm" / "stack.yml"


def _deploy(c, stack, definition):
    """`docker stack deploy` of a stack definition, written to STACK_FILE. Images are pinned
    already: the CLI does not ask the registry again (it may not reach it)."""
    STACK_FILE.parent.mkdir(parents=True, exist_ok=True)
    STACK_FILE.write_text(yaml.safe_dump(definition, sort_keys=False))
    result = c.run(
        f"docker stack deploy --resolve-image never --detach --quiet -c {shlex.quote(str(STACK_FILE))} "
        f"{shlex.quote(stack)}",
        hide=True,
        warn=True,
    )
    if not result.ok:
        raise Problem(f"docker stack deploy refused the stack: {(result.stderr or result.stdout).strip()[-300:]}")


def _wait(what, timeout, done):
    """Polls done() every second until it holds; Problem after timeout s."""
    if wait_until(done, timeout, interval=1.0) is None:
        raise Problem(f"{what} did not finish within {timeout:.0f} s: see `docker stack ps` and `docker service logs`")


def _job_outcome_when_done(c, stack, job, timeout):
    """Waits until the job's current run has finished; its outcome (job_outcome)."""
    outcome = []

    def finished():
        outcome[:] = [job_outcome(c, stack_services(c, stack)[job])]
        return outcome[0]

    _wait(f"the job {job}", timeout, finished)
    return outcome[0]


def deploy(c, target, images, timeout):
    """Deploy the target's stack with `images` ({image in the compose file: pinned reference})
    in three steps, each waited for: what the jobs need (the database), then the jobs (the
    migrations), then every service. Returns the stack file's path. Problem when a job failed,
    or Swarm rolled an update back; what a step did not reach is left as it was."""
    stack = target.project
    config = compose_config(c, target)
    definition = stack_file(config, stack, images)
    services = definition["services"]
    jobs = [s for s, spec in services.items() if spec["deploy"].get("mode") == "replicated-job"]
    first = jobs_first(config)
    needed = [s for s in first if s not in jobs]
    long_running = [s for s in services if s not in jobs]
    before = {name: found["Version"]["Index"] for name, found in stack_services(c, stack).items()}

    def all_converged(names):
        now = stack_services(c, stack)
        return all(converged(c, now[s], updated=now[s]["Version"]["Index"] != before.get(s)) for s in names)

    try:
        if needed:
            _deploy(c, stack, {**definition, "services": {s: services[s] for s in needed}})
            _wait(f"starting {', '.join(needed)}", timeout, lambda: all_converged(needed))
        for job in jobs:
            _deploy(c, stack, {**definition, "services": {s: services[s] for s in first}})
            outcome = _job_outcome_when_done(c, stack, job, timeout)
            if outcome != "complete":
                raise Problem(f"{job} {outcome}; nothing else was updated: see `docker service logs {stack}_{job}`")
        _deploy(c, stack, definition)
        _wait("the deploy", timeout, lambda: all_converged(long_running))
    except RolledBack as rolled:
        raise Problem(
            f"{rolled.service}'s new tasks failed ({rolled.message or 'unhealthy'}), and Swarm rolled it back "
            f"to the version it ran before: see `docker service ps {rolled.service}`"
        ) from None
    remove_stale_secrets(c, stack, {spec["name"] for spec in definition["secrets"].values()})
    return STACK_FILE


def remove_stale_secrets(c, stack, current):
    """Secrets of earlier values no service uses any more (Swarm refuses to remove one in use)."""
    listed = c.run(
        f"docker secret ls --format '{{{{json .}}}}' --filter label=com.docker.stack.namespace={shlex.quote(stack)}",
        hide=True,
        warn=True,
    )
    stale = [s["Name"] for s in _json_lines(listed.stdout if listed.ok else "") if s["Name"] not in current]
    if stale:
        c.run(f"docker secret rm {shlex.join(stale)}", hide=True, warn=True)


def remove(c, stack, timeout):
    """`docker stack rm`, waiting until its services and networks are gone. Volumes (the
    database) stay on their nodes."""
    result = c.run(f"docker stack rm {shlex.quote(stack)}", hide=True, warn=True)
    if not result.ok:
        raise Problem(f"docker stack rm failed: {(result.stderr or result.stdout).strip()[-300:]}")

    def gone():
        networks = c.run(
            f"docker network ls --quiet --filter label=com.docker.stack.namespace={shlex.quote(stack)}", hide=True
        )
        return not stack_services(c, stack) and not networks.stdout.strip()

    _wait(f"removing {stack}", timeout, gone)
