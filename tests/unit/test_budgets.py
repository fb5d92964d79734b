import json

from invoke import MockContext, Result

from stackctl.compose import stack_target
from stackctl import budgets, images, stack
from tests.helpers import project_config


def measure(**overrides):
    figures = dict(service="backend", image="todostack/backend:latest", size_mb=150.0,
                   base_image="python:3.13-slim", base_mb=120.0, build_s=30.0,
                   budget_total_mb=200, budget_over_base_mb=80, budget_build_s=60)
    return budgets.ImageMeasure(**{**figures, **overrides})


def test_within_budget_has_no_breach():
    assert budgets.judge(measure()).breaches == []


def test_each_budget_can_be_breached():
    judged = budgets.judge(measure(size_mb=250.0, build_s=61.0))
    assert judged.breaches == ["size 250.0 MB > budget 200 MB", "over base 130.0 MB > budget 80 MB",
                               "build time 61.0 s > budget 60 s"]


def test_unknown_base_or_budget_is_not_judged():
    judged = budgets.judge(measure(base_mb=None, budget_total_mb=None, build_s=None))
    assert judged.over_base_mb is None and judged.breaches == []


def test_table_shows_figures_and_verdicts():
    text = budgets.table([budgets.judge(measure()), budgets.judge(measure(service="frontend",
                          image="todostack/frontend:latest", size_mb=300.0))])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["image", "size", "MB"]
    assert "150.0" in lines[2] and "30.0" in lines[2] and lines[2].endswith("ok")
    assert "BREACH: size 300.0 MB > budget 200 MB" in lines[3]


def test_report_marks_the_breach(tmp_path):
    path = budgets.write_report(tmp_path / "r.json", [budgets.judge(measure(size_mb=250.0))], no_cache=True)
    report = json.loads(path.read_text())
    assert report["ok"] is False and report["no_cache"] is True
    assert report["images"][0]["breaches"][0].startswith("size 250.0 MB")
    assert report["images"][0]["over_base_mb"] == 130.0


def test_built_images_one_service_per_image():
    config = {"services": {"postgres": {"image": "postgres:17"},
                           "migrate": {"image": "todostack/backend:latest", "build": {}},
                           "backend": {"image": "todostack/backend:latest", "build": {}},
                           "frontend": {"build": {}}}}
    c = MockContext(config=project_config(), run=Result(stdout=json.dumps(config)), repeat=True)
    assert images.built_images(c, stack_target(c, prod=True)) == {"backend": "todostack/backend:latest",
                                                 "frontend": "todostack-prod-frontend"}


def test_container_status():
    assert stack.status({"State": "running", "Health": "healthy"}) == "healthy"
    assert stack.status({"State": "running", "Health": ""}) == "running"
    assert stack.status({"State": "exited", "ExitCode": 0}) == "completed"
    assert stack.status({"State": "exited", "ExitCode": 3}) == "exited (exit 3)"
