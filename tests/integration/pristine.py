"""A pristine host in a container: a clean Debian root filesystem with only what the README
lists as requirements (python3 with pip, git, the host's CA bundle), no Docker at all, able
to run a Docker engine of its own on its own /var/lib/docker volume.

Everything a PristineHost makes (image, container, volume, the inner engine's cgroups) is
named after one unique token and removed by close()."""

import hashlib
import inspect
import json
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from invoke import Context

from stackctl.bases import HOST_CA_BUNDLE, host_mirrors
from tests.helpers import ROOT, project_config

PACKAGES = ["python3", "python3-pip", "git", "ca-certificates"]
CACHE = ROOT / ".cache" / "pristine"
LOGS = ROOT / "reports" / "pristine"
SOURCE = "/src/todostack"  # the repository to clone, mounted read-only
CLONE = "/srv/todo app"  # where the host clones it: a path with a space, on purpose
# What lets an engine run inside a container on our machines (--privileged is refused):
# /work/shared/ENVIRONMENT.md, "Docker inside Docker".
DIND_FLAGS = [
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "-e",
    "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1",
]
DOCKERD_LOGS = ["/var/log/todostack/dockerd.log", "/var/log/dockerd.log"]


def docker(*args, timeout=300):
    result = subprocess.run(["docker", *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(map(str, args))}: {result.stderr.strip()}"
    return result.stdout.strip()


def tail(text, lines=40):
    return "\n".join(text.rstrip().splitlines()[-lines:])


def build_rootfs(suite, mirror, security, root):
    """The recipe: debootstrap minbase with the README's requirements, apt sources as on a
    real host, and the host's CA bundle (HTTPS from here passes a TLS-inspecting proxy whose
    CA only that bundle has). Also under /usr/local/share/ca-certificates, so that an
    update-ca-certificates run inside (installing packages may trigger one) keeps it."""
    log = root.parent / "debootstrap.log"
    with open(log, "w") as out:
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(root), mirror],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    assert done.returncode == 0, f"debootstrap {suite} from {mirror} failed:\n{tail(log.read_text())}"
    sources = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if security:
        sources.append(f"deb {security} {suite}-security main")
    (root / "etc/apt/sources.list").write_text("\n".join(sources) + "\n")
    for target in ("etc/ssl/certs/ca-certificates.crt", "usr/local/share/ca-certificates/host-bundle.crt"):
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).unlink(missing_ok=True)  # ca-certificates.crt may be a link elsewhere
        shutil.copyfile(HOST_CA_BUNDLE, root / target)
    # debootstrap leaves the packages it installed, this host's resolver and its name behind.
    for package in (root / "var/cache/apt/archives").glob("*.deb"):
        package.unlink()
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/hostname").write_text("")


def rootfs_tarball(suite):
    """The suite's root filesystem as a tarball, cached under .cache/pristine/ by a hash of
    its recipe, its mirrors and the CA bundle: debootstrap runs only when one changed."""
    mirror, security = host_mirrors(Context(project_config()))
    recipe = json.dumps([inspect.getsource(build_rootfs), suite, mirror, security, PACKAGES])
    key = hashlib.sha256(recipe.encode() + HOST_CA_BUNDLE.read_bytes()).hexdigest()[:16]
    tarball = CACHE / f"rootfs-{suite}-{key}.tar"
    if tarball.is_file():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=CACHE))
    try:
        build_rootfs(suite, mirror, security, work / "root")
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", work / "root", "-cf", work / "rootfs.tar", "."],
            check=True,
            timeout=300,
        )
        for stale in CACHE.glob(f"rootfs-{suite}-*.tar"):
            stale.unlink()
        (work / "rootfs.tar").replace(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def make_repository(target):
    """Make target (a copy of the working tree, stackctl.copies.copy_tree) a git repository with
    all of it committed, to clone as a user clones the project: HEAD is the working tree."""
    git = ["git", "-c", "user.name=pristine", "-c", "user.email=pristine@localhost", "-C", str(target)]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "--all"], check=True)
    subprocess.run([*git, "commit", "--quiet", "--no-verify", "-m", "working tree under test"], check=True)
    return target


@dataclass(repr=False)
class Run:
    command: str
    returncode: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self):
        return self.returncode == 0

    def __repr__(self):  # what pytest shows under a failed assert: the message says the rest
        return f"Run({self.command!r}, returncode={self.returncode})"

    def describe(self):
        status = (
            f"timed out after {self.seconds:.0f} s"
            if self.returncode is None
            else f"exited {self.returncode} after {self.seconds:.0f} s"
        )
        return f"`{self.command}` {status}:\n{tail(self.stdout + self.stderr)}"


class PristineHost:
    def __init__(self, suite):
        self.suite = suite
        self.name = f"pristine-{suite}-{uuid.uuid4().hex[:8]}"
        self.image = f"todostack-pristine:{self.name}"
        self.logs = LOGS / suite
        self.started = False

    def start(self, repository):
        """Import the root filesystem, start the host with `sleep infinity` as PID 1 (no
        init system, like our machines) and clone the repository into CLONE."""
        self.logs.mkdir(parents=True, exist_ok=True)
        docker("import", rootfs_tarball(self.suite), self.image)
        docker("volume", "create", self.name)
        self.started = True
        # The default bridge reaches the mirrors and PyPI; no port is published on this machine.
        docker(
            "run",
            "-d",
            "--name",
            self.name,
            "--hostname",
            self.suite,
            *DIND_FLAGS,
            "-v",
            f"{self.name}:/var/lib/docker",
            "--mount",
            f"type=bind,src={repository},dst={SOURCE},readonly",
            self.image,
            "sleep",
            "infinity",
        )
        # Environment of this nested machine, not part of the command under test: the inner
        # engine must put its containers under a cgroup of its own (cgroup v1 here), or they
        # land in the outer engine's cgroups. A plain `dockerd` (which the provisioning
        # starts where no init system runs) reads this file.
        self.put("/etc/docker/daemon.json", json.dumps({"cgroup-parent": f"/{self.name}"}) + "\n")
        cloned = self.run(f"git clone --quiet {SOURCE} {shlex.quote(CLONE)}", cwd="/", timeout=120)
        assert cloned.ok, cloned.describe()

    def put(self, path, text):
        written = self.run(
            f"mkdir -p {shlex.quote(str(Path(path).parent))} && cat >{shlex.quote(path)}",
            cwd="/",
            stdin=text,
            timeout=30,
        )
        assert written.ok, written.describe()

    def run(self, command, *, timeout, cwd=CLONE, user=None, env=None, log=None, stdin=None):
        """`bash -c COMMAND` inside, as root (or `user`), killed after timeout seconds. With
        `log`, stdout and stderr come back together as stdout, and go as they come, each line
        with its time since the start, to reports/pristine/SUITE/LOG.log."""
        args = ["docker", "exec", "-i", "-w", cwd]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        if user:
            args += ["-u", user]
        args += [self.name, "bash", "-c", command]
        started = time.monotonic()
        if not log:
            try:
                done = subprocess.run(args, capture_output=True, text=True, input=stdin or "", timeout=timeout)
                return Run(command, done.returncode, done.stdout, done.stderr, time.monotonic() - started)
            except subprocess.TimeoutExpired as expired:
                stdout, stderr = (
                    out.decode(errors="replace") if isinstance(out, bytes) else out or ""
                    for out in (expired.stdout, expired.stderr)
                )
                return Run(command, None, stdout, stderr, time.monotonic() - started)
        lines, timed_out = [], threading.Event()
        with (
            open(self.logs / f"{log}.log", "w") as out,
            subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            ) as process,
        ):
            process.stdin.write(stdin or "")
            process.stdin.close()
            timer = threading.Timer(timeout, lambda: (timed_out.set(), process.kill()))
            timer.start()
            try:
                for line in process.stdout:
                    lines.append(line)
                    out.write(f"{time.monotonic() - started:6.1f}s {line}")
                    out.flush()
                process.wait()
            except BaseException:
                process.kill()
                raise
            finally:
                timer.cancel()
        returncode = None if timed_out.is_set() else process.returncode
        return Run(command, returncode, "".join(lines), "", time.monotonic() - started)

    def diagnostics(self):
        """The inner engine's last log lines and containers, for failure messages."""
        logs = " ".join(DOCKERD_LOGS)
        found = self.run(
            f'for f in {logs}; do [ -f $f ] && echo "--- $f" && tail -n 20 $f; done; '
            "echo '--- docker ps -a'; timeout 10 docker ps -a 2>&1 || true",
            cwd="/",
            timeout=30,
        )
        return found.stdout + found.stderr

    def failure(self, run):
        return f"[{self.suite}] {run.describe()}\n{self.diagnostics()}\n(full logs: {self.logs})"

    def close(self):
        """Remove the inner containers and the inner engine's cgroups, then the host itself,
        its volume and its image."""
        if not self.started:
            subprocess.run(["docker", "rmi", self.image], capture_output=True)
            return
        self.run(
            "if timeout 10 docker info >/dev/null 2>&1; then "
            "  docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1; fi; "
            # dockerd ends as a zombie: `sleep infinity`, PID 1 here, reaps nothing.
            "pid=$(cat /var/run/docker.pid 2>/dev/null) && kill $pid && for _ in $(seq 30); do "
            "  state=$(awk '/^State:/ {print $2}' /proc/$pid/status 2>/dev/null); "
            '  [ -n "$state" ] && [ "$state" != Z ] || break; sleep 1; done; '
            f"for d in /sys/fs/cgroup/*/{self.name}; do "
            "  [ -d $d ] && find $d -depth -type d -exec rmdir {} + 2>/dev/null; done; true",
            cwd="/",
            timeout=120,
        )
        for args in (["rm", "-f", self.name], ["volume", "rm", self.name], ["rmi", self.image]):
            subprocess.run(["docker", *args], capture_output=True, timeout=300)
