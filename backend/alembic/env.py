"""Alembic environment: the URL comes from the application settings.

Precedence: a URL handed in programmatically (config.attributes["url"], used
by the tests), then sqlalchemy.url / `-x url=...`, then the app's Settings
(DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD).

Migrations run as the owner role. With APP_DB_USER set (the prod stack's migrate service), an
upgrade then creates or updates that role, with APP_DB_PASSWORD, and lets it read and write
the app's tables and nothing else: no DDL, no roles, not superuser. It runs on every upgrade,
so a volume made before the role existed gets it too, and its password follows the secret.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, pool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import DRIVER, Settings, settings_or_exit
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
        return settings_or_exit().SQLALCHEMY_DATABASE_URI
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


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def grant_app_role(connection: Connection, settings: Settings) -> None:
    """Create or update the app's role: DML on the tables, USAGE on the sequences, of those
    that exist and (default privileges) of those that later migrations create; the
    migrations' bookkeeping table is read-only to it."""
    role = quote_ident(settings.APP_DB_USER)
    owner = quote_ident(connection.exec_driver_sql("SELECT current_user").scalar_one())
    database = quote_ident(connection.exec_driver_sql("SELECT current_database()").scalar_one())
    password = quote_literal(settings.APP_DB_PASSWORD.get_secret_value())
    exists = connection.exec_driver_sql(
        f"SELECT 1 FROM pg_roles WHERE rolname = {quote_literal(settings.APP_DB_USER)}"
    ).scalar_one_or_none()
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
    statements = [
        f"{'ALTER' if exists else 'CREATE'} ROLE {role} WITH {attributes} PASSWORD {password}",
        f"REVOKE CREATE, TEMPORARY ON DATABASE {database} FROM PUBLIC, {role}",
        f"GRANT CONNECT ON DATABASE {database} TO {role}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE ON SEQUENCES TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
    ]
    for statement in statements:
        connection.exec_driver_sql(statement)


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
        settings = settings_or_exit()
        if settings.APP_DB_USER:
            grant_app_role(connection, settings)


async def run_migrations_online() -> None:
    args = connect_kwargs(settings_or_exit())
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
