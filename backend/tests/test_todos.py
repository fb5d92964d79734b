from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import asyncpg
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from app.main import database_error_handler

URL = "/api/v1/todos"


def create(client: TestClient, title: str, **extra: object) -> dict:
    response = client.post(URL, json={"title": title, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_201_and_the_todo(client: TestClient) -> None:
    body = create(client, "  buy milk  ")
    assert body["title"] == "buy milk"
    assert body["done"] is False
    assert isinstance(body["id"], int)
    created = datetime.fromisoformat(body["created_at"])
    assert created.tzinfo is not None
    assert body["updated_at"] == body["created_at"]


def test_create_done(client: TestClient) -> None:
    assert create(client, "x", done=True)["done"] is True


def test_get_by_id(client: TestClient) -> None:
    todo = create(client, "read me")
    response = client.get(f"{URL}/{todo['id']}")
    assert response.status_code == 200
    assert response.json() == todo


def test_patch_title_and_done(client: TestClient) -> None:
    todo = create(client, "old")
    response = client.patch(f"{URL}/{todo['id']}", json={"done": True})
    assert response.status_code == 200, response.text
    assert response.json()["done"] is True
    assert response.json()["title"] == "old"

    response = client.patch(f"{URL}/{todo['id']}", json={"title": " new "})
    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "new"
    assert body["done"] is True
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(todo["updated_at"])
    assert body["created_at"] == todo["created_at"]
    assert client.get(f"{URL}/{todo['id']}").json() == body


def test_patch_empty_body_changes_nothing(client: TestClient) -> None:
    todo = create(client, "same")
    response = client.patch(f"{URL}/{todo['id']}", json={})
    assert response.status_code == 200
    assert response.json() == todo


def test_delete(client: TestClient) -> None:
    todo = create(client, "bye")
    response = client.delete(f"{URL}/{todo['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"{URL}/{todo['id']}").status_code == 404
    assert client.delete(f"{URL}/{todo['id']}").status_code == 404


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("todo_id", [123, 2**31, 2**70])
def test_unknown_id_is_404(client: TestClient, method: str, todo_id: int) -> None:
    kwargs = {"json": {"done": True}} if method == "patch" else {}
    response = getattr(client, method)(f"{URL}/{todo_id}", **kwargs)
    assert response.status_code == 404
    assert response.json() == {"detail": f"Todo {todo_id} not found"}


def test_non_integer_id_is_422(client: TestClient) -> None:
    assert client.get(f"{URL}/abc").status_code == 422


def test_list_is_paginated_newest_first(client: TestClient) -> None:
    ids = [create(client, f"todo {i}")["id"] for i in range(25)]
    newest_first = list(reversed(ids))

    page = client.get(URL).json()
    assert page["total"] == 25
    assert page["limit"] == 20
    assert page["offset"] == 0
    assert [t["id"] for t in page["items"]] == newest_first[:20]

    page = client.get(URL, params={"limit": 10, "offset": 20}).json()
    assert page == {**page, "total": 25, "limit": 10, "offset": 20}
    assert [t["id"] for t in page["items"]] == newest_first[20:]

    page = client.get(URL, params={"limit": 100, "offset": 1000}).json()
    assert page["items"] == []
    assert page["total"] == 25


def test_list_empty(client: TestClient) -> None:
    assert client.get(URL).json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"limit": "x"},
        {"offset": 2**63},
        {"offset": 2**70},
    ],
)
def test_list_bad_pagination_is_422(client: TestClient, params: dict) -> None:
    assert client.get(URL, params=params).status_code == 422


def test_largest_offset_is_an_empty_page(client: TestClient) -> None:
    create(client, "only one")
    page = client.get(URL, params={"offset": 2**63 - 1}).json()
    assert page["items"] == [] and page["total"] == 1 and page["offset"] == 2**63 - 1


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "\t\n "},
        {"title": "x" * 201},
        {"title": None},
        {"title": 5},
        {"title": "ok", "done": "yes"},
        {"title": "ok", "priority": 1},
        ["title"],
    ],
)
def test_create_invalid_is_422(client: TestClient, payload: object) -> None:
    response = client.post(URL, json=payload)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert client.get(URL).json()["total"] == 0


def test_unknown_field_error_names_the_field(client: TestClient) -> None:
    response = client.post(URL, json={"title": "ok", "priority": 1})
    errors = response.json()["detail"]
    assert any(e["type"] == "extra_forbidden" and e["loc"][-1] == "priority" for e in errors)


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post(URL, content=b'{"title": "unterminated', headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_title_length_limits(client: TestClient) -> None:
    assert create(client, "x" * 200)["title"] == "x" * 200
    # Whitespace is trimmed before the length check.
    assert create(client, "  " + "y" * 200 + "  ")["title"] == "y" * 200
    assert client.post(URL, json={"title": "z" * 201}).status_code == 422


@pytest.mark.parametrize("title", ["a\x00b", "\x00", "bell\x07", "esc\x1b[31m", "cr\rhere", "del\x7f", "c1\x9b[31m"])
def test_control_characters_in_a_title_are_422_naming_it(client: TestClient, title: str) -> None:
    response = client.post(URL, json={"title": title})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "title"]
    todo = create(client, "keep")
    response = client.patch(f"{URL}/{todo['id']}", json={"title": title})
    assert response.status_code == 422, response.text
    assert client.get(f"{URL}/{todo['id']}").json() == todo


def test_tabs_newlines_and_any_other_unicode_are_kept(client: TestClient) -> None:
    title = "two\tcolumns\nsecond line: caf\u00e9 \U0001f600 \u202eevil"
    assert create(client, title)["title"] == title


@pytest.mark.parametrize(
    "payload",
    [
        {"title": ""},
        {"title": "  "},
        {"title": "x" * 201},
        {"title": None},
        {"done": None},
        {"done": "true"},
        {"id": 5},
        {"created_at": "2020-01-01T00:00:00Z"},
    ],
)
def test_patch_invalid_is_422(client: TestClient, payload: dict) -> None:
    todo = create(client, "keep")
    response = client.patch(f"{URL}/{todo['id']}", json=payload)
    assert response.status_code == 422, response.text
    assert client.get(f"{URL}/{todo['id']}").json() == todo


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("escaped", ["\\ud800", "a\\udfffb", "\\udc00\\ud800"])
def test_a_lone_surrogate_is_a_json_422_with_cors(client: TestClient, method: str, escaped: str) -> None:
    """JSON may escape a surrogate that has no pair; such a string has no UTF-8 form, so
    neither PostgreSQL nor a response can carry it. The 422 body echoes it escaped."""
    todo = create(client, "keep")
    path = URL if method == "POST" else f"{URL}/{todo['id']}"
    response = client.request(
        method,
        path,
        content=b'{"title": "' + escaped.encode() + b'"}',
        headers={"Content-Type": "application/json", "Origin": "http://localhost:3000"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "title"] and error["type"] == "string_unicode"
    assert client.get(URL).json()["items"] == [todo]


def test_a_surrogate_pair_is_one_character_and_kept(client: TestClient) -> None:
    response = client.post(URL, content=b'{"title": "\\ud83d\\ude00"}', headers={"Content-Type": "application/json"})
    assert response.status_code == 201 and response.json()["title"] == "\U0001f600"


def test_bytes_that_are_not_utf8_are_refused(client: TestClient) -> None:
    response = client.post(URL, content=b'{"title": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert client.get(URL).json()["total"] == 0


def test_a_value_the_database_refuses_is_422_not_500() -> None:
    """Validation should stop such values first; if one slips through, it is still the
    client's input, not a server failure."""
    refused = asyncpg.DataError('invalid byte sequence for encoding "UTF8": 0x00')
    request = Request({"type": "http", "method": "POST", "path": URL, "headers": []})
    response = asyncio.run(database_error_handler(request, refused))
    assert response.status_code == 422
    assert response.body == b'{"detail":"A value was refused by the database"}'


def race(client: TestClient, requests: list[tuple[str, str, dict | None]]) -> list[int]:
    """Send the requests (method, path, body) all at once; their status codes, sorted."""
    with ThreadPoolExecutor(len(requests)) as pool:
        responses = pool.map(lambda r: client.request(r[0], r[1], json=r[2]), requests)
        return sorted(response.status_code for response in responses)


def test_racing_deletes_of_one_row_exactly_one_wins(client: TestClient) -> None:
    for _ in range(5):
        path = f"{URL}/{create(client, 'contested')['id']}"
        assert race(client, [("DELETE", path, None)] * 8) == [204] + [404] * 7
        assert client.get(path).status_code == 404


def test_updates_racing_a_delete_are_200_or_404(client: TestClient) -> None:
    for _ in range(5):
        path = f"{URL}/{create(client, 'contested')['id']}"
        statuses = race(
            client,
            [("PATCH", path, {"done": True})] * 4
            + [("DELETE", path, None)]
            + [("PATCH", path, {"title": "renamed"})] * 4,
        )
        assert statuses.count(204) == 1 and set(statuses) <= {200, 204, 404}, statuses
        assert client.get(path).status_code == 404


def test_an_update_keeps_the_rest_and_moves_updated_at(client: TestClient) -> None:
    todo = create(client, "before")
    updated = client.patch(f"{URL}/{todo['id']}", json={"title": "after"}).json()
    assert (updated["title"], updated["done"], updated["created_at"]) == ("after", False, todo["created_at"])
    assert updated["updated_at"] > todo["updated_at"]
    assert client.get(f"{URL}/{todo['id']}").json() == updated
