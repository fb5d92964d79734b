"""Request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints, field_validator

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


class TodoUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    done: StrictBool | None = None

    @field_validator("title", "done")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Leaving a field out means "unchanged"; an explicit null is an error.
        if value is None:
            raise ValueError("may not be null")
        return value


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
    version: str


class AppInfo(BaseModel):
    name: str
    version: str
