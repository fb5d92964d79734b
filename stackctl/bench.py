"""`inv bench`: how fast the stack builds, starts, reloads and serves, on the real engine.

Everything runs in a throwaway copy of the working tree under .cache/ with Compose
project names, host ports and image tags of its own, so a developer's stacks (and the
working tree) are never touched; the copy, its containers, volumes and the images it
tagged are removed afterwards, also on failure or Ctrl-C.

Each figure is measured `runs` times and reported as median, min and max. Sections:

  build    cold prod build of each image (`--no-cache`; base images and cache mounts kept)
  rebuild  prod rebuild after a one-line change in a backend and in a frontend source file
  sizes    prod image sizes, total and over the base image
  load     prod API throughput and latency with wrk, through the frontend origin (nginx ->
           backend) and straight to the backend, plus each container's memory and CPU
  up       `inv up` to all-healthy (dev stack, images built): from stopped containers and
           from no containers (data volume kept)
  reload   dev stack: backend reload and Vite HMR, from a file write to the new content served

The backend is not published in the prod stack. wrk reaches it directly by running in its
network namespace (`nsenter -t PID -n`, root only), where it is at 127.0.0.1:8000: the host's
wrk, no extra image (there is no registry to pull one from), no extra published port, and
the load generator's CPU shows up as the host's, not as a container's. Without root that
path is skipped and said so in the report's notes.
"""
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from invoke.exceptions import CommandTimedOut

from . import ROOT, Problem
from .compose import docker_compose
from .copies import TreeCopy
from .engine import inspect_image
from .images import build_one, built_images, measure
from .stack import containers
from .wait import wait_until

SECTIONS = ("build", "rebuild", "sizes", "load", "up", "reload")
APP_IMAGES = ("backend", "frontend")
PROD_SERVICES = ("postgres", "backend", "frontend")
BACKEND_SOURCE = "backend/app/main.py"
FRONTEND_SOURCE = "frontend/src/App.tsx"
# The edits the reload measurements make (the same as tests/integration/test_dev_stack.py).
BACKEND_ROUTE = "AppInfo(name=settings.PROJECT_NAME,"
FRONTEND_HEADING = "<h1>Todos</h1>"
WRK_MARK = "BENCH_WRK "
# Seconds between writes to a watched file. Vite's watcher (chokidar) drops a change whose
# mtime equals the one it stat()ed for the previous event, which happens when the next
# write lands before that stat: an edit restored within tens of milliseconds (or the next
# edit right after the restore) was then never served. No one saves twice that fast.
SETTLE_S = 1.0

# wrk's done() hook prints its summary as one JSON line, so nothing depends on the layout
# of wrk's human-readable output.
WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, ' ..
    '"errors": {"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}, ' ..
    '"latency_us": {"p50": %.0f, "p90": %.0f, "p99": %.0f, "max": %.0f, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""
WRK_POST = r"""
wrk.method = "POST"
wrk.body = '{"title": "bench"}'
wrk.headers["Content-Type"] = "application/json"
"""


# ------------------------------------------------------------------ figures ---

@dataclass
class Metric:
    """One figure: every run's value, judged on the median."""
    key: str
    label: str
    unit: str
    section: str
    samples: list = field(default_factory=list)
    budget: dict | None = None  # {"max": N} or {"min": N}
    verdict: str | None = None  # "ok", "BREACH: ...", or None when there is no budget
    errors: int = 0  # failed requests (load figures)
    requests: int = 0

    @property
    def summary(self):
        return summarise(self.samples)


def summarise(samples):
    """{"median", "min", "max", "runs"} of a list of numbers (None for each when it is empty)."""
    values = [float(v) for v in samples if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "runs": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


class Figures:
    """The metrics of one bench run, in the order they were first recorded."""

    def __init__(self):
        self.metrics = {}

    def add(self, key, label, unit, section, value):
        metric = self.metrics.setdefault(key, Metric(key, label, unit, section))
        metric.samples.append(round(float(value), 4))
        return metric


# -------------------------------------------------------------------- parsing ---

def parse_wrk(output):
    """wrk's result: {"requests", "duration_s", "rps", "p50_ms", "p99_ms", "errors"}, read
    from the JSON line the bench's done() hook prints."""
    for line in output.splitlines():
        if line.startswith(WRK_MARK):
            data = json.loads(line[len(WRK_MARK):])
            seconds = data["duration_us"] / 1e6
            return {"requests": int(data["requests"]), "duration_s": seconds,
                    "rps": data["requests"] / seconds if seconds else 0.0,
                    "p50_ms": data["latency_us"]["p50"] / 1e3, "p99_ms": data["latency_us"]["p99"] / 1e3,
                    "errors": int(sum(data["errors"].values()))}
    raise ValueError(f"wrk printed no {WRK_MARK.strip()} line")


_SIZE = re.compile(r"^([\d.]+)\s*([KMGT]?i?B)$", re.I)
_SIZE_MIB = {"b": 1 / 2**20, "kib": 1 / 2**10, "mib": 1.0, "gib": 2**10, "tib": 2**20,
             "kb": 1e3 / 2**20, "mb": 1e6 / 2**20, "gb": 1e9 / 2**20, "tb": 1e12 / 2**20}


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
            stats[row["Name"]] = {"mem_mib": parse_mem_usage(row["MemUsage"])[0],
                                  "cpu_pct": float(row["CPUPerc"].rstrip("%") or 0)}
    return stats


def cpu_times(text=None):
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    text = text if text is not None else Path("/proc/stat").read_text()
    values = [int(v) for v in text.splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def busy_pct(before, after):
    busy, total = after[0] - before[0], after[1] - before[1]
    return 100.0 * busy / total if total else 0.0


# ------------------------------------------------------------------- budgets ---

def judge(figures, budgets):
    """Set each metric's budget and verdict; returns the breaches, one line each.

    Budgets ({metric: {"max": N} or {"min": N}}) hold the median. A budget whose metric
    was not measured (a section left out with --only) is not judged. A load figure whose
    requests failed is a breach too: its numbers describe errors, not the API.
    """
    breaches = []
    for metric in figures.metrics.values():
        budget = budgets.get(metric.key)
        median = metric.summary["median"]
        problems = []
        if budget and median is not None:
            metric.budget = dict(budget)
            if "max" in budget and median > float(budget["max"]):
                problems.append(f"{_num(median)} {metric.unit} > {budget['max']:g} {metric.unit}")
            if "min" in budget and median < float(budget["min"]):
                problems.append(f"{_num(median)} {metric.unit} < {budget['min']:g} {metric.unit}")
        if metric.errors:
            problems.append(f"{metric.errors} of {metric.requests} requests failed")
        if problems:
            metric.verdict = "BREACH: " + "; ".join(problems)
            breaches.append(f"{metric.key} {'; '.join(problems)}")
        elif metric.budget:
            metric.verdict = "ok"
    return breaches


def _num(value):
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _budget_cell(budget):
    if not budget:
        return "-"
    return " ".join(f"{'<=' if kind == 'max' else '>='} {limit:g}" for kind, limit in budget.items())


def table(report):
    """The report as a table, one line per figure, grouped by section."""
    machine = report["machine"]
    title = (f"bench ({report['mode']}, {report['runs']} run(s) per figure, load {report['load']['duration_s']} s "
             f"x {report['load']['connections']} connections) on {machine['cpus']} CPUs, "
             f"{machine['memory_gib']} GiB, Docker {machine['docker']}; load average "
             f"{machine['loadavg_start']} at start, {machine['other_containers']} other container(s) running")
    header = f"{'metric':<46} {'median':>9} {'min':>9} {'max':>9}  {'unit':<5} {'budget':>9}  verdict"
    rows = [title, "", header, "-" * len(header)]
    section = None
    for m in report["metrics"].values():
        if m["section"] != section:
            section = m["section"]
            rows.append(f"[{section}]")
        rows.append(f"{m['label']:<46} {_num(m['median']):>9} {_num(m['min']):>9} {_num(m['max']):>9}  "
                    f"{m['unit']:<5} {_budget_cell(m['budget']):>9}  {m['verdict'] or ''}".rstrip())
    for note in report["notes"]:
        rows.append(f"note: {note}")
    rows.append("budgets: " + ("all met" if report["ok"] else "BREACHED: " + "; ".join(report["breaches"])))
    return "\n".join(rows)


def make_report(figures, breaches, *, quick, runs, sections, load, machine, notes, project=None):
    metrics = {}
    for key, m in figures.metrics.items():
        entry = asdict(m)
        entry.pop("key")
        metrics[key] = {**entry, **{k: (None if v is None else round(v, 4)) for k, v in m.summary.items()
                                    if k != "runs"}, "runs": m.summary["runs"]}
    return {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "mode": "quick" if quick else "full", "runs": runs, "sections": list(sections), "project": project,
            "load": load, "machine": machine, "ok": not breaches, "breaches": breaches,
            "notes": notes, "metrics": metrics}


def as_json(report):
    return json.dumps(report, indent=2)


def write_report(path, report):
    path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(as_json(report) + "\n")
    return path


def select_sections(requested):
    """The sections to run, in their fixed order; `requested` may hold comma-separated names."""
    names = [name.strip() for item in requested for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise Problem(f"bench: unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names] if names else list(SECTIONS)


# ---------------------------------------------------------------- the copy ---

def _require_loopback(url):
    if urlsplit(url).hostname != "127.0.0.1":
        raise Problem(f"bench: refusing to load {url}: only 127.0.0.1 is ever targeted")


def _http(method, url, body=None, timeout=5):
    """(status, text) of one request; raises OSError (URLError) when nothing answers."""
    _require_loopback(url)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class BenchCopy(TreeCopy):
    """The bench's copy of the tree (copies.TreeCopy): what it runs there is logged to the bench
    log, and a command that fails ends the bench with a Problem."""

    def __init__(self, c, log):
        if not (ROOT / c.config.stack.env_file).is_file():
            raise Problem(f"{c.config.stack.env_file} not found: run `inv setup` to create it")
        super().__init__(c, "todostack-bench")
        self.log = log
        self.timeout = int(c.config.bench.command_timeout_s)
        self.ctx.config.run.timeout = self.timeout

    def inv(self, *args):
        """Run `inv ARGS` in the copy; returns seconds taken. Output goes to the log."""
        self.log.write(f"\n$ inv {' '.join(args)}\n")
        self.log.flush()
        start = time.monotonic()
        try:
            result = super().inv(*args, timeout=self.timeout, stdout=self.log, stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            raise Problem(f"bench: `inv {' '.join(args)}` took over {self.timeout} s; see the bench log") from None
        if result.returncode != 0:
            raise Problem(f"bench: `inv {' '.join(args)}` failed in the bench copy; see the bench log")
        return time.monotonic() - start

    @contextmanager
    def logged(self):
        """Commands run inside print to the bench log instead of the terminal."""
        run = self.ctx.config.run
        run.out_stream = run.err_stream = self.log
        try:
            yield
        finally:
            run.out_stream = run.err_stream = None

    def compose(self, command, prod=False):
        with self.logged():
            result = docker_compose(self.ctx, self.target(prod), command, warn=True)
        if not result.ok:
            raise Problem(f"bench: `docker compose {command}` failed; see the bench log")
        return result

    def images(self, prod):
        return built_images(self.ctx, self.target(prod))

    def build(self, service, no_cache=False):
        """Build one prod image; returns seconds (images.build_one)."""
        self.log.write(f"\n$ build {service}{' --no-cache' if no_cache else ''}\n")
        with self.logged():
            seconds = build_one(self.ctx, self.target(prod=True), service, no_cache=no_cache)
        self.remember(self.images(True)[service])
        return seconds

    def container_pid(self, service, prod=False):
        cid = docker_compose(self.ctx, self.target(prod), f"ps -q {service}", hide=True, warn=True).stdout.strip()
        result = self.ctx.run(f"docker inspect -f '{{{{.State.Pid}}}}' {cid}", hide=True, warn=True) if cid else None
        return int(result.stdout.strip()) if result is not None and result.ok else None

    def container_names(self, prod=True):
        """{container name: service} of the running containers."""
        return {ct["Name"]: ct["Service"] for ct in containers(self.ctx, self.target(prod)) if ct["State"] == "running"}


@contextmanager
def _signal_handlers(handlers):
    """{signal: handler} in force for the block, the previous ones restored after it
    (signals can only be handled in the main thread; elsewhere nothing changes)."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _terminate_as_interrupt():
    """SIGTERM unwinds like Ctrl-C, so the finally blocks clean up."""
    return _signal_handlers({signal.SIGTERM: _raise_interrupt})


def _signals_ignored():
    """Cleanup runs to its end: Ctrl-C and SIGTERM are ignored meanwhile (the commands it
    runs inherit that, so they are not cut short either)."""
    return _signal_handlers({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN})


@contextmanager
def edited(path, transform):
    """The file changed by transform(text) inside the block, restored afterwards."""
    original = path.read_text()
    changed = transform(original)
    if changed == original:
        raise Problem(f"bench: {path.name} no longer has the line the bench edits; update stackctl/bench.py")
    try:
        yield changed
    finally:
        path.write_text(original)


# --------------------------------------------------------------- the bench ---

class Bench:
    def __init__(self, c, copy, *, quick, say):
        config = c.config.bench
        self.copy, self.say = copy, say
        self.runs = int(config.quick_runs if quick else config.runs)
        load = config.load
        self.load = {"duration_s": int(load.quick_duration_s if quick else load.duration_s),
                     "connections": int(load.connections), "threads": int(load.threads),
                     "warmup_s": int(load.warmup_s), "rows": int(load.rows)}
        self.wait_s = float(config.wait_s)
        self.figures = Figures()
        self.notes = []

    def add(self, key, label, unit, section, value):
        self.say(f"bench: {label}: {_num(value)} {unit}")
        return self.figures.add(key, label, unit, section, value)

    # -- prod images --------------------------------------------------------

    def section_build(self):
        for run in range(self.runs):
            total = 0.0
            for service in APP_IMAGES:
                self.say(f"bench: cold prod build of {service} ({run + 1}/{self.runs})")
                seconds = self.copy.build(service, no_cache=True)
                total += seconds
                self.add(f"cold_build_{service}_s", f"cold prod build: {service}", "s", "build", seconds)
            self.add("cold_build_total_s", "cold prod build: both images", "s", "build", total)

    def section_rebuild(self):
        sources = {"backend": (BACKEND_SOURCE, "#"), "frontend": (FRONTEND_SOURCE, "//")}
        for service, (source, comment) in sources.items():
            self.say(f"bench: prod build of {service} (brings the cache up to date, not timed)")
            self.copy.build(service)
            path = self.copy.path / source
            original = path.read_text()
            try:
                for _ in range(self.runs):
                    path.write_text(f"{original}{comment} bench {secrets.token_hex(4)}\n")
                    seconds = self.copy.build(service)
                    self.add(f"rebuild_{service}_s", f"prod rebuild, one-line change: {service}", "s",
                             "rebuild", seconds)
            finally:
                path.write_text(original)

    def _prod_images(self):
        """Build the prod images that are missing (not timed)."""
        for service, image in self.copy.images(True).items():
            if inspect_image(self.copy.ctx, image) is None:
                self.say(f"bench: prod build of {service} (not timed)")
                self.copy.build(service)

    def section_sizes(self):
        self._prod_images()
        for service, image in self.copy.images(True).items():
            sized = measure(self.copy.ctx, service, image)
            self.add(f"size_{service}_mb", f"image size: {service}", "MB", "sizes", sized.size_mb)
            if sized.over_base_mb is not None:
                self.add(f"size_over_base_{service}_mb", f"image over base: {service}", "MB", "sizes",
                         sized.over_base_mb)

    # -- prod load ----------------------------------------------------------

    def section_load(self):
        self._prod_images()
        self.say("bench: starting the prod stack")
        self.copy.inv("up", "--prod")
        try:
            self._load()
        finally:
            self.say("bench: removing the prod stack")
            docker_compose(self.copy.ctx, self.copy.target(prod=True), "down --volumes --remove-orphans --timeout 5",
                           hide=True, warn=True)

    def _load(self):
        origin = self.copy.url("PROD_PORT")
        for n in range(self.load["rows"]):
            status, text = _http("POST", f"{origin}/api/v1/todos", {"title": f"bench row {n + 1}"})
            if status != 201:
                raise Problem(f"bench: seeding a todo through {origin} answered {status}: {text[:200]}")
        status, text = _http("GET", f"{origin}/api/v1/todos")
        if status != 200 or json.loads(text)["total"] != self.load["rows"]:
            raise Problem(f"bench: the prod stack does not list the {self.load['rows']} seeded todos: {text[:200]}")
        names = self.copy.container_names()
        for _ in range(self.runs):
            stats = self._stats(names)
            for service, figures in sorted(stats.items()):
                self.add(f"mem_idle_{service}_mib", f"memory idle: {service}", "MiB", "load", figures["mem_mib"])

        direct_pid = self.copy.container_pid("backend", prod=True)
        paths = [("via_frontend", "via frontend", f"{origin}/api/v1/todos", None)]
        if os.geteuid() == 0 and shutil.which("nsenter") and direct_pid:
            paths.append(("direct", "backend direct", "http://127.0.0.1:8000/api/v1/todos", direct_pid))
        else:
            self.notes.append("backend direct: skipped (running wrk in the backend's network namespace "
                              "needs root and nsenter); figures are through the frontend only")
        with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scripts:
            get_script, post_script = Path(scripts) / "get.lua", Path(scripts) / "post.lua"
            get_script.write_text(WRK_DONE)
            post_script.write_text(WRK_POST + WRK_DONE)
            # Every GET runs before the first POST, so the list is read with exactly `rows` rows.
            for endpoint, method, script in (("list", "GET", get_script), ("create", "POST", post_script)):
                for key, where, url, pid in paths:
                    sample = endpoint == "list" and key == "via_frontend"
                    self._wrk_runs(f"api_{endpoint}_{key}", f"{method} /api/v1/todos {where}", url, script, pid,
                                   names if sample else None)

    def _wrk_runs(self, key, label, url, script, netns_pid, names):
        self.say(f"bench: {label}: {self.load['warmup_s']} s warm-up")
        self._wrk(url, script, self.load["warmup_s"], netns_pid, None)
        for run in range(self.runs):
            self.say(f"bench: {label}: {self.load['duration_s']} s x {self.load['connections']} connections "
                     f"({run + 1}/{self.runs})")
            result, stats, extra = self._wrk(url, script, self.load["duration_s"], netns_pid, names)
            for suffix, unit, value in (("rps", "req/s", result["rps"]), ("p50_ms", "ms", result["p50_ms"]),
                                        ("p99_ms", "ms", result["p99_ms"])):
                metric = self.add(f"{key}_{suffix}", f"{label}: {suffix.replace('_ms', '')}", unit, "load", value)
                metric.errors += result["errors"]
                metric.requests += result["requests"]
            for service, figures in sorted(stats.items()):
                self.add(f"mem_load_{service}_mib", f"memory under list load: {service}", "MiB", "load",
                         figures["mem_mib"])
            for service, figures in sorted(stats.items()):
                self.add(f"cpu_load_{service}_pct", f"CPU under list load: {service}", "%", "load",
                         figures["cpu_pct"])
            if names is not None:
                self.add("cpu_load_wrk_pct", "CPU under list load: wrk", "%", "load", extra["wrk_cpu_pct"])
                self.add("cpu_load_host_pct", f"CPU under list load: host (all {os.cpu_count()})", "%", "load",
                         extra["host_busy_pct"])

    def _stats(self, names):
        result = self.copy.ctx.run("docker stats --no-stream --format '{{json .}}' " + " ".join(names),
                                   hide=True, warn=True, timeout=30)
        if not result.ok:
            raise Problem("bench: `docker stats` failed: " + (result.stderr.strip().splitlines() or ["?"])[-1])
        return {names[name]: figures for name, figures in parse_stats(result.stdout).items() if name in names}

    def _wrk(self, url, script, seconds, netns_pid, names):
        """One wrk run; with `names`, samples the containers' memory and CPU while it runs.
        Returns (wrk result, {service: peak mem/cpu}, {"wrk_cpu_pct", "host_busy_pct"})."""
        _require_loopback(url)
        command = ["wrk", "-t", str(self.load["threads"]), "-c", str(self.load["connections"]),
                   "-d", f"{seconds}s", "--timeout", "5s", "--latency", "-s", str(script), url]
        if netns_pid is not None:  # 127.0.0.1 inside the backend container's network namespace
            command = ["nsenter", "-t", str(netns_pid), "-n", *command]
        peaks, reaped = {}, None
        with tempfile.TemporaryFile(mode="w+") as out:
            cpu_before, start = cpu_times(), time.monotonic()
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                time.sleep(min(1.0, seconds / 4))
                while time.monotonic() - start < seconds + 30:
                    pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                    if pid:
                        reaped = status, usage
                        break
                    if names and time.monotonic() - start < seconds - 2:
                        for service, figures in self._stats(names).items():
                            peak = peaks.setdefault(service, {"mem_mib": 0.0, "cpu_pct": 0.0})
                            peak["mem_mib"] = max(peak["mem_mib"], figures["mem_mib"])
                            peak["cpu_pct"] = max(peak["cpu_pct"], figures["cpu_pct"])
                    else:
                        time.sleep(0.1)
            finally:
                if reaped is None:
                    process.kill()
                    process.wait()
            wall, cpu_after = time.monotonic() - start, cpu_times()
            out.seek(0)
            output = out.read()
        self.copy.log.write(f"\n$ {' '.join(command)}\n{output}")
        if reaped is None:
            raise Problem(f"bench: wrk against {url} did not finish within {seconds + 30} s; see the bench log")
        process.returncode = os.waitstatus_to_exitcode(reaped[0])
        if process.returncode != 0:
            raise Problem(f"bench: wrk against {url} exited with {process.returncode}: "
                          f"{(output.strip().splitlines() or ['no output'])[-1]}")
        try:
            result = parse_wrk(output)
        except ValueError as error:
            raise Problem(f"bench: reading wrk's output failed ({error}); see the bench log") from None
        if not result["requests"]:
            raise Problem(f"bench: wrk completed no request against {url}; see the bench log")
        usage = reaped[1]
        return result, peaks, {"wrk_cpu_pct": 100.0 * (usage.ru_utime + usage.ru_stime) / wall,
                               "host_busy_pct": busy_pct(cpu_before, cpu_after)}

    # -- dev stack ----------------------------------------------------------

    def _dev_images(self):
        if not getattr(self, "_dev_built", False):
            self.say("bench: building the dev images (not timed)")
            self.copy.compose("build")
            for image in self.copy.images(False).values():
                self.copy.remember(image)
            self._dev_built = True

    def _dev_up(self):
        if not {"postgres", "backend", "frontend"} <= set(self.copy.container_names(prod=False).values()):
            self._dev_images()
            self.say("bench: starting the dev stack (first start: database initialised, not timed)")
            self.copy.inv("up")

    def section_up(self):
        self._dev_up()
        for _ in range(self.runs):
            self.copy.compose("stop")
            self.add("up_from_stopped_s", "inv up from stopped containers", "s", "up", self.copy.inv("up"))
            self.copy.inv("down")
            self.add("up_from_nothing_s", "inv up from no containers (images built)", "s", "up",
                     self.copy.inv("up"))

    def section_reload(self):
        self._dev_up()
        backend = self.copy.url("BACKEND_PORT", "/")
        module = self.copy.url("FRONTEND_PORT", "/src/App.tsx")
        for _ in range(self.runs):
            marker = f"bench-{secrets.token_hex(4)}"
            took = self._edit_until_served(BACKEND_SOURCE, BACKEND_ROUTE, f"AppInfo(name={marker!r},",
                                           lambda m=marker: json.loads(_http("GET", backend)[1])["name"] == m)
            self.add("backend_reload_s", "backend reload (write -> new response)", "s", "reload", took)
        for _ in range(self.runs):
            marker = f"Todos {secrets.token_hex(4)}"
            _http("GET", module)  # Vite has the module in its graph, as in a browser session
            took = self._edit_until_served(FRONTEND_SOURCE, FRONTEND_HEADING, f"<h1>{marker}</h1>",
                                           lambda m=marker: m in _http("GET", module)[1])
            self.add("vite_hmr_s", "Vite HMR (write -> updated module served)", "s", "reload", took)

    def _edit_until_served(self, source, old, new, served):
        """Seconds from writing `new` in place of `old` in the copy's source to served() holding;
        then restores the file and waits until the original is served again."""
        path = self.copy.path / source
        time.sleep(SETTLE_S)
        with edited(path, lambda text: text.replace(old, new)) as changed:
            start = time.monotonic()
            path.write_text(changed)
            took = None if wait_until(served, self.wait_s) is None else time.monotonic() - start
            time.sleep(SETTLE_S)
        if took is None:
            raise Problem(f"bench: the dev stack did not serve the edit of {source} within {self.wait_s:g} s; "
                          "see the bench log")
        if wait_until(lambda: not served(), self.wait_s) is None:
            raise Problem(f"bench: the dev stack still serves the edit of {source} after restoring it")
        return took


def machine_state(c):
    """What the figures depend on: CPUs, memory, engine, load, other containers."""
    def out(command):
        result = c.run(command, hide=True, warn=True)
        return result.stdout.strip() if result.ok else "?"
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").is_file() else ""
    total_kib = re.search(r"MemTotal:\s+(\d+)", meminfo)
    return {"cpus": os.cpu_count(), "memory_gib": round(int(total_kib.group(1)) / 2**20, 1) if total_kib else None,
            "docker": out("docker version --format '{{.Server.Version}}'"),
            "compose": out("docker compose version --short"),
            "kernel": os.uname().release, "loadavg_start": round(os.getloadavg()[0], 2),
            "other_containers": len(out("docker ps -q").split())}


def run(c, *, quick=False, sections=(), say=print):
    """Run the bench; returns the report (also written to bench.report). The copy and
    everything it created are removed whatever happens."""
    for tool in ("wrk",) if "load" in sections else ():
        if not shutil.which(tool):
            raise Problem(f"bench: {tool} not found: install it with `inv setup --test-tools`")
    config = c.config.bench
    machine = machine_state(c)
    log_path = ROOT / config.log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    (ROOT / config.report).unlink(missing_ok=True)  # a failed run leaves no stale report behind
    with open(log_path, "w", buffering=1) as log, _terminate_as_interrupt():
        def tell(line):
            say(line)
            log.write(line + "\n")
        copy = BenchCopy(c, log)
        try:
            tell(f"bench: copy of the tree in {copy.path.relative_to(ROOT)}, projects {copy.name}(-prod)")
            bench = Bench(c, copy, quick=quick, say=tell)
            try:
                for section in sections:
                    getattr(bench, f"section_{section}")()
            except CommandTimedOut as timed_out:
                raise Problem(f"bench: `{timed_out.result.command}` took over {timed_out.timeout} s "
                              "(bench.command_timeout_s)") from None
        except Problem as problem:
            say(f"bench: failed: {problem}; the last lines of {config.log}:")
            for line in log_path.read_text().splitlines()[-25:]:
                say(f"  {line}")
            log.write(f"bench: failed: {problem}\n")
            raise
        finally:
            tell("bench: cleaning up: containers, volumes, images, the copy (Ctrl-C waits for it)")
            with _signals_ignored():
                copy.remove()
    machine["loadavg_end"] = round(os.getloadavg()[0], 2)
    budgets = {key: dict(limits) for key, limits in config.budgets.items()}
    breaches = judge(bench.figures, budgets)
    unjudged = [key for key in budgets if key not in bench.figures.metrics]
    if unjudged:
        bench.notes.append(f"not measured in this run, so not judged: {', '.join(unjudged)}")
    report = make_report(bench.figures, breaches, quick=quick, runs=bench.runs, sections=sections,
                         load=bench.load, machine=machine, notes=bench.notes, project=copy.name)
    write_report(config.report, report)
    return report
