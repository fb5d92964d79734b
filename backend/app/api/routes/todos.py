"""/api/v1/todos

Each operation is one SQL statement, built once at import: a row that a concurrent request
deletes between a read and a write cannot exist, so updating or deleting a missing row is
a 404 and of two racing deletes exactly one succeeds. Reads run without a transaction,
writes in one. Responses are serialised once, from the rows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import bindparam, delete, func, insert, select, update

from app.api.deps import DbDep
from app.models import Todo
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

COLUMNS = (Todo.id, Todo.title, Todo.done, Todo.created_at, Todo.updated_at)
BY_ID = Todo.id == bindparam("todo_id")
COUNT = select(func.count()).select_from(Todo)
# The page and the total in one statement, so both come from the same snapshot.
PAGE = (
    select(*COLUMNS, COUNT.scalar_subquery().label("total"))
    .order_by(Todo.created_at.desc(), Todo.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
READ = select(*COLUMNS).where(BY_ID)
CREATE = insert(Todo).returning(*COLUMNS)
# updated_at is set by the statement itself: a bulk UPDATE does not apply the model's onupdate.
UPDATE = update(Todo).where(BY_ID).values(updated_at=func.now()).returning(*COLUMNS)
DELETE = delete(Todo).where(BY_ID).returning(Todo.id)


def json_response(model: TodoRead | TodoList, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def not_found(todo_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Todo {todo_id} not found")


def todo_or_404(row: object | None, todo_id: int) -> Response:
    if row is None:
        raise not_found(todo_id)
    return json_response(TodoRead.model_validate(row))


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
        rows = (await conn.execute(PAGE, {"limit": limit, "offset": offset})).all()
        # A page past the end has no row to carry the total: only then it is counted on its own.
        total = rows[0].total if rows else await conn.scalar(COUNT)
    page = {"items": rows, "total": total, "limit": limit, "offset": offset}
    return json_response(TodoList.model_validate(page, from_attributes=True))


@router.post("", response_model=TodoRead, status_code=status.HTTP_201_CREATED, responses=CREATED_LINKS)
async def create_todo(db: DbDep, body: TodoCreate) -> Response:
    async with db.transaction() as conn:
        row = (await conn.execute(CREATE, {"title": body.title, "done": body.done})).one()
    return json_response(TodoRead.model_validate(row), status.HTTP_201_CREATED)


@router.get("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
async def read_todo(db: DbDep, todo_id: int) -> Response:
    key = {"todo_id": valid_id(todo_id)}
    async with db.read() as conn:
        row = (await conn.execute(READ, key)).first()
    return todo_or_404(row, todo_id)


@router.patch("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
async def update_todo(db: DbDep, todo_id: int, body: TodoUpdate) -> Response:
    changes = body.model_dump(exclude_unset=True)
    statement, key = UPDATE.values(**changes) if changes else READ, {"todo_id": valid_id(todo_id)}
    async with db.transaction() as conn:
        row = (await conn.execute(statement, key)).first()
    return todo_or_404(row, todo_id)


@router.delete(
    "/{todo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_todo(db: DbDep, todo_id: int) -> Response:
    key = {"todo_id": valid_id(todo_id)}
    async with db.transaction() as conn:
        deleted = (await conn.execute(DELETE, key)).first()
    if deleted is None:
        raise not_found(todo_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
