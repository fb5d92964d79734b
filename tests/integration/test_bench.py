"""`inv bench --quick --json` end to end on the real engine: every figure measured and
numeric, the report written, nothing left behind. Speed is not asserted (that is what
`inv bench --check` is for); the figures are recorded in the measurements summary.

Runs `inv bench` in a copy of the working tree, so the developer's reports/bench.json
stays as it is (the bench itself then works in a copy of that copy, under its own
project names)."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from stackctl.copies import copy_tree
from tests.helpers import ROOT, inv

STACK_SERVICES = ("postgres", "redis", "backend", "frontend")
SECTIONS = {
    "build": ["cold_build_backend_s", "cold_build_frontend_s", "cold_build_total_s"],
    "rebuild": ["rebuild_backend_s", "rebuild_frontend_s"],
    "sizes": ["size_backend_mb", "size_over_base_backend_mb", "size_frontend_mb", "size_over_base_frontend_mb"],
    "load": [f"{kind}_{service}_mib" for kind in ("mem_idle", "mem_load") for service in STACK_SERVICES]
    + [f"cpu_load_{who}_pct" for who in (*STACK_SERVICES, "wrk", "host")]
    + [
        f"api_{endpoint}_{path}_{figure}"
        for endpoint in ("list", "create")
        for path in (("via_frontend", "direct") if os.geteuid() == 0 else ("via_frontend",))
        for figure in ("rps", "p50_ms", "p99_ms", *(f"cpu_ms_{who}" for who in STACK_SERVICES))
    ]
    # The same list load with the rate limiter off: what the limiter costs (Redis idle then).
    + [
        f"api_list_via_frontend_unlimited_{figure}"
        for figure in ("rps", "p50_ms", "p99_ms", "cpu_ms_postgres", "cpu_ms_backend", "cpu_ms_frontend")
    ],
    "up": ["up_from_stopped_s", "up_from_nothing_s"],
    "reload": ["backend_reload_s", "vite_hmr_s"],
}


@pytest.fixture(scope="module")
def bench_run():
    assert (ROOT / ".env").is_file(), "no .env: run `inv setup` first"
    (ROOT / ".cache").mkdir(exist_ok=True)
    checkout = copy_tree(Path(tempfile.mkdtemp(prefix="bench-it-", dir=ROOT / ".cache")))
    checkout.chmod(0o755)
    shutil.copy(ROOT / ".env", checkout / ".env")
    try:
        result = inv("bench", "--quick", "--json", cwd=checkout, timeout=900)
        report_file = checkout / "reports/bench.json"
        yield result, (json.loads(report_file.read_text()) if report_file.is_file() else None), checkout
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


def test_bench_quick_json_succeeds_and_prints_the_report(bench_run):
    result, report, _ = bench_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads(result.stdout) == report
    assert report["mode"] == "quick" and report["runs"] == 1 and report["sections"] == list(SECTIONS)


def test_every_figure_is_present_numeric_and_positive(bench_run, measure):
    _, report, _ = bench_run
    assert report is not None, "no reports/bench.json written"
    metrics = report["metrics"]
    missing = [key for keys in SECTIONS.values() for key in keys if key not in metrics]
    assert not missing, f"figures missing from the report: {missing}"
    for section, keys in SECTIONS.items():
        for key in keys:
            figure = metrics[key]
            assert figure["section"] == section and figure["runs"] >= 1, key
            for stat in ("median", "min", "max"):
                assert isinstance(figure[stat], (int, float)) and figure[stat] > 0, (key, stat, figure)
            assert figure["min"] <= figure["median"] <= figure["max"], key
            measure(f"bench: {figure['label']}", figure["median"], figure["unit"])


def test_load_figures_come_from_successful_requests(bench_run):
    _, report, _ = bench_run
    for key, figure in report["metrics"].items():
        if key.startswith("api_"):
            assert figure["requests"] > 0 and figure["errors"] == 0, (key, figure)


def test_budgets_are_judged_and_the_machine_described(bench_run):
    _, report, _ = bench_run
    judged = {key for key, figure in report["metrics"].items() if figure["verdict"]}
    assert {
        "cold_build_total_s",
        "rebuild_backend_s",
        "up_from_nothing_s",
        "backend_reload_s",
        "vite_hmr_s",
        "api_list_via_frontend_rps",
        "api_list_via_frontend_p99_ms",
    } <= judged
    assert report["ok"] == (not report["breaches"])
    assert report["machine"]["cpus"] >= 1 and report["machine"]["docker"] not in ("", "?")


def test_nothing_is_left_behind(bench_run):
    _, report, checkout = bench_run
    project = report["project"]
    for name in (project, f"{project}-prod"):
        label = f"label=com.docker.compose.project={name}"
        for kind in ("ps -a", "volume ls", "network ls"):
            listing = subprocess.run(["docker", *kind.split(), "-q", "--filter", label], capture_output=True, text=True)
            assert listing.stdout.strip() == "", f"{kind} still lists {name}"
    for image in (
        f"todostack/backend:{project}",
        f"todostack/frontend:{project}",
        f"{project}-backend",
        f"{project}-frontend",
    ):
        assert subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0, image
    assert not list((checkout / ".cache").glob(f"{project}-*"))
