"""The smoke checks: a running stack seen from outside, through its one public origin, as a
browser or a client sees it. In file order: the page, its assets, /health, the OpenAPI
document, a todo round-trip, CORS preflights from the allowed origin and another one,
/metrics closed (the backend serves its metrics on an internal port only). A check records a
detail line when it passes; its failure message is the FAIL line's detail. `inv smoke` runs
them (options and output: conftest.py)."""

import uuid
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests

MAX_ASSETS = 50  # an HTML page referencing more is not our app
TODOS = "/api/v1/todos"
DISALLOWED_ORIGIN = "http://evil.example"


class _AssetParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        url = attributes.get("src") if tag == "script" else attributes.get("href") if tag == "link" else None
        if url and url.strip():
            self.found.append(url.strip())


def asset_paths(html, base_url):
    """Same-origin URLs the page loads (<script src>, <link href>), as paths, in order,
    without duplicates. Other origins and data: URLs are not ours to check."""
    parser = _AssetParser()
    parser.feed(html)
    parser.close()
    origin = urlsplit(base_url)
    paths = []
    for url in parser.found:
        absolute = urlsplit(urljoin(base_url.rstrip("/") + "/", url))
        if (absolute.scheme, absolute.netloc) != (origin.scheme, origin.netloc):
            continue
        path = absolute.path + (f"?{absolute.query}" if absolute.query else "")
        if path not in paths:
            paths.append(path)
    return paths


def expect_status(response, *wanted):
    if response.status_code not in wanted:
        body = " ".join(response.text.split())[:80]
        pytest.fail(
            f"{response.request.method} {urlsplit(response.url).path} answered {response.status_code}, "
            f"expected {'/'.join(map(str, wanted))}" + (f": {body}" if body else "")
        )
    return response


def json_of(response):
    try:
        return response.json()
    except ValueError:
        pytest.fail(
            f"{urlsplit(response.url).path} did not answer JSON "
            f"(Content-Type {response.headers.get('Content-Type', 'none')})"
        )


@pytest.fixture(scope="module")
def served():
    """What a check found for a later one: the page's HTML, for the assets check."""
    return {}


def test_page(client, served, record_property):
    response = expect_status(client.get("/"), 200)
    assert '<div id="root">' in response.text, '/ answered 200 but is not the app: no <div id="root">'
    served["html"] = response.text
    record_property(
        "detail", f"{len(response.content)} bytes, {response.headers.get('Content-Type', 'no Content-Type')}"
    )


def test_assets(client, served, record_property):
    assert "html" in served, "no page to read the assets from (see the page check)"
    paths = asset_paths(served["html"], client.base_url)
    assert paths, "the page references no script or stylesheet"
    assert len(paths) <= MAX_ASSETS, f"the page references {len(paths)} assets, more than {MAX_ASSETS}"
    broken = []
    for path in paths:
        response = client.get(path)
        if response.status_code != 200:
            broken.append(f"{path} ({response.status_code})")
        elif response.headers.get("Content-Type", "").startswith("text/html"):
            broken.append(f"{path} (HTML instead of the file)")
    assert not broken, f"{len(broken)} of {len(paths)} broken: {', '.join(broken)}"
    record_property("detail", f"{len(paths)} answered 200: {', '.join(paths)}")


def test_health(client, record_property):
    body = json_of(expect_status(client.get("/health"), 200))
    assert body.get("database") == "connected", f"database {body.get('database')!r}, status {body.get('status')!r}"
    # The rate limiter's Redis: degraded means the API is served without limits.
    assert body.get("redis") in ("connected", "disabled"), f"redis {body.get('redis')!r} (the rate limiter's)"
    latency = body.get("db_latency_ms")
    latency = f" ({latency:.1f} ms)" if isinstance(latency, (int, float)) else ""
    record_property(
        "detail",
        f"status {body.get('status')}, database connected{latency}, redis {body.get('redis')}, "
        f"version {body.get('version')}",
    )


def test_openapi(client, record_property):
    document = json_of(expect_status(client.get("/openapi.json"), 200))
    paths = document.get("paths") if isinstance(document, dict) else None
    assert isinstance(paths, dict) and TODOS in paths, f"/openapi.json does not list {TODOS}"
    info = document.get("info") or {}
    record_property("detail", f"{info.get('title')} {info.get('version')}, {len(paths)} paths incl. {TODOS}")


def test_todos(client, record_property):
    """Create, read, update, list, delete, read again (404); always deletes what it created."""
    title = f"smoke {uuid.uuid4().hex[:12]}"
    created = None
    try:
        created = json_of(expect_status(client.post(TODOS, json={"title": title}), 201))
        todo_id = created.get("id")
        assert created.get("title") == title and todo_id is not None, f"POST {TODOS} returned {created!r}"
        item = f"{TODOS}/{todo_id}"
        read = json_of(expect_status(client.get(item), 200))
        assert read.get("title") == title, f"GET {item} returned title {read.get('title')!r}, expected {title!r}"
        updated = json_of(expect_status(client.patch(item, json={"title": f"{title} done", "done": True}), 200))
        assert updated.get("done") is True and updated.get("title") == f"{title} done", (
            f"PATCH {item} returned {updated!r}"
        )
        listing = json_of(expect_status(client.get(TODOS), 200))
        assert any(entry.get("id") == todo_id for entry in listing.get("items") or []), (
            f"GET {TODOS} does not list the new todo {todo_id} on its first page"
        )
        expect_status(client.delete(item), 204)
        created = None
        expect_status(client.get(item), 404)
        record_property("detail", f"todo {todo_id}: create, read, update, list, delete, then 404")
    finally:
        if created and created.get("id") is not None:
            try:
                client.delete(f"{TODOS}/{created['id']}")
            except requests.RequestException:
                pass


def preflight(client, origin):
    return client.options(
        TODOS,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def answered_by(response):
    """Who answered a preflight: the backend tags every response with X-Request-ID. The Vite
    dev server answers preflights itself (its own `server.cors` policy) unless told not to."""
    return "the backend" if "X-Request-ID" in response.headers else "the frontend server, not the backend"


def test_cors_allowed(client, origin, record_property):
    response = preflight(client, origin)
    allowed = response.headers.get("Access-Control-Allow-Origin")
    assert response.status_code in (200, 204) and allowed == origin, (
        f"preflight from {origin} answered {response.status_code}, Access-Control-Allow-Origin {allowed!r} "
        f"(answered by {answered_by(response)}); is it in CORS_ORIGINS?"
    )
    record_property(
        "detail",
        f"preflight from {origin}: {response.status_code}, origin echoed (answered by {answered_by(response)})",
    )


def test_cors_denied(client, record_property):
    response = preflight(client, DISALLOWED_ORIGIN)
    allowed = response.headers.get("Access-Control-Allow-Origin")
    assert allowed not in (DISALLOWED_ORIGIN, "*"), (
        f"preflight from {DISALLOWED_ORIGIN} allowed (Access-Control-Allow-Origin {allowed!r}): "
        "CORS_ORIGINS lets any site call the API"
    )
    record_property(
        "detail",
        f"preflight from {DISALLOWED_ORIGIN}: {response.status_code}, "
        f"no Access-Control-Allow-Origin (answered by {answered_by(response)})",
    )


def test_no_metrics(client, record_property):
    response = expect_status(client.get("/metrics"), 404)
    assert "# TYPE" not in response.text, "/metrics answered 404 with Prometheus text"
    record_property("detail", f"/metrics: 404 (answered by {answered_by(response)})")
