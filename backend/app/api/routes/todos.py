"""/api/v1/todos

Each operation is one SQL statement: a row that a concurrent request deletes between a read
and a write cannot exist, so updating or deleting a missing row is a 404 and of two racing
deletes exactly one succeeds. Reads run without a transaction, writes in one. Responses are
serialised once, from the rows. The statements name the table and columns of app.models.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from app.api.deps import DbDep
from app.schemas import TodoCreate, TodoList, TodoRead, TodoUpdate

router = APIRouter(prefix="/todos", tags=["todos"])

NOT_FOUND = {status.HTTP_404_NOT_FOUND: {"description": "No todo with this id"}}
# OpenAPI links from a created todo to the operations on it: clients, and the stateful
# fuzzer, follow them (create, then read, update and delete that id).
_CREATED_ID = {"todo_id": "$response.body#/id"}
CREATED_LINKS = {
    status.HTTP_201_CREATED: {
        "links": {
            name: {"operationId": operation, "parameters": _CREATED_ID}
            for name, operation in (
                ("ReadTodo", "read_todo"),
                ("UpdateTodo", "update_todo"),
                ("DeleteTodo", "delete_todo"),
            )
        }
    }
}
# PostgreSQL's OFFSET is a bigint: a larger offset would be a database error.
MAX_OFFSET = 2**63 - 1
# Ids are PostgreSQL integers: any other number names no todo.
MIN_ID, MAX_ID = -(2**31), 2**31 - 1

COLUMNS = "id, title, done, created_at, updated_at"
COUNT = "SELECT count(*) FROM todos"
# The page and the total in one statement, so both come from the same snapshot.
PAGE = f"SELECT {COLUMNS}, ({COUNT}) AS total FROM todos ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
READ = f"SELECT {COLUMNS} FROM todos WHERE id = $1"
CREATE = f"INSERT INTO todos (title, done) VALUES ($1, $2) RETURNING {COLUMNS}"
# A field left out of the PATCH is passed as NULL, which keeps the current value (null is
# never a value: TodoUpdate refuses it).
UPDATE = (
    "UPDATE todos SET title = coalesce($2, title), done = coalesce($3, done), updated_at = now() "
    f"WHERE id = $1 RETURNING {COLUMNS}"
)
DELETE = "DELETE FROM todos WHERE id = $1 RETURNING id"


def json_response(model: TodoRead | TodoList, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def not_found(todo_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Todo {todo_id} not found")


def todo_or_404(row: object | None, todo_id: int) -> Response:
    if row is None:
        raise not_found(todo_id)
    return json_response(TodoRead.model_validate(dict(row)))


def valid_id(todo_id: int) -> int:
    if not MIN_ID <= todo_id <= MAX_ID:
        raise not_found(todo_id)
    return todo_id


@router.get("", response_model=TodoList)
async def list_todos(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Todos, newest first."""
    async with db.read() as conn:
        rows = await conn.fetch(PAGE, limit, offset)
        # A page past the end has no row to carry the total: only then it is counted on its own.
        total = rows[0]["total"] if rows else await conn.fetchval(COUNT)
    page = {"items": [dict(row) for row in rows], "total": total, "limit": limit, "offset": offset}
    return json_response(TodoList.model_validate(page))


@router.post("", response_model=TodoRead, status_code=status.HTTP_201_CREATED, responses=CREATED_LINKS)
async def create_todo(db: DbDep, body: TodoCreate) -> Response:
    async with db.transaction() as conn:
        row = await conn.fetchrow(CREATE, body.title, body.done)
    return json_response(TodoRead.model_validate(dict(row)), status.HTTP_201_CREATED)


@router.get("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
async def read_todo(db: DbDep, todo_id: int) -> Response:
    todo_id = valid_id(todo_id)
    async with db.read() as conn:
        row = await conn.fetchrow(READ, todo_id)
    return todo_or_404(row, todo_id)


@router.patch("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
async def update_todo(db: DbDep, todo_id: int, body: TodoUpdate) -> Response:
    todo_id = valid_id(todo_id)
    if not body.model_fields_set:  # nothing to change, updated_at included
        return await read_todo(db, todo_id)
    async with db.transaction() as conn:
        row = await conn.fetchrow(UPDATE, todo_id, body.title, body.done)
    return todo_or_404(row, todo_id)


@router.delete(
    "/{todo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_todo(db: DbDep, todo_id: int) -> Response:
    todo_id = valid_id(todo_id)
    async with db.transaction() as conn:
        deleted = await conn.fetchval(DELETE, todo_id)
    if deleted is None:
        raise not_found(todo_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
