"""`inv lint`'s alembic check for real: clean on the tree as it is, failing on a model changed
without its migration; its throwaway PostgreSQL and check containers are gone afterwards. On a
copy of the tree (its own dev backend image, removed with it)."""

import json
import subprocess

import pytest
from invoke import Context

from stackctl import migrations
from stackctl.copies import TreeCopy
from tests.helpers import project_config


@pytest.fixture(scope="module")
def tree():
    copy = TreeCopy(Context(project_config()), "alembic-check")
    yield copy
    copy.remove()


def containers_named(prefix):
    out = subprocess.run(
        ["docker", "ps", "--all", "--format", "{{json .}}"], capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line)["Names"] for line in out.splitlines() if json.loads(line)["Names"].startswith(prefix)]


def test_the_models_and_the_migrations_agree(tree):
    result = migrations.alembic_check(tree.ctx, tree.target(), tree.path / "backend")
    assert result.ok, result.stdout + result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr
    assert containers_named(f"{tree.target().project}-alembic-check-") == []


def test_a_model_changed_without_its_migration_fails_the_check(tree):
    models = tree.path / "backend" / "app" / "models.py"
    line = "    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))\n"
    text = models.read_text()
    assert line in text
    models.write_text(text.replace(line, line + "    note: Mapped[str | None] = mapped_column(String(50))\n"))
    try:
        result = migrations.alembic_check(tree.ctx, tree.target(), tree.path / "backend")
    finally:
        models.write_text(text)
    assert not result.ok
    output = result.stdout + result.stderr
    assert "New upgrade operations detected" in output and "'note'" in output
    assert containers_named(f"{tree.target().project}-alembic-check-") == []
