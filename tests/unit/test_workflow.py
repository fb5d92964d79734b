"""The GitHub Actions workflow: actionlint finds nothing in it, and it runs what our users
run, in the same order: plain `pip`, `inv` and `python -m pytest` commands, the ones
.ci/run and the README's CI snippet use."""

import json
import re
import shlex
import shutil
import subprocess

import pytest
import yaml
from invoke import Collection

import tasks
from tests.helpers import ROOT

WORKFLOW = ROOT / ".github/workflows/ci.yml"
INSTALL = "pip install -r requirements.txt"
# What the prod job has to run, in this order (other plain commands may sit in between).
PROD_PIPELINE = [
    INSTALL,
    "inv setup",
    "inv build --prod",
    "inv up --prod",
    "inv migrate --prod",
    "inv smoke --prod",
    "python -m pytest tests/e2e -k prod",
    "inv down --prod",
]
SHELL_SYNTAX = re.compile(r"&&|\|\||[;|`<>]|\$\(|\n")


def actionlint(*paths, cwd=ROOT):
    """actionlint's findings (a list of dicts) for the given workflow files."""
    binary = shutil.which("actionlint")
    assert binary, "actionlint not found: pip install -r requirements.txt"
    result = subprocess.run(
        [binary, "-no-color", "-format", "{{json .}}", *map(str, paths)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout or "[]")


def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def run_steps(job):
    return [step for step in workflow()["jobs"][job]["steps"] if "run" in step]


def command(run):
    """A run step as the plain command it stands for: `sudo <path>/inv ...` counts as `inv ...`."""
    words = shlex.split(run)
    if words[0] == "sudo":
        words = words[1:]
        words[0] = words[0].rsplit("/", 1)[-1]
    return " ".join(words)


def in_order(wanted, commands):
    """The first command of `wanted` missing from `commands` in that order (starting
    with it is enough: `inv setup --test-tools` is an `inv setup`), or None."""
    position = 0
    for item in wanted:
        found = next(
            (i for i in range(position, len(commands)) if commands[i] == item or commands[i].startswith(item + " ")),
            None,
        )
        if found is None:
            return item
        position = found + 1
    return None


def test_actionlint_finds_nothing_in_the_workflow():
    findings = actionlint(WORKFLOW.relative_to(ROOT))
    assert findings == [], "\n".join(f"{f['filepath']}:{f['line']}: {f['message']}" for f in findings)


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text()
        .replace("runs-on: ubuntu-24.04", "runs-on: [ubuntu-24.04]\n    continue-on-eror: true", 1)
        .replace("${{ github.ref }}", "${{ github.reff }}")
    )
    messages = " ".join(f["message"] for f in actionlint(broken, cwd=tmp_path))
    assert "continue-on-eror" in messages and "reff" in messages


def test_every_run_step_is_one_plain_command():
    jobs = workflow()["jobs"]
    assert set(jobs) == {"lint-and-unit", "prod"}
    for job in jobs:
        for step in run_steps(job):
            run = step["run"].strip()
            assert not SHELL_SYNTAX.search(run), f"{job}: not one plain command: {run!r}"
            assert command(run).split()[0] in ("pip", "inv", "python"), f"{job}: {run!r}"
            if command(run).startswith("python"):
                assert command(run).startswith("python -m pytest "), f"{job}: {run!r}"


def test_prod_job_runs_the_pipeline_in_order():
    commands = [command(step["run"]) for step in run_steps("prod")]
    missing = in_order(PROD_PIPELINE, commands)
    assert missing is None, f"the prod job lacks `{missing}` (in this order: {PROD_PIPELINE}); it runs {commands}"
    assert "inv setup --test-tools" in commands, "the browser test needs chromium: inv setup --test-tools"


def test_prod_job_always_stops_the_stack_and_uploads_the_reports():
    steps = workflow()["jobs"]["prod"]["steps"]
    down = next(i for i, step in enumerate(steps) if command(step.get("run", "x")) == "inv down --prod")
    assert steps[down].get("if") == "always()"
    upload = next(i for i, step in enumerate(steps) if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload > down and steps[upload].get("if") == "always()"
    assert steps[upload]["with"]["path"].rstrip("/") == "reports"


def test_lint_job_runs_lint_the_audit_and_the_unit_tests():
    commands = [command(step["run"]) for step in run_steps("lint-and-unit")]
    assert in_order([INSTALL, "inv setup", "inv lint", "inv audit", "inv test --unit"], commands) is None, commands


def test_setup_python_is_3_11_and_triggers_cover_pushes_and_pull_requests():
    data = workflow()
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers and "pull_request" in triggers
    for job in data["jobs"].values():
        [setup_python] = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert str(setup_python["with"]["python-version"]) == "3.11"


def test_workflow_stays_aligned_with_ci_run_and_the_readme():
    """The same requirements as ./inv installs (which .ci/run and the README use), the README's
    CI snippet in the same order, and every `inv` task the workflow names exists."""
    assert '-r "$root/requirements.txt"' in (ROOT / "inv").read_text()
    snippet = re.search(r"In CI:\s*```sh\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert snippet, "README has no `In CI:` block for the production stack"
    readme_commands = [c.strip() for c in snippet.group(1).split("&&")]
    commands = [command(step["run"]) for step in run_steps("prod")]
    assert in_order(readme_commands, commands) is None, (readme_commands, commands)
    known = Collection.from_module(tasks).task_names
    named = {
        c.split()[1]
        for job in ("lint-and-unit", "prod")
        for c in map(command, (s["run"] for s in run_steps(job)))
        if c.startswith("inv ")
    }
    assert not named - set(known), f"the workflow runs tasks that do not exist: {sorted(named - set(known))}"


@pytest.mark.parametrize(
    "commands, missing",
    [
        (PROD_PIPELINE, None),
        ([c for c in PROD_PIPELINE if c != "inv smoke --prod"], "inv smoke --prod"),
        ([PROD_PIPELINE[0], PROD_PIPELINE[1], PROD_PIPELINE[3], PROD_PIPELINE[2], *PROD_PIPELINE[4:]], "inv up --prod"),
    ],
)
def test_the_order_check_notices_a_missing_or_misplaced_command(commands, missing):
    assert in_order(PROD_PIPELINE, commands) == missing
