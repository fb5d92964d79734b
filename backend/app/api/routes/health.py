"""GET /health: liveness plus a bounded database probe."""

from __future__ import annotations

import asyncio
import logging
import threading
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


# Probes stuck on an unresponsive server, at most; past that the database
# is reported unavailable without starting another one.
MAX_PENDING_PROBES = 8
_probe_slots = threading.BoundedSemaphore(MAX_PENDING_PROBES)


def _start_probe(engine: Engine) -> asyncio.Future[float]:
    """Run _ping on a daemon thread (never joined at exit, unlike executor
    threads) and return a future for its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[float] = loop.create_future()

    def deliver(result: float | None, exc: BaseException | None) -> None:
        if future.done():  # abandoned after the timeout
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result, error = None, None
        try:
            result = _ping(engine)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
            error = exc
        finally:
            _probe_slots.release()
        try:
            loop.call_soon_threadsafe(deliver, result, error)
        except RuntimeError:  # event loop already closed
            pass

    threading.Thread(target=run, name="health-probe", daemon=True).start()
    return future


async def probe_database(request: Request) -> float | None:
    """Latency in ms, or None when the database does not answer in time.

    The blocking probe runs on its own thread and is abandoned after
    HEALTH_CHECK_TIMEOUT, so the endpoint answers in bounded time even when
    connecting hangs (blackholed host, slow DNS, exhausted pool). An
    abandoned probe ends by itself through libpq's connect_timeout, the
    pool timeout or the server's statement_timeout.
    """
    state = request.app.state
    if not _probe_slots.acquire(blocking=False):
        log.warning("health: %d database probes still pending", MAX_PENDING_PROBES)
        return None
    try:
        future = _start_probe(state.engine)
    except BaseException:
        _probe_slots.release()
        raise
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
