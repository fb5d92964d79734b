"""Logic behind the Invoke tasks in tasks.py: compose command assembly, engine and
environment checks, base images. Functions take the Invoke context so tests can
drive them with a MockContext."""
from pathlib import Path

from invoke.exceptions import Exit

ROOT = Path(__file__).resolve().parent.parent


class Problem(Exit):
    """An expected failure. Its message is one line: what is wrong and how to fix it.
    Uncaught, Invoke prints it without a traceback and exits 1."""

    def __str__(self):
        return self.message
