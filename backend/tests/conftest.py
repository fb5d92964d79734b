"""Test fixtures: a throwaway PostgreSQL database per test session.

The server comes from TEST_DATABASE_URL if set, else from the app settings
(DATABASE_URL, or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME). The role
needs CREATEDB. A database named test_<random> is created, migrated with
Alembic and dropped at the end. If the server is unreachable the session
errors out: nothing is skipped.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from app.core.config import Settings
from app.main import create_app

BACKEND_DIR = Path(__file__).resolve().parents[1]


def server_url() -> URL:
    """The server's URL for the tests' own (synchronous, psycopg) connections; the app
    under test turns it into its asyncpg URL."""
    raw = os.environ.get("TEST_DATABASE_URL")
    url = make_url(raw) if raw else Settings(_env_file=None).SQLALCHEMY_DATABASE_URI
    return url.set(drivername="postgresql+psycopg")


def _admin_engine(url: URL) -> Engine:
    """An AUTOCOMMIT engine on the configured database, or on `postgres`."""
    last_error: Exception | None = None
    for database in dict.fromkeys([url.database, "postgres"]):
        engine = create_engine(
            url.set(database=database),
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 5},
        )
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return engine
        except Exception as exc:  # noqa: BLE001
            engine.dispose()
            last_error = exc
    raise RuntimeError(
        f"cannot reach the test PostgreSQL server at {url.render_as_string()}: {last_error}"
    ) from last_error


def url_str(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def alembic_config(url: URL) -> Config:
    cfg = Config(str(BACKEND_DIR / "alembic.ini"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


@contextmanager
def new_database() -> Iterator[URL]:
    """A database of its own on the test server, empty (no migration run), dropped afterwards."""
    base = server_url()
    admin = _admin_engine(base)
    name = f"test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[URL]:
    with new_database() as url:
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture
def empty_database_url() -> Iterator[URL]:
    """A database no migration has touched, for one test."""
    with new_database() as url:
        yield url


def make_settings(url: URL | str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": url_str(url) if isinstance(url, URL) else url,
        "CORS_ORIGINS": "http://localhost:3000",
        "LOG_FORMAT": "plain",
        # The limiter runs (against the stack's Redis) in every test, but only the rate
        # limiter's own tests, which set a limit, are ever refused.
        "RATE_LIMIT_REQUESTS": 1_000_000_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def settings(database_url: URL) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def db_engine(database_url: URL) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty the tables after each test that used the test database."""
    engine = request.getfixturevalue("db_engine") if "database_url" in request.fixturenames else None
    yield
    if engine is not None:
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE todos RESTART IDENTITY"))


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
