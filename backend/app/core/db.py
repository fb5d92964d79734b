"""Engine and session factory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.core.config import Settings


def connect_args(settings: Settings) -> dict[str, object]:
    """asyncpg parameters: a bounded connect, and a server-side statement timeout."""
    server_settings = {"application_name": settings.PROJECT_NAME[:63]}
    if settings.DB_STATEMENT_TIMEOUT_MS:
        server_settings["statement_timeout"] = str(settings.DB_STATEMENT_TIMEOUT_MS)
    return {"timeout": settings.DB_CONNECT_TIMEOUT, "server_settings": server_settings}


def create_db_engine(settings: Settings) -> AsyncEngine:
    # No pool_pre_ping: it costs a round trip per checkout. A connection the server has
    # closed fails its first statement, is discarded by the pool, and that request
    # answers 503 (see main.database_error_handler); the next one gets a fresh connection.
    return create_async_engine(
        settings.SQLALCHEMY_DATABASE_URI,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        pool_recycle=settings.DB_POOL_RECYCLE,
        connect_args=connect_args(settings),
    )


class RequestSession(AsyncSession):
    """A session that knows whether a COMMIT was sent and not yet answered: if the
    request is cancelled then (its deadline passed), nobody can say whether it committed."""

    commit_in_flight = False

    async def commit(self) -> None:
        self.commit_in_flight = True
        await super().commit()
        self.commit_in_flight = False


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[RequestSession]:
    return async_sessionmaker(bind=engine, class_=RequestSession, autoflush=False, expire_on_commit=False)
