"""The code's Alembic revisions, read once per process: /health compares the database's
revision with the head."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic.script import ScriptDirectory

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


@dataclass(frozen=True)
class CodeRevisions:
    head: str
    known: frozenset[str]


@lru_cache(maxsize=1)
def code_revisions() -> CodeRevisions:
    """The head (one: two heads are a merge left undone, which fails here) and every revision."""
    scripts = ScriptDirectory(str(ALEMBIC_DIR))
    head = scripts.get_current_head()
    assert head is not None, f"no migrations in {ALEMBIC_DIR}"
    return CodeRevisions(head=head, known=frozenset(script.revision for script in scripts.walk_revisions()))
