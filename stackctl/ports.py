"""Is a host port free, and if not, who holds it (a container or a process)?"""

import json
import os
import socket
from pathlib import Path

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def is_free(port, host="127.0.0.1"):
    """True when nothing listens on host:port (a bind test, like the one Docker will do).

    SO_REUSEADDR, as servers (docker-proxy among them) set it: connections lingering in
    TIME_WAIT after a container stopped do not make the port busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def listening_inodes(port, proc_net=Path("/proc/net")):
    """Socket inodes listening on a TCP port, read from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = proc_net / table
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def processes_holding(port, proc=Path("/proc")):
    """(pid, command name) of processes with a listening socket on port (those we may see)."""
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port, proc / "net")}
    holders = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
            if any(os.readlink(pid_dir / "fd" / fd) in wanted for fd in fds):
                holders.append((int(pid_dir.name), (pid_dir / "comm").read_text().strip()))
        except OSError:
            continue
    return holders


def containers_publishing(c, port):
    """(container name, compose project) of running containers that publish port on the host."""
    ids = c.run("docker ps -q", hide=True, warn=True)
    if not ids.ok or not ids.stdout.split():
        return []
    inspected = c.run("docker inspect " + " ".join(ids.stdout.split()), hide=True, warn=True)
    if not inspected.ok:
        return []
    found = []
    for container in json.loads(inspected.stdout):
        bindings = (container.get("NetworkSettings") or {}).get("Ports") or {}
        host_ports = {b.get("HostPort") for spec in bindings.values() for b in (spec or [])}
        if str(port) in host_ports:
            labels = (container.get("Config") or {}).get("Labels") or {}
            found.append((container["Name"].lstrip("/"), labels.get("com.docker.compose.project")))
    return found


def describe_holder(c, port):
    """Who holds a busy port, in words: a container by name, else a process by name and pid."""
    containers = containers_publishing(c, port)
    if containers:
        return "container " + ", ".join(name for name, _ in containers)
    processes = [(pid, name) for pid, name in processes_holding(port) if name != "docker-proxy"]
    if processes:
        return ", ".join(f"{name} (pid {pid})" for pid, name in processes)
    return "another process"
