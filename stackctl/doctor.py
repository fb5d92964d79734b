"""`inv doctor`: every check that can explain why the stack will not come up."""

import json
import os
import shutil
from dataclasses import dataclass
from urllib.parse import urlparse

from . import ROOT, Problem, bases, ports
from .compose import stack_target
from .engine import compose_version, inspect_image, server_version
from .envfile import missing_keys, read_env
from .stack import effective_env

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass
class Finding:
    check: str
    ok: bool
    message: str

    def line(self):
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.check:<8} {self.message}"


def check_engine(c):
    findings = []
    for name, probe in (("engine", server_version), ("compose", compose_version)):
        try:
            findings.append(Finding(name, True, probe(c)))
        except Problem as problem:
            findings.append(Finding(name, False, str(problem)))
    return findings


def check_env(c):
    stack = c.config.stack
    env_path, example = ROOT / stack.env_file, ROOT / stack.env_example
    if not env_path.is_file():
        return [
            Finding("env", False, f"{stack.env_file} not found: run `inv setup` to create it from {stack.env_example}")
        ]
    findings = []
    missing = missing_keys(env_path, example)
    empty = [k for k in stack.secret_vars if not read_env(env_path).get(k) and k not in missing]
    if missing:
        findings.append(
            Finding(
                "env",
                False,
                f"{stack.env_file} lacks {', '.join(missing)}: run `inv setup` to add them from {stack.env_example}",
            )
        )
    if empty:
        findings.append(
            Finding(
                "env", False, f"{', '.join(empty)} empty in {stack.env_file}: run `inv setup --force` or set a value"
            )
        )
    findings += check_database_host(read_env(env_path), stack.env_file)
    return findings or [Finding("env", True, f"{stack.env_file} complete")]


def check_database_host(env, env_name):
    """The classic: a backend in a container pointed at localhost, which is itself."""
    url_host = urlparse(env.get("DATABASE_URL") or "").hostname
    for variable, host in (("DB_HOST", env.get("DB_HOST")), ("DATABASE_URL", url_host)):
        if host in LOCAL_HOSTS:
            return [
                Finding(
                    "env",
                    False,
                    f"{variable} in {env_name} points at {host}, which inside "
                    "the backend container is the container itself: use the "
                    "service name (DB_HOST=postgres)",
                )
            ]
    return []


def check_ports(c, engine_up, target=None):
    """Each port the target (default: the dev stack) publishes: free, or already its own."""
    target = target or stack_target(c)
    env = effective_env(c)
    findings = []
    for variable, default in target.ports.items():
        port = int(env.get(variable) or default)
        if ports.is_free(port):
            findings.append(Finding("port", True, f"{port} ({variable}) free"))
            continue
        ours = [
            name
            for name, project in (ports.containers_publishing(c, port) if engine_up else [])
            if project == target.project
        ]
        if ours:
            findings.append(Finding("port", True, f"{port} ({variable}) used by this stack ({ours[0]})"))
            continue
        holder = ports.describe_holder(c, port) if engine_up else "another process"
        findings.append(
            Finding(
                "port",
                False,
                f"port {port} ({variable}) is in use by {holder}: stop it or set {variable} to a free port in .env",
            )
        )
    return findings


def check_base_images(c):
    findings = []
    for name, (variable, image) in bases.configured_images(c, ROOT / c.config.stack.env_file).items():
        found = inspect_image(c, image)
        if found and bases.out_of_date(c, name, image, found):
            findings.append(
                Finding("image", False, f"base image {image} predates bases/{name}/: run `inv bases --base {name}`")
            )
        elif found:
            findings.append(Finding("image", True, f"{image} ({variable}) present"))
        else:
            findings.append(
                Finding(
                    "image",
                    False,
                    f"base image {image} ({variable}) missing: run "
                    f"`inv setup` (pulls it, or builds local bases "
                    f"when no registry answers)",
                )
            )
    return findings


def docker_root(c):
    result = c.run("docker info --format '{{json .}}'", hide=True, warn=True)
    try:
        return json.loads(result.stdout).get("DockerRootDir") if result.ok else None
    except ValueError:
        return None


def check_disk(c, engine_up):
    minimum = float(c.config.stack.min_free_disk_gb)
    findings = []
    for label, path in (("project", ROOT), ("docker", docker_root(c) if engine_up else None)):
        if not path or not os.path.isdir(path):
            continue
        free_gb = shutil.disk_usage(path).free / 1e9
        ok = free_gb >= minimum
        findings.append(
            Finding(
                "disk",
                ok,
                f"{free_gb:.1f} GB free for {label} ({path})"
                + ("" if ok else f", below {minimum:g} GB: free space (docker system prune) or move it"),
            )
        )
    return findings


def run_checks(c):
    findings = check_engine(c)
    engine_up = all(f.ok for f in findings)
    findings += check_env(c)
    findings += check_ports(c, engine_up)
    if engine_up:
        findings += check_base_images(c)
    findings += check_disk(c, engine_up)
    return findings
