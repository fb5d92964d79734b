"""Engine and session factory."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings


def connect_args(settings: Settings) -> dict[str, object]:
    """libpq parameters that keep a dead or unreachable database from hanging us."""
    args: dict[str, object] = {
        "connect_timeout": settings.DB_CONNECT_TIMEOUT,
        "application_name": settings.PROJECT_NAME[:63],
        # Notice a peer that vanished without closing the socket.
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    if settings.DB_STATEMENT_TIMEOUT_MS:
        args["options"] = f"-c statement_timeout={settings.DB_STATEMENT_TIMEOUT_MS}"
    return args


def create_db_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.SQLALCHEMY_DATABASE_URI,
        pool_pre_ping=True,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT,
        pool_recycle=settings.DB_POOL_RECYCLE,
        connect_args=connect_args(settings),
        echo=False,
    )


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, autoflush=False, expire_on_commit=False)
