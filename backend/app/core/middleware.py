"""Pure ASGI middlewares: request log + metrics, request deadline, body size limit."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import metrics

access_log = logging.getLogger("app.access")
log = logging.getLogger("app")

UNMATCHED = "<unmatched>"
QUIET_PATHS = {"/health"}
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RouteTemplates:
    """Maps a request path to its route's path template
    ("/api/v1/todos/{todo_id}"), never the raw path, which keeps the metrics'
    label cardinality bounded.

    Built once, lazily, from the OpenAPI paths (full templates, prefixes
    included, whatever the FastAPI version does internally with included
    routers) plus the app's plain top-level routes (/docs, /redoc, ...).
    A request that reached a route is looked up by that route (the router
    leaves it in the scope) after its first match: one dict lookup, not a
    scan of the patterns.
    """

    def __init__(self) -> None:
        self._patterns: list[tuple[re.Pattern[str], str]] | None = None
        self._by_route: dict[int, str] = {}

    def _build(self, app: Any) -> list[tuple[re.Pattern[str], str]]:
        try:
            templates: set[str] = set(app.openapi().get("paths", {}))
        except Exception:  # noqa: BLE001 - metrics must never break requests
            log.exception("cannot build the OpenAPI schema for route templates")
            templates = set()
        for route in getattr(app, "routes", ()):
            path = getattr(route, "path", None)
            if isinstance(path, str) and path.startswith("/"):
                templates.add(path)
        # Literal segments win over parameters ("/todos/stats" before "/todos/{id}").
        ordered = sorted(templates, key=lambda t: (t.count("{"), -len(t)))
        return [(compile_path(t)[0], t) for t in ordered]

    def __call__(self, scope: Scope) -> str:
        app = scope.get("app")
        if app is None or not hasattr(app, "openapi"):
            return UNMATCHED
        route = scope.get("route")
        template = self._by_route.get(id(route)) if route is not None else None
        if template is None:
            template = self._match(app, scope.get("path", ""))
            if route is not None:
                self._by_route[id(route)] = template
        return template

    def _match(self, app: Any, path: str) -> str:
        if self._patterns is None:
            self._patterns = self._build(app)
        for pattern, template in self._patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


class RequestLogMiddleware:
    """Times each request, records Prometheus metrics, writes one access log
    line and echoes/creates an X-Request-ID header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route_template = RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            template = self.route_template(scope)
            method = scope["method"]
            metrics.observe(method, template, status_code, elapsed)
            client = scope.get("client")
            fields: dict[str, Any] = {
                "method": method,
                "path": scope["path"],
                "route": template,
                "status": status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "client": client[0] if client else None,
                "request_id": request_id,
            }
            level = logging.DEBUG if scope["path"] in QUIET_PATHS and status_code < 400 else logging.INFO
            access_log.log(level, "%s %s %s", method, scope["path"], status_code, extra=fields)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"Request body exceeds {limit} bytes")


class BodySizeLimitMiddleware:
    """Refuses request bodies over `max_body_size` bytes with 413.

    A declared Content-Length over the limit is refused before reading
    anything; a body without one (chunked) is counted as it streams and
    refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        limit = self.max_body_size
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _reply(scope, receive, send, 400, "Invalid Content-Length header")
                return
            if length > limit:
                await _reply(scope, receive, send, 413, BodyTooLarge(limit).detail)
                return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            # Normally FastAPI turns it into the 413 itself; this catches a
            # body read outside a route (e.g. by another middleware).
            if response_started:
                raise
            await _reply(scope, receive, send, 413, exc.detail)


class RequestTimeoutMiddleware:
    """Cancels a request that has not started its response after `timeout` seconds.

    Cancelling reaches the statement in flight (asyncpg asks the server to cancel it), and
    a request cancelled before its COMMIT can never commit: the answer is 503 with
    Retry-After, nothing was changed. Its transaction rolls back as it unwinds; that gets
    up to ROLLBACK_GRACE seconds before the answer goes out and finishes in the background
    after (a frozen database answers nothing, not even a rollback). Only when the deadline
    passed while a COMMIT was on its way (`commit_in_flight` in the request state, set by
    deps.write_transaction) can nobody tell whether it committed: then 504 without
    Retry-After, so that a client does not blindly repeat a write that may have happened.
    A response that has started is never cut off.
    """

    ROLLBACK_GRACE = 1.0

    def __init__(self, app: ASGIApp, timeout: float, exempt_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.timeout = timeout
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.timeout or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return

        response_started = False
        abandoned = False

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if abandoned:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        work = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        try:
            await asyncio.wait_for(asyncio.shield(work), self.timeout)
            return
        except TimeoutError:
            if work.done() or response_started:
                await work
                return
        except asyncio.CancelledError:
            work.cancel()
            raise

        outcome_unknown = scope.get("state", {}).get("commit_in_flight", False)
        abandoned = True
        work.cancel()
        await asyncio.wait({work}, timeout=self.ROLLBACK_GRACE)
        work.add_done_callback(_retrieve_result)
        log.warning(
            "request timed out after %ss: %s %s; %s",
            self.timeout,
            scope["method"],
            scope["path"],
            "its commit was in flight: outcome unknown" if outcome_unknown else "cancelled before any commit",
            extra={"path": scope["path"]},
        )
        if outcome_unknown:
            await _reply(scope, receive, send, 504, "Request timed out; whether it took effect is unknown")
        else:
            await _reply(scope, receive, send, 503, "Request timed out", retry_after=5)


def _retrieve_result(task: asyncio.Future[None]) -> None:
    """Consume a cancelled request's outcome, so asyncio does not report it as never retrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.info("cancelled request ended with %s", type(task.exception()).__name__)


async def _reply(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    retry_after: int | None = None,
) -> None:
    headers = {"Connection": "close"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    response = JSONResponse({"detail": detail}, status_code=status, headers=headers)
    await response(scope, receive, send)
