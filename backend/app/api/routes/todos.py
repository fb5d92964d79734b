"""/api/v1/todos"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
            for name, operation in (("ReadTodo", "read_todo"), ("UpdateTodo", "update_todo"), ("DeleteTodo", "delete_todo"))
        }
    }
}
# PostgreSQL's OFFSET is a bigint: a larger offset would be a database error (500).
MAX_OFFSET = 2**63 - 1


def _get_or_404(session: Session, todo_id: int) -> Todo:
    todo = session.get(Todo, todo_id) if -(2**31) <= todo_id < 2**31 else None
    if todo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"Todo {todo_id} not found")
    return todo


@router.get("", response_model=TodoList)
def list_todos(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> TodoList:
    """Todos, newest first."""
    total = session.scalar(select(func.count()).select_from(Todo)) or 0
    rows = session.scalars(
        select(Todo).order_by(Todo.created_at.desc(), Todo.id.desc()).limit(limit).offset(offset)
    ).all()
    return TodoList(items=[TodoRead.model_validate(t) for t in rows], total=total, limit=limit, offset=offset)


@router.post("", response_model=TodoRead, status_code=status.HTTP_201_CREATED, responses=CREATED_LINKS)
def create_todo(session: SessionDep, body: TodoCreate) -> TodoRead:
    todo = Todo(title=body.title, done=body.done)
    session.add(todo)
    session.commit()
    return TodoRead.model_validate(todo)


@router.get("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
def read_todo(session: SessionDep, todo_id: int) -> TodoRead:
    return TodoRead.model_validate(_get_or_404(session, todo_id))


@router.patch("/{todo_id}", response_model=TodoRead, responses=NOT_FOUND)
def update_todo(session: SessionDep, todo_id: int, body: TodoUpdate) -> TodoRead:
    todo = _get_or_404(session, todo_id)
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        setattr(todo, field, value)
    if changes:
        session.commit()
    return TodoRead.model_validate(todo)


@router.delete(
    "/{todo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
def delete_todo(session: SessionDep, todo_id: int) -> Response:
    todo = _get_or_404(session, todo_id)
    session.delete(todo)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
