"""Request dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import Depends, Request


class RequestDatabase:
    """A request's access to PostgreSQL. It takes nothing from the pool until a route uses
    it, so that a request refused by validation never touches the database."""

    def __init__(self, request: Request) -> None:
        self.pool: asyncpg.Pool = request.app.state.pool
        self.timeout: float = request.app.state.settings.DB_POOL_TIMEOUT
        self.request_state = request.state

    def read(self) -> asyncpg.pool.PoolAcquireContext:
        """`async with db.read() as conn`: a pooled connection for a read that is one
        statement (so one snapshot), without a transaction around it."""
        return self.pool.acquire(timeout=self.timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """`async with db.transaction() as conn`: committed when the block ends, rolled back
        when it raises or is cancelled.

        `commit_in_flight` in the request state is true while the COMMIT is on its way:
        RequestTimeoutMiddleware reads it when a deadline passes, because only then can
        nobody tell whether the request's changes were made."""
        async with self.pool.acquire(timeout=self.timeout) as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                yield conn
            except BaseException:
                await transaction.rollback()
                raise
            self.request_state.commit_in_flight = True
            await transaction.commit()
            self.request_state.commit_in_flight = False


async def get_db(request: Request) -> RequestDatabase:
    return RequestDatabase(request)


DbDep = Annotated[RequestDatabase, Depends(get_db)]
