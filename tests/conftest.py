"""Measurements that tests record (latencies, sizes) are printed after the run and
written to reports/measurements.json."""
import json

import pytest

from tests.helpers import ROOT

_MEASURED = {}


@pytest.fixture(scope="session")
def measure():
    """measure(name, value, unit): record a figure to report at the end of the run."""
    def record(name, value, unit):
        _MEASURED[name] = {"value": round(value, 3), "unit": unit}
    return record


def pytest_terminal_summary(terminalreporter):
    if not _MEASURED:
        return
    terminalreporter.section("measurements")
    for name, figure in _MEASURED.items():
        terminalreporter.write_line(f"{name:<45} {figure['value']:>10} {figure['unit']}")
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "measurements.json").write_text(json.dumps(_MEASURED, indent=2) + "\n")
