"""The database engines."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core.config import Settings


def connect_args(settings: Settings) -> dict[str, object]:
    """asyncpg parameters: a bounded connect, and a server-side statement timeout."""
    server_settings = {"application_name": settings.PROJECT_NAME[:63]}
    if settings.DB_STATEMENT_TIMEOUT_MS:
        server_settings["statement_timeout"] = str(settings.DB_STATEMENT_TIMEOUT_MS)
    return {"timeout": settings.DB_CONNECT_TIMEOUT, "server_settings": server_settings}


def create_db_engine(settings: Settings) -> AsyncEngine:
    # No pool_pre_ping: it costs a round trip per checkout. A connection the server has
    # closed fails its first statement and that request answers 503 (see
    # main.database_error_handler); SQLAlchemy then replaces every pooled connection.
    return create_async_engine(
        settings.SQLALCHEMY_DATABASE_URI,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        pool_recycle=settings.DB_POOL_RECYCLE,
        connect_args=connect_args(settings),
    )


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, without transactions: a single statement needs no BEGIN and ROLLBACK
    round trips (asyncpg then simply sends no BEGIN)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")
