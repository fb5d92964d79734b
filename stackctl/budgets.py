"""Budgets: the one place figures are judged against them, tabled and written as reports.

Two callers: `inv build --prod` (each image's size, size over its base and build time;
`build.budgets`, `build.warm_build_s`) and `inv bench` (the median of each figure;
`bench.budgets`). A budget is {"max": N} and/or {"min": N}; a figure without one, or not
measured, is not judged."""

import json
import time
from dataclasses import asdict, dataclass, field

from . import ROOT


def budget_breaches(value, budget, unit, shown, limit_word=""):
    """How `value` breaks `budget` ({"max": N} and/or {"min": N}), one text each; none when
    either is missing."""
    if value is None or not budget:
        return []
    return [
        f"{shown(value)} {unit} {sign} {limit_word}{float(budget[kind]):g} {unit}"
        for kind, sign, broken in (("max", ">", float.__gt__), ("min", "<", float.__lt__))
        if kind in budget and broken(float(value), float(budget[kind]))
    ]


def number(value):
    """A figure as the bench table shows it: three significant digits, whole numbers from 100."""
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _cell(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _stamped(**report):
    return {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **report}


def as_json(report):
    return json.dumps(report, indent=2)


def write_json(path, report):
    """Write a report (relative paths are under the project root); returns its path."""
    path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(as_json(report) + "\n")
    return path


# ----------------------------------------------------------- images (inv build --prod) ---


@dataclass
class ImageMeasure:
    service: str
    image: str
    size_mb: float
    base_image: str
    base_mb: float | None
    build_s: float | None = None
    budget_total_mb: float | None = None
    budget_over_base_mb: float | None = None
    budget_build_s: float | None = None
    breaches: list[str] = field(default_factory=list)

    @property
    def over_base_mb(self):
        return None if self.base_mb is None else self.size_mb - self.base_mb


def judge(measure):
    """Fill measure.breaches from its budgets (each a maximum); returns the measure."""
    checks = [
        ("size", measure.size_mb, measure.budget_total_mb, "MB"),
        ("over base", measure.over_base_mb, measure.budget_over_base_mb, "MB"),
        ("build time", measure.build_s, measure.budget_build_s, "s"),
    ]
    measure.breaches = [
        f"{what} {breach}"
        for what, value, limit, unit in checks
        for breach in budget_breaches(
            value, None if limit is None else {"max": limit}, unit, shown=_cell, limit_word="budget "
        )
    ]
    return measure


def table(measures):
    """The size table: image, size, over base, budgets, build time, verdict."""
    header = f"{'image':<34} {'size MB':>8} {'over base':>10} {'budget':>12} {'build s':>8} {'budget s':>9}  verdict"
    rows = [header, "-" * len(header)]
    for m in measures:
        budget = "-" if m.budget_total_mb is None else f"{m.budget_total_mb:g}/{m.budget_over_base_mb:g}"
        verdict = "BREACH: " + "; ".join(m.breaches) if m.breaches else "ok"
        rows.append(
            f"{m.image:<34} {m.size_mb:>8.1f} {_cell(m.over_base_mb):>10} {budget:>12} "
            f"{_cell(m.build_s):>8} {_cell(m.budget_build_s, 0):>9}  {verdict}"
        )
    return "\n".join(rows)


def write_report(path, measures, **context):
    """The JSON report of a build: every figure, budget and breach."""
    return write_json(
        path,
        _stamped(
            **context,
            ok=not any(m.breaches for m in measures),
            images=[{**asdict(m), "over_base_mb": m.over_base_mb} for m in measures],
        ),
    )


# ------------------------------------------------------------ medians (inv bench) ---


def judge_medians(metrics, budgets):
    """Set each metric's budget and verdict (metrics as stackctl.bench.figures.Metric); returns
    the breaches, one line each. Budgets ({key: {"max": N} or {"min": N}}) hold the median. A
    load figure whose requests failed is a breach too: its numbers describe errors, not the API."""
    found = []
    for metric in metrics:
        budget = budgets.get(metric.key)
        median = metric.summary["median"]
        problems = []
        if budget and median is not None:
            metric.budget = dict(budget)
            problems = budget_breaches(median, budget, metric.unit, shown=number)
        if metric.errors:
            problems.append(f"{metric.errors} of {metric.requests} requests failed")
        if problems:
            metric.verdict = "BREACH: " + "; ".join(problems)
            found.append(f"{metric.key} {'; '.join(problems)}")
        elif metric.budget:
            metric.verdict = "ok"
    return found


def bench_report(metrics, breaches, *, quick, runs, sections, load, machine, notes, project=None):
    """The bench's JSON report: the run's settings and machine, each figure with its samples,
    median, min, max, budget and verdict."""
    figures = {}
    for m in metrics:
        entry = asdict(m)
        entry.pop("key")
        summary = m.summary
        figures[m.key] = {
            **entry,
            **{k: (None if v is None else round(v, 4)) for k, v in summary.items() if k != "runs"},
            "runs": summary["runs"],
        }
    return _stamped(
        mode="quick" if quick else "full",
        runs=runs,
        sections=list(sections),
        project=project,
        load=load,
        machine=machine,
        ok=not breaches,
        breaches=breaches,
        notes=notes,
        metrics=figures,
    )


def _budget_cell(budget):
    if not budget:
        return "-"
    return " ".join(f"{'<=' if kind == 'max' else '>='} {limit:g}" for kind, limit in budget.items())


def bench_table(report):
    """The bench report as a table, one line per figure, grouped by section."""
    machine = report["machine"]
    title = (
        f"bench ({report['mode']}, {report['runs']} run(s) per figure, load {report['load']['duration_s']} s "
        f"x {report['load']['connections']} connections) on {machine['cpus']} CPUs, "
        f"{machine['memory_gib']} GiB, Docker {machine['docker']}; load average "
        f"{machine['loadavg_start']} at start, {machine['other_containers']} other container(s) running"
    )
    header = f"{'metric':<46} {'median':>9} {'min':>9} {'max':>9}  {'unit':<5} {'budget':>9}  verdict"
    rows = [title, "", header, "-" * len(header)]
    section = None
    for m in report["metrics"].values():
        if m["section"] != section:
            section = m["section"]
            rows.append(f"[{section}]")
        rows.append(
            f"{m['label']:<46} {number(m['median']):>9} {number(m['min']):>9} {number(m['max']):>9}  "
            f"{m['unit']:<5} {_budget_cell(m['budget']):>9}  {m['verdict'] or ''}".rstrip()
        )
    for note in report["notes"]:
        rows.append(f"note: {note}")
    rows.append("budgets: " + ("all met" if report["ok"] else "BREACHED: " + "; ".join(report["breaches"])))
    return "\n".join(rows)
