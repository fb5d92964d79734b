from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import URL

from app.models import Base
from tests.conftest import alembic_config


def test_schema_is_at_head_and_matches_models(database_url: URL) -> None:
    cfg = alembic_config(database_url)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            indexes = {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("todos")}
            assert indexes["ix_todos_created_at"] == ["created_at"]
    finally:
        engine.dispose()


def test_upgrade_head_again_is_a_noop(database_url: URL) -> None:
    cfg = alembic_config(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            before = conn.scalar(text("SELECT version_num FROM alembic_version"))
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == before
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        engine.dispose()


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if conn.scalar(text("SELECT to_regclass('alembic_version')")) is None:
            return None
        return conn.scalar(text("SELECT version_num FROM alembic_version"))


def _add_rows(engine: Engine, count: int) -> int:
    """`count` todos when the table exists at the database's revision; how many were added."""
    with engine.begin() as conn:
        if "todos" not in inspect(conn).get_table_names():
            return 0
        conn.execute(
            text("INSERT INTO todos (title, done) SELECT 'row ' || n, n % 2 = 0 FROM generate_series(1, :n) n"),
            {"n": count},
        )
        return count


def test_every_migration_goes_up_down_to_base_and_up_again_on_a_database_holding_rows(
    empty_database_url: URL,
) -> None:
    """One revision at a time, each step on a database that holds rows: a migration that only
    works on empty tables (a NOT NULL column without a default, a unique index the rows break)
    fails here. At the end the schema matches the models again."""
    cfg = alembic_config(empty_database_url)
    scripts = ScriptDirectory.from_config(cfg)
    upward = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert upward, "no migrations"
    engine = create_engine(empty_database_url)
    try:
        for revision in upward:
            command.upgrade(cfg, revision)
            assert _revision(engine) == revision
            _add_rows(engine, 500)
        for revision in reversed(upward):
            _add_rows(engine, 500)
            command.downgrade(cfg, "-1")
            assert _revision(engine) == scripts.get_revision(revision).down_revision
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        added = 0
        for revision in upward:
            command.upgrade(cfg, revision)
            added += _add_rows(engine, 500)
        assert _revision(engine) == scripts.get_current_head()
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
            assert conn.scalar(text("SELECT count(*) FROM todos")) == added > 0
    finally:
        engine.dispose()
