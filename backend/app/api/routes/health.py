"""GET /health: liveness plus a bounded database probe, and whether the database's schema is
at the code's migration head (readiness, where HEALTH_REQUIRES_MIGRATIONS is set)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.db import connections_lost
from app.core.migrations import code_revisions
from app.schemas import HealthStatus

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


async def _ping(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


def _retrieve_result(probe: asyncio.Future[None]) -> None:
    if not probe.cancelled():
        probe.exception()


async def probe_database(request: Request) -> float | None:
    """SELECT 1 round trip in ms, or None when the database does not answer within
    HEALTH_CHECK_TIMEOUT (refused, unresolvable, frozen, or every connection busy).

    A probe that runs out of time is cancelled and left to unwind in the background (on
    a frozen server that takes until the connect timeout), so the answer never waits."""
    state = request.app.state
    started = time.perf_counter()
    probe = asyncio.ensure_future(_ping(state.pool))
    try:
        await asyncio.wait_for(asyncio.shield(probe), state.settings.HEALTH_CHECK_TIMEOUT)
    except TimeoutError:
        probe.cancel()
        probe.add_done_callback(_retrieve_result)
        log.warning("health: database probe timed out")
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
        if connections_lost(exc):
            await state.pool.expire_connections()
        reason = str(exc).strip().splitlines()
        log.warning("health: database probe failed: %s: %s", type(exc).__name__, reason[0][:300] if reason else "")
    else:
        return (time.perf_counter() - started) * 1000
    return None


async def migration_state(request: Request) -> str | None:
    """The database's revision against the code's head: "current", "pending" or "unknown"
    (see HealthStatus.migrations); None when it did not answer within HEALTH_CHECK_TIMEOUT.

    Once seen at head, it is not asked again: the head is this process's for its lifetime,
    and a database only moves on with a newer deploy, which replaces this process."""
    state = request.app.state
    if getattr(state, "migrations_current", False):
        return "current"
    code = code_revisions()
    try:
        async with asyncio.timeout(state.settings.HEALTH_CHECK_TIMEOUT), state.pool.acquire() as conn:
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return "pending"
    except Exception as exc:  # noqa: BLE001 - the database probe has logged what is wrong
        log.warning("health: cannot read the schema revision: %s", type(exc).__name__)
        return None
    state.migrations_current = revision == code.head
    return "current" if revision == code.head else "pending" if revision in code.known else "unknown"


async def probe_redis(request: Request) -> Literal["connected", "degraded", "disabled"]:
    """The rate limiter's Redis: "degraded" when it does not answer a PING in time (the API is
    then served without limits: the limiter fails open), "disabled" with RATE_LIMIT_ENABLED
    false. Never a reason for a 503: the backend itself is fine."""
    limiter = request.app.state.rate_limiter
    if limiter is None:
        return "disabled"
    return "connected" if await limiter.ping() else "degraded"


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={
        503: {
            "model": HealthStatus,
            "description": "Database unavailable, or (HEALTH_REQUIRES_MIGRATIONS) its schema not at the code's head",
        }
    },
)
async def health(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    latency = await probe_database(request)
    connected = latency is not None
    migrations = await migration_state(request) if connected else None
    ok = connected and (migrations == "current" or not settings.HEALTH_REQUIRES_MIGRATIONS)
    body = HealthStatus(
        status="ok" if ok else "degraded",
        database="connected" if connected else "unavailable",
        db_latency_ms=round(latency, 3) if connected else None,
        migrations=migrations,
        redis=await probe_redis(request),
        version=settings.VERSION,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
