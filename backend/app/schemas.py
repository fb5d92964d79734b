"""Request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from app.models import TITLE_MAX_LENGTH

# Control characters (Unicode category Cc) are refused, but for tab and newline: PostgreSQL
# cannot store NUL in text, and the others have no place in a title. The pattern is in the
# OpenAPI document, so clients (and the fuzzer) know it.
TITLE_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH, pattern=TITLE_PATTERN),
]


class TodoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    done: StrictBool = False


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A field a PATCH may leave out ("unchanged") but never set to null: the type has no None,
# so null is a type error like any other; the default None is never validated and is kept
# out of the OpenAPI document, which therefore does not call the field nullable.
UNCHANGED: Any = Field(default=None, json_schema_extra=_drop_default)


class TodoUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title = UNCHANGED
    done: StrictBool = UNCHANGED


class TodoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    done: bool
    created_at: datetime
    updated_at: datetime


class TodoList(BaseModel):
    items: list[TodoRead]
    total: int
    limit: int
    offset: int


class HealthStatus(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["connected", "unavailable"]
    db_latency_ms: float | None
    # The database's schema against the code's Alembic head: "current" (at head), "pending"
    # (behind, or never migrated: run the migrations), "unknown" (a revision this code does
    # not know: a newer deploy migrated it); null when the database did not answer.
    migrations: Literal["current", "pending", "unknown"] | None
    # The rate limiter's Redis; "degraded": the API is served without limits until it answers.
    redis: Literal["connected", "degraded", "disabled"]
    version: str


class AppInfo(BaseModel):
    name: str
    version: str
