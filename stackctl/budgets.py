"""Image size and build time budgets: measuring, judging, reporting."""
import json
import time
from dataclasses import asdict, dataclass, field

from . import ROOT


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
    """Fill measure.breaches from its budgets; returns the measure."""
    checks = [("size", measure.size_mb, measure.budget_total_mb, "MB"),
              ("over base", measure.over_base_mb, measure.budget_over_base_mb, "MB"),
              ("build time", measure.build_s, measure.budget_build_s, "s")]
    measure.breaches = [f"{what} {value:.1f} {unit} > budget {limit:g} {unit}"
                        for what, value, limit, unit in checks
                        if value is not None and limit is not None and value > limit]
    return measure


def _cell(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def table(measures):
    """The size table: image, size, over base, budgets, build time, verdict."""
    header = f"{'image':<34} {'size MB':>8} {'over base':>10} {'budget':>12} {'build s':>8} {'budget s':>9}  verdict"
    rows = [header, "-" * len(header)]
    for m in measures:
        budget = "-" if m.budget_total_mb is None else f"{m.budget_total_mb:g}/{m.budget_over_base_mb:g}"
        verdict = "BREACH: " + "; ".join(m.breaches) if m.breaches else "ok"
        rows.append(f"{m.image:<34} {m.size_mb:>8.1f} {_cell(m.over_base_mb):>10} {budget:>12} "
                    f"{_cell(m.build_s):>8} {_cell(m.budget_build_s, 0):>9}  {verdict}")
    return "\n".join(rows)


def write_report(path, measures, **context):
    """The JSON report of a build: every figure, budget and breach."""
    report = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **context,
              "ok": not any(m.breaches for m in measures),
              "images": [{**asdict(m), "over_base_mb": m.over_base_mb} for m in measures]}
    path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
