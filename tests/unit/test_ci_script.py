""".ci/run's exit status is the README test command's: a failing step fails CI."""

import shutil
import subprocess

import pytest

from tests.helpers import ROOT

FAKE_INV = """#!/bin/sh
echo "inv $*"
case "$1" in
  setup) exit "${SETUP_EXIT:-0}" ;;
  test) exit "${TEST_EXIT:-0}" ;;
esac
"""


@pytest.mark.parametrize(
    "setup_exit, test_exit, expected",
    [(0, 0, 0), (3, 0, 3), (0, 4, 4)],
)
def test_ci_fails_when_setup_or_the_tests_fail(tmp_path, setup_exit, test_exit, expected):
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci/run", tmp_path / ".ci/run")
    inv = tmp_path / "inv"
    inv.write_text(FAKE_INV)
    inv.chmod(0o755)
    result = subprocess.run(
        ["bash", str(tmp_path / ".ci/run")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SETUP_EXIT": str(setup_exit), "TEST_EXIT": str(test_exit)},
        timeout=30,
    )
    assert result.returncode == expected, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ci: passed" if expected == 0 else f"ci: FAILED (exit {expected})"), result.stdout
    assert ("inv test" in result.stdout) == (setup_exit == 0)
