"""Request dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.db import RequestSession


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> AsyncIterator[RequestSession]:
    """One session per request; rolled back and closed when the request ends or is cancelled.
    Kept in the request state for RequestTimeoutMiddleware, which asks it whether a commit
    was in flight when the deadline passed."""
    async with request.app.state.session_factory() as session:
        request.state.db_session = session
        yield session


SessionDep = Annotated[RequestSession, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
