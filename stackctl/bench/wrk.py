"""The one wrk harness, for the bench's load figures and tests/integration/test_load.py.

A run's Lua script gets DONE appended: its done() hook prints the result as one JSON line
(MARK, then totals, errors by kind, latency percentiles and, when the script counts them with
COUNT_STATUSES, the responses by status), so nothing depends on the layout of wrk's
human-readable output. DONE defines setup(): scripts must not."""

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import Problem
from .loopback import require_loopback
from .machine import busy_pct, cpu_times

MARK = "BENCH_WRK "
DONE = r"""
local wrk_threads = {}

function setup(thread)
  table.insert(wrk_threads, thread)
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(wrk_threads) do
    for status, n in pairs(thread:get("statuses") or {}) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + n
    end
  end
  local statuses = {}
  for status, n in pairs(merged) do
    table.insert(statuses, string.format('"%s": %.0f', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, ' ..
    '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, ' ..
    '"latency_us": {"p50": %.0f, "p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.1f}, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(statuses, ", ")))
end
"""
# Each thread counts the statuses it got; DONE merges them. (A response() hook costs wrk
# throughput: only for runs that need the statuses.)
COUNT_STATUSES = r"""
statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""


def read_write_mix(post_every, title):
    """Lua for reads and writes: one request in `post_every` creates a todo ("TITLE N"), the
    others read the list's first page."""
    return (
        f"local post_every = {post_every}\nlocal title = {json.dumps(title + ' ')}\n"
        + r"""
local counter = 0

function request()
  counter = counter + 1
  if counter % post_every == 0 then
    return wrk.format("POST", "/api/v1/todos", {["Content-Type"] = "application/json"},
                      '{"title": "' .. title .. counter .. '"}')
  end
  return wrk.format("GET", "/api/v1/todos")
end
"""
    )


POST_TODO = r"""
wrk.method = "POST"
wrk.body = '{"title": "bench"}'
wrk.headers["Content-Type"] = "application/json"
"""


def parse(output):
    """The result DONE printed: {"requests", "duration_s", "rps", "p50_ms", "p90_ms", "p99_ms",
    "max_ms", "errors" (failed requests), "error_kinds" (wrk's counts by kind), "statuses"
    ({status: responses}, empty unless counted)}."""
    for line in output.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK) :])
            seconds = data["duration_us"] / 1e6
            latency = data["latency_us"]
            return {
                "requests": int(data["requests"]),
                "duration_s": seconds,
                "rps": data["requests"] / seconds if seconds else 0.0,
                **{f"{stat}_ms": latency[stat] / 1e3 for stat in ("p50", "p90", "p99", "max")},
                "errors": int(sum(data["errors"].values())),
                "error_kinds": {kind: int(n) for kind, n in data["errors"].items()},
                "statuses": {int(status): int(n) for status, n in data.get("statuses", {}).items()},
            }
    raise ValueError(f"wrk printed no {MARK.strip()} line")


@dataclass
class Run:
    result: dict  # parse()
    output: str  # everything wrk printed
    wrk_cpu_pct: float  # wrk's own CPU time over the run's wall time
    host_busy_pct: float  # share of all CPUs busy meanwhile


def run(
    url,
    lua="",
    *,
    seconds,
    connections,
    threads=1,
    timeout_s=5,
    netns_pid=None,
    sample=None,
    sample_every=0.0,
    log=None,
):
    """One wrk run of `lua` (DONE appended) against `url` (127.0.0.1 only); with `netns_pid`, wrk
    runs in that process's network namespace (nsenter, root). While it runs, sample() is called
    again and again (at most every `sample_every` s) until 2 s before the end. The command and
    its output go to `log`. A run that fails, hangs, prints no result or completes no request
    raises Problem."""
    require_loopback(url)
    with tempfile.TemporaryDirectory(prefix="wrk-") as scripts, tempfile.TemporaryFile(mode="w+") as out:
        script = Path(scripts) / "run.lua"
        script.write_text(lua + DONE)
        command = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            f"{timeout_s}s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
        if netns_pid is not None:  # 127.0.0.1 is then the one inside that network namespace
            command = ["nsenter", "-t", str(netns_pid), "-n", *command]
        cpu_before, start = cpu_times(), time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        reaped = None
        try:
            reaped = _watch(process, start, seconds, sample, sample_every)
        finally:
            if reaped is None:
                process.kill()
                process.wait()
        wall, cpu_after = time.monotonic() - start, cpu_times()
        out.seek(0)
        output = out.read()
    if log is not None:
        log.write(f"\n$ {' '.join(command)}\n{output}")
    if reaped is None:
        raise Problem(f"wrk against {url} did not finish within {seconds + 30} s")
    code = os.waitstatus_to_exitcode(reaped[0])
    if code != 0:
        raise Problem(f"wrk against {url} exited with {code}: {(output.strip().splitlines() or ['no output'])[-1]}")
    try:
        result = parse(output)
    except ValueError as error:
        raise Problem(f"reading wrk's output failed ({error})") from None
    if not result["requests"]:
        raise Problem(f"wrk completed no request against {url}")
    usage = reaped[1]
    return Run(
        result,
        output,
        wrk_cpu_pct=100.0 * (usage.ru_utime + usage.ru_stime) / wall,
        host_busy_pct=busy_pct(cpu_before, cpu_after),
    )


def _watch(process, start, seconds, sample, sample_every):
    """Samples until wrk ends: (wait status, rusage) of wrk, or None when it outlived its time by 30 s."""
    time.sleep(min(1.0, seconds / 4))
    last_sample = None
    while time.monotonic() - start < seconds + 30:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, usage
        now = time.monotonic()
        if sample and now - start < seconds - 2 and (last_sample is None or now - last_sample >= sample_every):
            last_sample = now
            sample()
        else:
            time.sleep(0.1)
    return None
