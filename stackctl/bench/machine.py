"""What the bench's figures depend on and what it samples besides them: the machine (CPUs,
memory, engine, load), each container's memory now (`docker stats`), the CPU time and peak
memory each container has used (its cgroup's counters), the host's busy CPU share
(/proc/stat)."""

import json
import os
import re
from pathlib import Path

from .. import Problem

_SIZE = re.compile(r"^([\d.]+)\s*([KMGT]?i?B)$", re.I)
_SIZE_MIB = {
    "b": 1 / 2**20,
    "kib": 1 / 2**10,
    "mib": 1.0,
    "gib": 2**10,
    "tib": 2**20,
    "kb": 1e3 / 2**20,
    "mb": 1e6 / 2**20,
    "gb": 1e9 / 2**20,
    "tb": 1e12 / 2**20,
}


def machine_state(c):
    """CPUs, memory, engine and Compose versions, kernel, load average, other containers."""

    def out(command):
        result = c.run(command, hide=True, warn=True)
        return result.stdout.strip() if result.ok else "?"

    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").is_file() else ""
    total_kib = re.search(r"MemTotal:\s+(\d+)", meminfo)
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(total_kib.group(1)) / 2**20, 1) if total_kib else None,
        "docker": out("docker version --format '{{.Server.Version}}'"),
        "compose": out("docker compose version --short"),
        "kernel": os.uname().release,
        "loadavg_start": round(os.getloadavg()[0], 2),
        "other_containers": len(out("docker ps -q").split()),
    }


def parse_size_mib(text):
    """A docker size ('123.4MiB', '1.5GiB', '812KiB', '0B', '12.3MB') in MiB."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"not a docker size: {text!r}")
    return float(match.group(1)) * _SIZE_MIB[match.group(2).lower()]


def parse_mem_usage(text):
    """docker stats' MemUsage ('123.4MiB / 512MiB'): (used MiB, limit MiB)."""
    used, _, limit = text.partition("/")
    return parse_size_mib(used), parse_size_mib(limit)


def parse_stats(output):
    """`docker stats --no-stream --format '{{json .}}'` lines: {name: {"mem_mib", "cpu_pct"}}."""
    stats = {}
    for line in output.splitlines():
        if line.strip():
            row = json.loads(line)
            stats[row["Name"]] = {
                "mem_mib": parse_mem_usage(row["MemUsage"])[0],
                "cpu_pct": float(row["CPUPerc"].rstrip("%") or 0),
            }
    return stats


def container_stats(c, names):
    """{service: {"mem_mib", "cpu_pct"}} now, for `names` ({container name: service})."""
    result = c.run(
        "docker stats --no-stream --format '{{json .}}' " + " ".join(names), hide=True, warn=True, timeout=30
    )
    if not result.ok:
        raise Problem("bench: `docker stats` failed: " + (result.stderr.strip().splitlines() or ["?"])[-1])
    return {names[name]: figures for name, figures in parse_stats(result.stdout).items() if name in names}


# Read from inside the container, where its own cgroup is mounted at /sys/fs/cgroup whatever
# the host's layout: cgroup v2 files first, then v1's (each line "path value...").
_CGROUP_READ = (
    "for f in /sys/fs/cgroup/cpu.stat /sys/fs/cgroup/memory.peak "
    "/sys/fs/cgroup/cpuacct/cpuacct.usage /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage "
    "/sys/fs/cgroup/memory/memory.max_usage_in_bytes; "
    'do [ -r "$f" ] && echo "$f $(tr "\\n" " " < "$f")"; done'
)


def parse_cgroup(output):
    """The lines _CGROUP_READ printed: {"cpu_s": CPU seconds used, "mem_peak_mib": highest
    memory use, None when the kernel does not keep it}."""
    cpu_s, peak = None, None
    for line in output.splitlines():
        path, _, value = line.partition(" ")
        fields = value.split()
        if path.endswith("/cpu.stat"):
            usage = dict(zip(fields[::2], fields[1::2], strict=True))
            cpu_s = int(usage["usage_usec"]) / 1e6
        elif path.endswith("cpuacct.usage") and cpu_s is None:
            cpu_s = int(fields[0]) / 1e9
        elif path.endswith(("memory.peak", "memory.max_usage_in_bytes")):
            peak = int(fields[0]) / 2**20
    if cpu_s is None:
        raise ValueError(f"no cgroup CPU counter in {output!r}")
    return {"cpu_s": cpu_s, "mem_peak_mib": peak}


def container_usage(c, names):
    """{service: parse_cgroup()} for `names` ({container name: service})."""
    usage = {}
    for name, service in names.items():
        result = c.run(f"docker exec {name} sh -c '{_CGROUP_READ}'", hide=True, warn=True, timeout=30)
        try:
            usage[service] = parse_cgroup(result.stdout)
        except ValueError:
            raise Problem(f"bench: cannot read the cgroup counters of {name}: {result.stderr.strip()[:200]}") from None
    return usage


def cpu_times(text=None):
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    text = text if text is not None else Path("/proc/stat").read_text()
    values = [int(v) for v in text.splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def busy_pct(before, after):
    busy, total = after[0] - before[0], after[1] - before[1]
    return 100.0 * busy / total if total else 0.0
