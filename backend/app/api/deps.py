"""Request dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection


class RequestDatabase:
    """A request's access to PostgreSQL. It opens nothing until a route uses it, so that
    a request refused by validation never touches the database."""

    def __init__(self, request: Request) -> None:
        self.app_state = request.app.state
        self.request_state = request.state

    def read(self) -> AsyncConnection:
        """`async with db.read() as conn`: a pooled connection in autocommit mode, for a
        read that is one statement (one snapshot): no BEGIN and ROLLBACK round trips."""
        return self.app_state.read_engine.connect()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """`async with db.transaction() as conn`: committed when the block ends, rolled back
        when it raises or is cancelled.

        `commit_in_flight` in the request state is true while the COMMIT is on its way:
        RequestTimeoutMiddleware reads it when a deadline passes, because only then can
        nobody tell whether the request's changes were made."""
        async with self.app_state.engine.connect() as conn:
            await conn.begin()
            yield conn
            self.request_state.commit_in_flight = True
            await conn.commit()
            self.request_state.commit_in_flight = False


async def get_db(request: Request) -> RequestDatabase:
    return RequestDatabase(request)


DbDep = Annotated[RequestDatabase, Depends(get_db)]
