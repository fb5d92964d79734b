"""A request past REQUEST_TIMEOUT is answered as failed only when it changed nothing.

A second connection holds a lock on the todos table past the deadline, so the request's
statement waits on the server when the deadline passes; the test then releases the lock
and checks that nothing the request tried has happened, or ever happens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from app.main import create_app
from tests.conftest import make_settings

URL_PATH = "/api/v1/todos"
DEADLINE = 1.0


@pytest.fixture
def client(database_url: URL) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(database_url, REQUEST_TIMEOUT=DEADLINE))) as c:
        yield c


@contextmanager
def table_locked(db_engine: Engine) -> Iterator[None]:
    with db_engine.connect() as conn:
        conn.execute(text("LOCK TABLE todos IN ACCESS EXCLUSIVE MODE"))
        yield
        conn.rollback()


def timed(send) -> tuple:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


def rows(db_engine: Engine) -> list[tuple]:
    with db_engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, title, done FROM todos ORDER BY id"))]


def assert_cancelled(response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"detail": "Request timed out"}
    assert response.headers["retry-after"] == "5"
    assert DEADLINE <= elapsed < DEADLINE + 1.5, f"answered after {elapsed:.2f}s"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", URL_PATH, {"title": "must not exist"}),
        ("PATCH", URL_PATH + "/{id}", {"title": "must not be renamed", "done": True}),
        ("DELETE", URL_PATH + "/{id}", None),
    ],
)
def test_a_write_past_the_deadline_is_503_and_never_happens(
    client: TestClient, db_engine: Engine, method: str, path: str, body: dict | None
) -> None:
    todo = client.post(URL_PATH, json={"title": "untouched"}).json()
    before = rows(db_engine)
    with table_locked(db_engine):
        response, elapsed = timed(lambda: client.request(method, path.format(id=todo["id"]), json=body))
        # Still inside the lock: the answer came before the lock was released.
    assert_cancelled(response, elapsed)
    time.sleep(0.5)  # a statement that had survived would run now that the lock is gone
    assert rows(db_engine) == before
    assert client.get(f"{URL_PATH}/{todo['id']}").json() == todo


def test_a_read_past_the_deadline_is_503_and_the_app_recovers(client: TestClient, db_engine: Engine) -> None:
    with table_locked(db_engine):
        response, elapsed = timed(lambda: client.get(URL_PATH))
    assert_cancelled(response, elapsed)
    assert client.get(URL_PATH).status_code == 200


@pytest.fixture
def slow_commits(db_engine: Engine) -> Iterator[None]:
    """COMMIT of a new todo takes 3 s: a deferred constraint trigger runs at commit time."""
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON todos "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        )
    try:
        yield
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER slow_commit ON todos"))
            conn.execute(text("DROP FUNCTION slow_commit()"))


def test_a_deadline_during_commit_is_504_without_retry_after(
    client: TestClient, db_engine: Engine, slow_commits: None
) -> None:
    """Whether a COMMIT that was cut off took effect cannot be known: the answer says so,
    and does not invite a retry that could write the todo twice."""
    response, elapsed = timed(lambda: client.post(URL_PATH, json={"title": "maybe"}))
    assert response.status_code == 504, response.text
    assert "unknown" in response.json()["detail"]
    assert "retry-after" not in response.headers
    assert DEADLINE <= elapsed < DEADLINE + 1.5, f"answered after {elapsed:.2f}s"
