"""FastAPI application."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from app.api.router import api_router, root_router
from app.core.config import Settings, get_settings
from app.core.db import REFUSED_VALUE, UNAVAILABLE, connections_lost, create_pool
from app.core.logging import configure_logging
from app.core.middleware import (
    BodySizeLimitMiddleware,
    RequestLogMiddleware,
    RequestTimeoutMiddleware,
)
from app.core.migrations import code_revisions
from app.core.ratelimit import RateLimiter, RateLimitMiddleware
from app.schemas import AppInfo

log = logging.getLogger("app")

DB_UNAVAILABLE = {"detail": "Database unavailable"}


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a body that echoes client input
    (a validation error) stays encodable even when that input holds a lone surrogate."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    reason = (str(exc).strip().splitlines() or [""])[0][:300]
    if isinstance(exc, UNAVAILABLE):
        log.warning("database unavailable: %s: %s", type(exc).__name__, reason, extra={"path": request.url.path})
        if connections_lost(exc):
            # The server restarted or went away: the other idle connections are dead too.
            await request.app.state.pool.expire_connections()
        return JSONResponse(DB_UNAVAILABLE, status_code=503, headers={"Retry-After": "5"})
    if isinstance(exc, REFUSED_VALUE):
        log.warning("database refused a value: %s", reason, extra={"path": request.url.path})
        return JSONResponse({"detail": "A value was refused by the database"}, status_code=422)
    log.error("database error", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.LOG_LEVEL if not settings.DEBUG else "DEBUG", settings.LOG_FORMAT)
    limiter = RateLimiter(settings) if settings.RATE_LIMIT_ENABLED else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = settings.SQLALCHEMY_DATABASE_URI
        log.info(
            "starting %s %s (database %s:%s/%s)",
            settings.PROJECT_NAME,
            settings.VERSION,
            db.host,
            db.port,
            db.database,
        )
        app.state.pool = await create_pool(settings)
        # The code's migration head, read once here rather than by the first /health.
        code_revisions()
        if limiter is not None:
            limiter.open()
        # What import and start-up made lives as long as the process: moved out of the
        # garbage collector's sight, so that its full collections, which pause requests,
        # have that much less to scan.
        gc.freeze()
        try:
            yield
        finally:
            if limiter is not None:
                await limiter.close()
            await app.state.pool.close()

    app = FastAPI(
        title=settings.PROJECT_NAME,
        version=settings.VERSION,
        debug=settings.DEBUG,
        lifespan=lifespan,
        # operationId = the route function's name ("create_todo"): short, stable, and what
        # the OpenAPI links on create_todo refer to.
        generate_unique_id_function=lambda route: route.name,
        docs_url="/docs" if settings.DOCS_ENABLED else None,
        redoc_url="/redoc" if settings.DOCS_ENABLED else None,
    )
    app.state.settings = settings
    app.state.rate_limiter = limiter

    # Added innermost first. Outermost to innermost: RequestLog, CORS, RateLimit,
    # RequestTimeout, BodySizeLimit; so every response (429s, 413s and 503s included) is
    # logged, counted and CORS-tagged (a browser's script can read a 429), and a CORS
    # preflight, which CORSMiddleware answers itself, does not count against the limit.
    app.add_middleware(BodySizeLimitMiddleware, max_body_size=settings.MAX_BODY_SIZE)
    app.add_middleware(
        RequestTimeoutMiddleware,
        timeout=settings.REQUEST_TIMEOUT,
        exempt_paths=frozenset({"/health"}),  # bounded by HEALTH_CHECK_TIMEOUT
    )
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    allow_all = "*" in settings.CORS_ORIGINS
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if allow_all else settings.CORS_ORIGINS,
        allow_credentials=not allow_all,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )
    app.add_middleware(RequestLogMiddleware)

    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for error in (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        app.add_exception_handler(error, database_error_handler)

    app.include_router(root_router)
    app.include_router(api_router)

    @app.get("/", response_model=AppInfo, tags=["meta"])
    async def root() -> AppInfo:
        return AppInfo(name=settings.PROJECT_NAME, version=settings.VERSION)

    return app


app = create_app()
