from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
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
