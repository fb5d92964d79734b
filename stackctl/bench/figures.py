"""The bench's figures: every run's value of each, summarised as median, min and max."""

import statistics
from dataclasses import dataclass, field


@dataclass
class Metric:
    """One figure: every run's value, judged on the median (stackctl.budgets.judge_medians)."""

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
