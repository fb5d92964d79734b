"""Asking before a task destroys data: a question at a terminal, `--yes` without one."""

import sys

from . import Problem


def confirm(yes, question, consequence):
    """Return when `yes` is given or the user answers y; else a Problem: `consequence` says
    what the task would destroy (a one-line refusal without a terminal)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Problem(f"{consequence}; rerun with --yes to confirm")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise Problem("cancelled; nothing was changed")
