"""Test helpers: the project's Invoke configuration and running `inv` as a user would."""

import os
import re
import subprocess
import sys
from pathlib import Path

from invoke import Config

ROOT = Path(__file__).resolve().parent.parent


def project_config(**overrides):
    """The configuration tasks see (invoke.yaml), with overrides merged on top.
    Commands never read stdin: pytest captures it."""
    config = Config(project_location=str(ROOT), overrides={"run": {"in_stream": False}, **overrides})
    config.load_project()
    return config


def inv(*args, cwd=ROOT, env=None, timeout=900):
    """Run `inv ARGS` in a subprocess; returns the CompletedProcess (never raises on failure)."""
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_failure(result, expected):
    """An expected failure: non-zero exit, no traceback, one stderr line containing `expected`."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert expected in result.stderr.strip().splitlines()[-1], result.stderr


def readme_block(label):
    """The command in README.md's `<!-- LABEL -->` sh block, exactly as the README shows it."""
    match = re.search(rf"<!-- {label} -->\s*```sh\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert match, f"README has no {label} block"
    return match.group(1).strip()
