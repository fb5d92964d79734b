"""Root, docs, CORS, metrics and the request body limit."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from app import __version__
from app.core import metrics
from app.core.config import Settings
from app.main import create_app

ALLOWED = "http://localhost:3000"


def test_root(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.json() == {"name": "Todo API", "version": __version__}


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/todos" in spec["paths"]
    assert "/api/v1/todos/{todo_id}" in spec["paths"]
    assert "/health" in spec["paths"]


def test_docs_disabled_leaves_the_openapi_document(settings: Settings) -> None:
    """Production's setting: no page that loads a CDN's scripts; the schema stays."""
    with TestClient(create_app(settings.model_copy(update={"DOCS_ENABLED": False}))) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert "/api/v1/todos" in client.get("/openapi.json").json()["paths"]


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/", headers={"X-Request-ID": "bad id\x01"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


def test_cors_preflight_allowed_origin(client: TestClient) -> None:
    response = client.options(
        "/api/v1/todos",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]


def test_cors_preflight_disallowed_origin(client: TestClient) -> None:
    response = client.options(
        "/api/v1/todos",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_cors_simple_request_headers(client: TestClient) -> None:
    ok = client.get("/api/v1/todos", headers={"Origin": ALLOWED})
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    bad = client.get("/api/v1/todos", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in bad.headers


def _sample(text: str, name: str, **labels: str) -> float:
    """Value of the first `name{...}` sample whose labels include `labels`."""
    for line in text.splitlines():
        m = re.fullmatch(re.escape(name) + r"\{(.*)\} (\S+)", line)
        if m is None:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


@pytest.fixture(scope="module")
def scrape() -> Iterator[Callable[[], tuple[str, str]]]:
    """scrape(): the metrics as a scraper gets them from the metrics listener (a real HTTP
    server on a free loopback port, as start.sh runs it on 9100)."""
    server = metrics.listen(0, "127.0.0.1")
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def get() -> tuple[str, str]:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode(), response.headers["Content-Type"]

    yield get
    server.shutdown()
    server.server_close()


def test_the_api_port_has_no_metrics(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404


def test_metrics(client: TestClient, scrape: Callable[[], tuple[str, str]]) -> None:
    labels = {"method": "GET", "path": "/api/v1/todos/{todo_id}", "status": "404"}
    before = _sample(scrape()[0], "http_requests_total", **labels)
    for todo_id in (99991, 99992, 99993):
        assert client.get(f"/api/v1/todos/{todo_id}").status_code == 404
    client.get("/api/v1/todos")

    text, content_type = scrape()
    assert content_type.startswith("text/plain")
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert _sample(text, "http_requests_total", **labels) == before + 3
    assert _sample(text, "http_request_duration_seconds_count", **labels) >= 3
    assert _sample(text, "http_requests_total", method="GET", path="/api/v1/todos", status="200") >= 1
    # Raw ids never become label values.
    assert "/api/v1/todos/9999" not in text


def test_metrics_unmatched_path_is_one_label(client: TestClient, scrape: Callable[[], tuple[str, str]]) -> None:
    client.get("/no/such/thing/1")
    client.get("/no/such/thing/2")
    text = scrape()[0]
    assert _sample(text, "http_requests_total", path="<unmatched>", status="404") >= 2
    assert "/no/such/thing" not in text


MIB = 1024 * 1024


def test_body_over_1mb_with_content_length_is_413(client: TestClient) -> None:
    response = client.post("/api/v1/todos", content=b"x" * (MIB + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "detail" in response.json()


def test_streamed_body_over_1mb_is_413(client: TestClient) -> None:
    def chunks():
        for _ in range(17):
            yield b" " * 65536  # 17 * 64 KiB > 1 MiB, no Content-Length

    response = client.post("/api/v1/todos", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert client.get("/api/v1/todos").json()["total"] == 0


def test_body_just_under_limit_is_parsed(client: TestClient) -> None:
    payload = b'{"title": "padded"}' + b" " * (MIB - 19)
    assert len(payload) == MIB
    response = client.post("/api/v1/todos", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
