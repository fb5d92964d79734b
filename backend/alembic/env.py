"""Alembic environment: the URL comes from the application settings.

Precedence: a URL handed in programmatically (config.attributes["url"], used
by the tests), then sqlalchemy.url / `-x url=...`, then the app's Settings
(DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import DRIVER, Settings
from app.core.db import connect_kwargs
from app.models import Base

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> URL:
    url = config.attributes.get("url")
    if url is None:
        url = context.get_x_argument(as_dictionary=True).get("url")
    if url is None:
        url = config.get_main_option("sqlalchemy.url")
    if url is None:
        return Settings().SQLALCHEMY_DATABASE_URI
    return (make_url(url) if isinstance(url, str) else url).set(drivername=DRIVER)


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    args = connect_kwargs(Settings())
    # Migrations may legitimately run long statements (index builds).
    args["server_settings"].pop("statement_timeout", None)  # type: ignore[attr-defined]
    engine = create_async_engine(database_url(), poolclass=pool.NullPool, connect_args=args)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
