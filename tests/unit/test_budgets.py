import json

import pytest
from invoke import MockContext, Result

import tasks
from stackctl import budgets, images, sbom, stack
from stackctl.bench.figures import Figures
from stackctl.compose import stack_target
from tests.helpers import project_config


def measure(**overrides):
    figures = dict(
        service="backend",
        image="todostack/backend:latest",
        size_mb=150.0,
        base_image="python:3.13-slim",
        base_mb=120.0,
        build_s=30.0,
        budget_total_mb=200,
        budget_over_base_mb=80,
        budget_build_s=60,
    )
    return budgets.ImageMeasure(**{**figures, **overrides})


def test_within_budget_has_no_breach():
    assert budgets.judge(measure()).breaches == []


def test_each_budget_can_be_breached():
    judged = budgets.judge(measure(size_mb=250.0, build_s=61.0))
    assert judged.breaches == [
        "size 250.0 MB > budget 200 MB",
        "over base 130.0 MB > budget 80 MB",
        "build time 61.0 s > budget 60 s",
    ]


def test_unknown_base_or_budget_is_not_judged():
    judged = budgets.judge(measure(base_mb=None, budget_total_mb=None, build_s=None))
    assert judged.over_base_mb is None and judged.breaches == []


def test_table_shows_figures_and_verdicts():
    text = budgets.table(
        [
            budgets.judge(measure()),
            budgets.judge(measure(service="frontend", image="todostack/frontend:latest", size_mb=300.0)),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["image", "size", "MB"]
    assert "150.0" in lines[2] and "30.0" in lines[2] and lines[2].endswith("ok")
    assert "BREACH: size 300.0 MB > budget 200 MB" in lines[3]


def test_a_budget_is_a_maximum_a_minimum_or_both():
    assert budgets.budget_breaches(12.0, {"max": 10}, "s", budgets.number) == ["12.0 s > 10 s"]
    assert budgets.budget_breaches(700.0, {"min": 1000}, "req/s", budgets.number) == ["700 req/s < 1000 req/s"]
    assert budgets.budget_breaches(5.0, {"min": 1, "max": 10}, "s", budgets.number) == []
    assert budgets.budget_breaches(None, {"max": 10}, "s", budgets.number) == []
    assert budgets.budget_breaches(12.0, None, "s", budgets.number) == []


def test_report_marks_the_breach(tmp_path):
    path = budgets.write_report(tmp_path / "r.json", [budgets.judge(measure(size_mb=250.0))], no_cache=True)
    report = json.loads(path.read_text())
    assert report["ok"] is False and report["no_cache"] is True
    assert report["images"][0]["breaches"][0].startswith("size 250.0 MB")
    assert report["images"][0]["over_base_mb"] == 130.0


@pytest.fixture
def build_task(monkeypatch):
    """tasks.build --prod with building, measuring and the SBOMs replaced: returns (call, the
    measures written to the report, then the images whose SBOMs were written)."""
    written = []
    monkeypatch.setattr(tasks, "_ready", lambda c, prod: stack_target(c, prod))
    monkeypatch.setattr(stack, "check_services", lambda c, target, wanted: ["backend"])
    monkeypatch.setattr(images, "built_images", lambda c, target: {"backend": "todostack/backend:latest"})
    monkeypatch.setattr(images, "build_one", lambda c, target, service, no_cache: 200.0)
    monkeypatch.setattr(
        images, "measure", lambda c, service, image, build_s: measure(build_s=build_s, budget_build_s=None)
    )
    monkeypatch.setattr(budgets, "write_report", lambda path, measures, **context: written.extend(measures) or path)
    monkeypatch.setattr(
        images, "stack_images", lambda c, target: {"postgres": "postgres:17", "backend": "todostack/backend:latest"}
    )
    monkeypatch.setattr(sbom, "write_all", lambda c, shipped: written.append(shipped) or [])
    return lambda **flags: tasks.build(MockContext(config=project_config()), prod=True, **flags), written


def test_a_build_with_the_cache_is_held_to_the_warm_build_time(build_task):
    call, written = build_task
    with pytest.raises(tasks.Problem, match="budget breached by backend"):
        call()
    assert written[0].budget_build_s == 60 and written[0].breaches == ["build time 200.0 s > budget 60 s"]


def test_a_cold_build_is_timed_not_judged_the_bench_holds_cold_build_time(build_task, capsys):
    call, written = build_task
    call(no_cache=True)
    assert written[0].build_s == 200.0 and written[0].budget_build_s is None and written[0].breaches == []
    assert "every image within budget" in capsys.readouterr().out


def test_a_prod_build_writes_the_sboms_of_the_images_it_was_asked_for(build_task):
    call, written = build_task
    with pytest.raises(tasks.Problem, match="budget breached"):  # written before the verdict
        call()
    assert written[-1] == {"backend": "todostack/backend:latest"}  # check_services: backend only


def test_one_cold_build_budget_the_bench_total():
    config = project_config()
    assert "cold_build_s" not in config.build
    assert dict(config.bench.budgets.cold_build_total_s) == {"max": 120}


def test_built_images_one_service_per_image():
    config = {
        "services": {
            "postgres": {"image": "postgres:17"},
            "migrate": {"image": "todostack/backend:latest", "build": {}},
            "backend": {"image": "todostack/backend:latest", "build": {}},
            "frontend": {"build": {}},
        }
    }
    c = MockContext(config=project_config(), run=Result(stdout=json.dumps(config)), repeat=True)
    assert images.built_images(c, stack_target(c, prod=True)) == {
        "backend": "todostack/backend:latest",
        "frontend": "todostack-prod-frontend",
    }


def test_container_status():
    assert stack.status({"State": "running", "Health": "healthy"}) == "healthy"
    assert stack.status({"State": "running", "Health": ""}) == "running"
    assert stack.status({"State": "exited", "ExitCode": 0}) == "completed"
    assert stack.status({"State": "exited", "ExitCode": 3}) == "exited (exit 3)"


# -- the bench's medians -------------------------------------------------------


def figures(**samples):
    """Figures with these samples per key; unit s for keys ending in _s, else req/s."""
    result = Figures()
    for key, values in samples.items():
        for value in values:
            result.add(key, key.replace("_", " "), "s" if key.endswith("_s") else "req/s", "test", value)
    return result


def judge(measured, limits):
    return budgets.judge_medians(measured.metrics.values(), limits)


def bench_report(measured, breaches, notes=()):
    return budgets.bench_report(
        measured.metrics.values(),
        breaches,
        quick=True,
        runs=1,
        sections=["reload"],
        load={"duration_s": 5, "connections": 20, "threads": 1, "warmup_s": 2, "rows": 20},
        machine={
            "cpus": 2,
            "memory_gib": 23.5,
            "docker": "20.10.24",
            "compose": "2.40.0",
            "kernel": "6.1",
            "loadavg_start": 1.5,
            "other_containers": 3,
        },
        notes=list(notes),
    )


def test_budgets_hold_the_median():
    measured = figures(
        rebuild_backend_s=[9.0, 30.0, 8.0],
        api_list_via_frontend_rps=[900.0, 1200.0, 1100.0],
        vite_hmr_s=[0.9, 1.5, 1.2],
    )
    breaches = judge(
        measured,
        {"rebuild_backend_s": {"max": 10}, "api_list_via_frontend_rps": {"min": 1000}, "vite_hmr_s": {"max": 1}},
    )
    assert breaches == ["vite_hmr_s 1.2 s > 1 s"]
    metrics = measured.metrics
    assert metrics["rebuild_backend_s"].verdict == "ok" and metrics["api_list_via_frontend_rps"].verdict == "ok"
    assert metrics["vite_hmr_s"].verdict == "BREACH: 1.2 s > 1 s"


def test_a_minimum_can_be_breached():
    breaches = judge(figures(api_list_via_frontend_rps=[700.0]), {"api_list_via_frontend_rps": {"min": 1000}})
    assert breaches == ["api_list_via_frontend_rps 700 req/s < 1000 req/s"]


def test_unmeasured_budgets_and_unbudgeted_figures_are_not_judged():
    measured = figures(up_from_stopped_s=[3.0])
    assert judge(measured, {"vite_hmr_s": {"max": 1}}) == []
    assert measured.metrics["up_from_stopped_s"].verdict is None


def test_failed_requests_are_a_breach():
    measured = figures(api_create_direct_rps=[500.0])
    metric = measured.metrics["api_create_direct_rps"]
    metric.errors, metric.requests = 12, 2500
    assert judge(measured, {}) == ["api_create_direct_rps 12 of 2500 requests failed"]


def test_json_report_has_every_figure_with_median_min_max_and_samples(tmp_path):
    measured = figures(backend_reload_s=[1.0, 3.0, 2.0], vite_hmr_s=[0.5])
    breaches = judge(measured, {"backend_reload_s": {"max": 2}})
    data = json.loads(budgets.write_json(tmp_path / "bench.json", bench_report(measured, breaches)).read_text())
    assert data["ok"] is True and data["breaches"] == [] and data["mode"] == "quick"
    assert data["metrics"]["backend_reload_s"] == {
        "label": "backend reload s",
        "unit": "s",
        "section": "test",
        "samples": [1.0, 3.0, 2.0],
        "budget": {"max": 2},
        "verdict": "ok",
        "errors": 0,
        "requests": 0,
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "runs": 3,
    }
    assert data["metrics"]["vite_hmr_s"]["budget"] is None
    assert json.loads(budgets.as_json(bench_report(measured, breaches)))["metrics"] == data["metrics"]


def test_table_lists_each_figure_under_its_section_with_its_verdict():
    measured = figures(backend_reload_s=[2.5], vite_hmr_s=[0.25])
    breaches = judge(measured, {"backend_reload_s": {"max": 2}})
    lines = budgets.bench_table(bench_report(measured, breaches, notes=["backend direct: skipped"])).splitlines()
    assert "2 CPUs" in lines[0] and "quick" in lines[0] and "Docker 20.10.24" in lines[0]
    assert lines[2].split() == ["metric", "median", "min", "max", "unit", "budget", "verdict"]
    assert lines[4] == "[test]"
    assert lines[5].split() == [
        "backend",
        "reload",
        "s",
        "2.5",
        "2.5",
        "2.5",
        "s",
        "<=",
        "2",
        "BREACH:",
        "2.5",
        "s",
        ">",
        "2",
        "s",
    ]
    assert lines[6].split() == ["vite", "hmr", "s", "0.25", "0.25", "0.25", "s", "-"]
    assert lines[-2] == "note: backend direct: skipped"
    assert lines[-1] == "budgets: BREACHED: backend_reload_s 2.5 s > 2 s"


def test_project_budgets_are_the_issue_targets():
    limits = project_config().bench.budgets
    assert dict(limits.rebuild_backend_s) == dict(limits.rebuild_frontend_s) == {"max": 10}
    assert dict(limits.up_from_stopped_s) == dict(limits.up_from_nothing_s) == {"max": 15}
    assert dict(limits.backend_reload_s) == {"max": 2} and dict(limits.vite_hmr_s) == {"max": 1}
    assert dict(limits.cold_build_total_s) == {"max": 120}
    assert dict(limits.api_list_via_frontend_rps) == {"min": 1000}
    assert dict(limits.api_list_via_frontend_p99_ms) == {"max": 50}


def test_stack_images_are_every_image_the_stack_runs_once():
    config = {
        "services": {
            "postgres": {"image": "postgres:17"},
            "migrate": {"image": "todostack/backend:latest", "build": {}},
            "backend": {"image": "todostack/backend:latest", "build": {}},
        }
    }
    c = MockContext(config=project_config(), run=Result(stdout=json.dumps(config)), repeat=True)
    assert images.stack_images(c, stack_target(c, prod=True)) == {
        "backend": "todostack/backend:latest",
        "postgres": "postgres:17",
    }
