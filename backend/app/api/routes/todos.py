"""/api/v1/todos

Each operation is one SQL statement, so a row changed or deleted by a concurrent request
between a read and a write cannot exist: an update or delete of a missing row is a 404.
Responses are serialised once, by pydantic, straight from the rows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import delete, func, insert, select, update

from app.api.deps import SessionDep
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
NEWEST_FIRST = (Todo.created_at.desc(), Todo.id.desc())
COUNT = select(func.count()).select_from(Todo)


def json_response(model: TodoRead | TodoList, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def not_found(todo_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Todo {todo_id} not found")


def row_or_404(row: object | None, todo_id: int) -> Response:
    if row is None:
        raise not_found(todo_id)
    return json_response(TodoRead.model_validate(row))


@router.get("", response_model=TodoList)
async def list_todos(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Response:
    """Todos, newest first."""
    # One statement: the page and the total from the same snapshot. A page past the end has
    # no row to carry the total, so only then it is counted on its own.
    page = select(*COLUMNS, COUNT.scalar_subquery().label("total")).order_by(*NEWEST_FIRST).limit(limit).offset(offset)
    rows = (await session.execute(page)).all()
    total = rows[0].total if rows else await session.scalar(COUNT)
    items = [TodoRead.model_validate(row) for row in rows]
    return json_response(TodoList(items=items, total=total, limit=limit, offset=offset))


@router.post("", response_model=TodoRead, status_code=status.HTTP_201_CREATED, responses=CREATED_LINKS)
async def create_todo(session: SessionDep, body: TodoCreate) -> Response:
    row = (await session.execute(insert(Todo).values(title=body.title, done=body.done).returning(*COLUMNS))).one()
    await session.commit()
    return json_response(TodoRead.model_validate(row), status.HTTP_201_CREATED)


@router.get("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
async def read_todo(session: SessionDep, todo_id: int) -> Response:
    row = (
        (await session.execute(select(*COLUMNS).where(Todo.id == todo_id))).first()
        if MIN_ID <= todo_id <= MAX_ID
        else None
    )
    return row_or_404(row, todo_id)


@router.patch("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
async def update_todo(session: SessionDep, todo_id: int, body: TodoUpdate) -> Response:
    if not MIN_ID <= todo_id <= MAX_ID:
        raise not_found(todo_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return await read_todo(session, todo_id)
    statement = (
        update(Todo)
        .where(Todo.id == todo_id)
        .values(**changes, updated_at=func.now())
        .returning(*COLUMNS)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(statement)).first()
    await session.commit()
    return row_or_404(row, todo_id)


@router.delete(
    "/{todo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_todo(session: SessionDep, todo_id: int) -> Response:
    if not MIN_ID <= todo_id <= MAX_ID:
        raise not_found(todo_id)
    statement = delete(Todo).where(Todo.id == todo_id).returning(Todo.id).execution_options(synchronize_session=False)
    deleted = (await session.execute(statement)).first()
    await session.commit()
    if deleted is None:
        raise not_found(todo_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
