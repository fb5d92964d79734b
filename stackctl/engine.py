"""Is there a Docker engine we can talk to, and a Compose v2 CLI? And what it holds of an image."""

import json
import os
import shlex
import shutil

from . import Problem

DEFAULT_SOCKET = "/var/run/docker.sock"


def _json(text):
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return {}


def _server(c):
    """The engine's part of `docker version` ({} when it does not answer)."""
    result = c.run("docker version --format '{{json .}}'", hide=True, warn=True)
    return (_json(result.stdout).get("Server") or {}) if result.ok else {}


def server_answers(c):
    """True when a Docker CLI is installed and its engine answers."""
    return shutil.which("docker") is not None and bool(_server(c).get("Version"))


def server_version(c):
    """The engine's version, or Problem naming the cause and its fix."""
    if shutil.which("docker") is None:
        raise Problem("Docker CLI not found: install Docker (on Debian/Ubuntu as root: inv setup --engine)")
    version = _server(c).get("Version")
    if version:
        return version
    if (
        "DOCKER_HOST" not in os.environ
        and os.path.exists(DEFAULT_SOCKET)
        and not os.access(DEFAULT_SOCKET, os.R_OK | os.W_OK)
    ):
        raise Problem(
            f"no permission to use {DEFAULT_SOCKET}: add yourself to the docker "
            "group (sudo usermod -aG docker $USER) and log in again"
        )
    raise Problem(
        "Docker daemon is not running: start it (systemctl start docker, "
        "Docker Desktop, or as root: inv setup --engine)"
    )


def compose_version(c):
    """The Compose v2 version, or Problem (also when only Compose v1 is installed)."""
    result = c.run("docker compose version --format json", hide=True, warn=True)
    version = _json(result.stdout).get("version", "") if result.ok else ""
    major = version.lstrip("v").split(".")[0]
    if major.isdigit() and int(major) >= 2:
        return version
    if shutil.which("docker-compose"):
        raise Problem(
            "only Compose v1 (docker-compose) found: install the Compose v2 "
            "plugin (as root: inv setup --engine, or your distribution's "
            "docker-compose-plugin)"
        )
    raise Problem(
        "Compose v2 not found (`docker compose version` fails): install the plugin (as root: inv setup --engine)"
    )


def require_engine(c):
    """Both engine and Compose, for tasks that need them; returns their versions."""
    return server_version(c), compose_version(c)


def inspect_image(c, image):
    """`docker image inspect` of one image (name or ID) as a dict; None when there is no such image."""
    result = c.run(f"docker image inspect {shlex.quote(image)}", hide=True, warn=True)
    return json.loads(result.stdout)[0] if result.ok else None


def image_size_mb(c, image):
    info = inspect_image(c, image)
    return info["Size"] / 1e6 if info else None
