"""Running the bench: the sections asked for, in the copy, then the figures judged and the
report written (stackctl.budgets); the copy is removed whatever happens, Ctrl-C and SIGTERM
included."""

import os
import shutil
import signal
from contextlib import contextmanager

from invoke.exceptions import CommandTimedOut

from .. import ROOT, Problem, budgets
from . import builds, dev
from .figures import Figures
from .load import load
from .machine import machine_state
from .tree import BenchCopy

# Each section, in the order they run.
SECTIONS = {
    "build": builds.cold_builds,
    "rebuild": builds.rebuilds,
    "sizes": builds.sizes,
    "load": load,
    "up": dev.ups,
    "reload": dev.reloads,
}


class Bench:
    """What the sections share: the copy, the settings, and the figures and notes they record."""

    def __init__(self, c, copy, *, quick, say):
        config = c.config.bench
        self.copy, self.say = copy, say
        self.runs = int(config.quick_runs if quick else config.runs)
        load = config.load
        self.load = {
            "duration_s": int(load.quick_duration_s if quick else load.duration_s),
            "connections": int(load.connections),
            "threads": int(load.threads),
            "warmup_s": int(load.warmup_s),
            "rows": int(load.rows),
        }
        self.wait_s = float(config.wait_s)
        self.figures = Figures()
        self.notes = []

    def add(self, key, label, unit, section, value):
        self.say(f"bench: {label}: {budgets.number(value)} {unit}")
        return self.figures.add(key, label, unit, section, value)


def select_sections(requested):
    """The sections to run, in their fixed order; `requested` may hold comma-separated names."""
    names = [name.strip() for item in requested for name in item.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise Problem(f"bench: unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names] if names else list(SECTIONS)


def run(c, *, quick=False, sections=(), say=print):
    """Run the bench; returns the report (also written to bench.report). The copy and
    everything it created are removed whatever happens."""
    if "load" in sections and not shutil.which("wrk"):
        raise Problem("bench: wrk not found: install it with `inv setup --test-tools`")
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
                    SECTIONS[section](bench)
            except CommandTimedOut as timed_out:
                raise Problem(
                    f"bench: `{timed_out.result.command}` took over {timed_out.timeout} s (bench.command_timeout_s)"
                ) from None
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
    limits = {key: dict(limit) for key, limit in config.budgets.items()}
    metrics = bench.figures.metrics
    breaches = budgets.judge_medians(metrics.values(), limits)
    unjudged = [key for key in limits if key not in metrics]
    if unjudged:
        bench.notes.append(f"not measured in this run, so not judged: {', '.join(unjudged)}")
    report = budgets.bench_report(
        metrics.values(),
        breaches,
        quick=quick,
        runs=bench.runs,
        sections=sections,
        load=bench.load,
        machine=machine,
        notes=bench.notes,
        project=copy.name,
    )
    budgets.write_json(config.report, report)
    return report


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
