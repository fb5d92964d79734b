"""GET /health: liveness plus a bounded database probe."""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from app.schemas import HealthStatus

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


def _ping(engine: Engine) -> float:
    """Run SELECT 1; return the round trip in milliseconds."""
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()
    return (time.perf_counter() - started) * 1000


async def probe_database(request: Request) -> float | None:
    """Latency in ms, or None when the database does not answer in time.

    The blocking probe runs on a small dedicated executor and is abandoned
    after HEALTH_CHECK_TIMEOUT, so the endpoint answers in bounded time even
    when connecting hangs (blackholed host, slow DNS, exhausted pool). An
    abandoned probe still ends by itself through libpq's connect_timeout and
    the server's statement_timeout.
    """
    state = request.app.state
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(state.health_executor, _ping, state.engine)
    try:
        return await asyncio.wait_for(future, timeout=state.settings.HEALTH_CHECK_TIMEOUT)
    except TimeoutError:
        log.warning("health: database probe timed out")
    except Exception as exc:  # noqa: BLE001 - any failure means "unavailable"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.warning(
            "health: database probe failed: %s: %s",
            type(exc).__name__,
            reason[0][:300] if reason else "",
        )
    return None


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "Database unavailable"}},
)
async def health(request: Request) -> JSONResponse:
    latency = await probe_database(request)
    ok = latency is not None
    body = HealthStatus(
        status="ok" if ok else "degraded",
        database="connected" if ok else "unavailable",
        db_latency_ms=round(latency, 3) if ok else None,
        version=request.app.state.settings.VERSION,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
