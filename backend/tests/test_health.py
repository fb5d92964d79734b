"""/health and behaviour while the database is down."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from app import __version__
from app.core.migrations import code_revisions
from app.main import create_app
from tests.conftest import alembic_config, make_settings
from tests.tcp_proxy import TcpProxy

DB_DOWN = {"detail": "Database unavailable"}


def test_health_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "connected"
    assert isinstance(body["db_latency_ms"], float)
    assert 0 <= body["db_latency_ms"] < 2000
    assert body["migrations"] == "current"
    assert body["version"] == __version__


def _down_client(database_url: str | URL, **overrides: object) -> Iterator[TestClient]:
    app = create_app(make_settings(database_url, **overrides))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def refused_client(closed_port: int) -> Iterator[TestClient]:
    """An app whose database port is closed: connections are refused."""
    yield from _down_client(f"postgresql+psycopg://app:secret@127.0.0.1:{closed_port}/app")


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s.getsockname()[1]


def _assert_degraded(client: TestClient, limit: float = 2.0) -> None:
    started = time.monotonic()
    response = client.get("/health")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json() == {
        "status": "degraded",
        "database": "unavailable",
        "db_latency_ms": None,
        "migrations": None,
        "redis": "connected",  # the rate limiter's Redis is up: only the database is down
        "version": __version__,
    }
    assert elapsed < limit, f"/health took {elapsed:.2f}s"


def test_health_503_fast_when_port_closed(refused_client: TestClient) -> None:
    _assert_degraded(refused_client)
    _assert_degraded(refused_client)  # and again, with whatever the pool kept


def test_health_503_within_2s_when_db_never_answers(blackhole_port: int) -> None:
    for client in _down_client(f"postgresql+psycopg://app:secret@127.0.0.1:{blackhole_port}/app"):
        _assert_degraded(client)


def test_health_503_within_2s_when_host_does_not_resolve() -> None:
    for client in _down_client("postgresql+psycopg://app:secret@db-host-that-does-not-exist.invalid:5432/app"):
        _assert_degraded(client)


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "/api/v1/todos", None),
        ("post", "/api/v1/todos", {"title": "x"}),
        ("get", "/api/v1/todos/1", None),
        ("patch", "/api/v1/todos/1", {"done": True}),
        ("delete", "/api/v1/todos/1", None),
    ],
)
def test_api_returns_clean_503_when_db_down(
    refused_client: TestClient, method: str, path: str, payload: dict | None
) -> None:
    kwargs = {"json": payload} if payload is not None else {}
    response = getattr(refused_client, method)(path, **kwargs)
    assert response.status_code == 503
    assert response.json() == DB_DOWN
    assert response.headers["content-type"] == "application/json"


def test_validation_still_422_when_db_down(refused_client: TestClient) -> None:
    assert refused_client.post("/api/v1/todos", json={"title": ""}).status_code == 422


def test_recovers_when_database_comes_back(database_url: URL) -> None:
    proxy = TcpProxy(database_url.host or "localhost", database_url.port or 5432)
    proxy.start()
    try:
        via_proxy = database_url.set(host="127.0.0.1", port=proxy.port)
        for client in _down_client(via_proxy):
            assert client.get("/health").status_code == 200
            created = client.post("/api/v1/todos", json={"title": "survives"})
            assert created.status_code == 201
            todo_id = created.json()["id"]

            proxy.stop()  # the database "goes away": pooled connections die
            _assert_degraded(client)
            response = client.get(f"/api/v1/todos/{todo_id}")
            assert (response.status_code, response.json()) == (503, DB_DOWN)
            assert client.post("/api/v1/todos", json={"title": "x"}).status_code == 503

            proxy.start()  # ... and comes back on the same address
            assert client.get("/health").status_code == 200
            response = client.get(f"/api/v1/todos/{todo_id}")
            assert response.status_code == 200
            assert response.json()["title"] == "survives"
    finally:
        proxy.stop()


def test_requests_do_not_hang_on_a_frozen_database(database_url: URL) -> None:
    """A server that keeps connections open but never replies: /health still
    answers within 2 s and API calls get a 503 at REQUEST_TIMEOUT."""
    proxy = TcpProxy(database_url.host or "localhost", database_url.port or 5432)
    proxy.start()
    try:
        via_proxy = database_url.set(host="127.0.0.1", port=proxy.port)
        for client in _down_client(via_proxy, REQUEST_TIMEOUT=1.0):
            for _ in range(3):  # leave idle connections in the pool
                assert client.get("/api/v1/todos").status_code == 200
            proxy.freeze()
            _assert_degraded(client)
            started = time.monotonic()
            response = client.get("/api/v1/todos")
            elapsed = time.monotonic() - started
            assert response.status_code == 503
            assert response.json() == {"detail": "Request timed out"}
            assert response.headers["retry-after"] == "5"
            assert elapsed < 2.0, f"took {elapsed:.2f}s"

            proxy.thaw()
            deadline = time.monotonic() + 10
            while client.get("/api/v1/todos").status_code != 200:
                assert time.monotonic() < deadline, "did not recover after the thaw"
                time.sleep(0.2)
            assert client.get("/health").status_code == 200
    finally:
        proxy.stop()


def _health(database_url: URL, **overrides: object) -> tuple[int, dict]:
    for client in _down_client(database_url, **overrides):
        response = client.get("/health")
        return response.status_code, response.json()
    raise AssertionError("no client")


def _set_revision(database_url: URL, revision: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


@pytest.mark.parametrize("required", [False, True])
def test_health_says_whether_the_schema_is_at_the_code_head(empty_database_url: URL, required: bool) -> None:
    """Never migrated: "pending"; at head: "current"; at a revision the code does not know (a
    newer deploy migrated it, then was rolled back): "unknown". Not at head is 503 (not
    ready) only where HEALTH_REQUIRES_MIGRATIONS is set, as in the prod image."""
    not_ready = 503 if required else 200
    status, body = _health(empty_database_url, HEALTH_REQUIRES_MIGRATIONS=required)
    assert (status, body["migrations"], body["database"]) == (not_ready, "pending", "connected")
    assert body["status"] == ("degraded" if required else "ok")

    command.upgrade(alembic_config(empty_database_url), "head")
    status, body = _health(empty_database_url, HEALTH_REQUIRES_MIGRATIONS=required)
    assert (status, body["migrations"], body["status"]) == (200, "current", "ok")

    newer = "f" * 12
    assert newer not in code_revisions().known
    _set_revision(empty_database_url, newer)
    status, body = _health(empty_database_url, HEALTH_REQUIRES_MIGRATIONS=required)
    assert (status, body["migrations"]) == (not_ready, "unknown")


def test_health_sees_a_pending_schema_become_current_without_a_restart(empty_database_url: URL) -> None:
    cfg = alembic_config(empty_database_url)
    scripts_head = code_revisions().head
    for client in _down_client(empty_database_url, HEALTH_REQUIRES_MIGRATIONS=True):
        assert client.get("/health").status_code == 503
        command.upgrade(cfg, scripts_head)
        response = client.get("/health")
        assert (response.status_code, response.json()["migrations"]) == (200, "current")
