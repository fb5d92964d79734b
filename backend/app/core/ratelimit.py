"""Rate limiting of the API per client address, with the counters in Redis.

A fixed window per client: the first request creates the client's counter with a lifetime of
RATE_LIMIT_WINDOW_S; every request adds one; past RATE_LIMIT_REQUESTS the answer is 429 with
Retry-After (the counter's remaining lifetime) until the counter expires. One round trip per
request: a Lua script (EVALSHA) that increments, sets the lifetime and reads it atomically, so
every worker and replica shares the same budget and no request can slip between two commands.

Fail open: when Redis does not answer within REDIS_TIMEOUT (down, frozen, unreachable), the
request goes through unchecked, and for RATE_LIMIT_RETRY_S after that so do the others without
asking Redis, so an outage costs one timeout per period, not per request. A request that finds
all of the worker's REDIS_POOL_SIZE connections busy goes through unchecked as well (without
waiting, and without pausing the others). Each such request is counted
(rate_limit_unchecked_total, by reason); the log gets one line when an outage starts, one a
minute while it lasts, and one when Redis answers again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import socket
import time
from collections.abc import Iterable

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core import metrics
from app.core.config import Settings

log = logging.getLogger(__name__)

LIMITED_PREFIX = "/api/"
KEY_PREFIX = "ratelimit:"

# KEYS[1] the client's counter; ARGV[1] the window in ms, ARGV[2] the limit. Returns 0 while
# the client is within the limit, else the milliseconds until its window ends.
WINDOW_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return 0
end
if count <= tonumber(ARGV[2]) then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return ttl
"""

# Failures Redis or the way to it can cause; anything else is a bug and is raised.
# RuntimeError: uvloop's (the server's loop, scripts/start.sh) answer to a command written on a
# connection the server has reset meanwhile, "unable to perform operation on <TCPTransport
# closed=True>"; redis-py passes it on as it is (the standard loop's is a ConnectionResetError).
# It failed requests with a 500 when Redis was replaced on a swarm node's loss.
REDIS_FAILURES = (RedisError, OSError, TimeoutError, RuntimeError)


def create_redis(settings: Settings) -> Redis:
    """The worker's Redis client: a pool of up to REDIS_POOL_SIZE connections, opened on first
    use (the app starts while Redis is down), each command bounded by REDIS_TIMEOUT and never
    retried (a retry would only double the wait of a request that goes on unchecked anyway).
    The pool never runs out: RateLimiter lets no more checks run at once than it holds."""
    pool = ConnectionPool.from_url(
        settings.REDIS_URL.get_secret_value(),
        max_connections=settings.REDIS_POOL_SIZE,
        socket_timeout=settings.REDIS_TIMEOUT,
        socket_connect_timeout=settings.REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        # No CLIENT SETINFO after connecting: two round trips less for each new connection.
        lib_name=None,
        lib_version=None,
    )
    return Redis(connection_pool=pool)


class TrustedProxies:
    """The peers whose X-Real-IP header names the client: addresses, networks, and host
    names. A name is looked up when a peer that is not among its addresses connects, at most
    once a second (a recreated proxy has a new address), and that request waits for the answer
    (up to RESOLVE_TIMEOUT_S), so that no request from a new proxy counts on the proxy's own
    address; the other requests meanwhile wait for the same lookup."""

    RESOLVE_EVERY_S = 1.0
    RESOLVE_TIMEOUT_S = 0.5

    def __init__(self, entries: Iterable[str]) -> None:
        self.addresses: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.names: list[str] = []
        for entry in entries:
            if "/" in entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            elif _is_ip(entry):
                self.addresses.add(str(ipaddress.ip_address(entry)))
            else:
                self.names.append(entry)
        self.resolved: frozenset[str] = frozenset()
        self.resolved_at = -math.inf
        self._resolving: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self.addresses or self.networks or self.names)

    async def trusts(self, peer: str) -> bool:
        if peer in self.addresses or peer in self.resolved:
            return True
        if self.networks and _is_ip(peer):
            address = ipaddress.ip_address(peer)
            if any(address in network for network in self.networks):
                return True
        if not self.names or time.monotonic() - self.resolved_at < self.RESOLVE_EVERY_S:
            return False
        if self._resolving is None:
            self._resolving = asyncio.get_running_loop().create_task(self.resolve())
        try:
            await asyncio.wait_for(asyncio.shield(self._resolving), self.RESOLVE_TIMEOUT_S)
        except TimeoutError:
            log.warning("rate limit: looking up %s took over %s s", ", ".join(self.names), self.RESOLVE_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - a failed look-up must not fail the request
            # Say, no thread for getaddrinfo under the container's PID limit: the request
            # counts for its peer, as when the name does not resolve.
            log.warning("rate limit: looking up %s failed: %s: %s", ", ".join(self.names), type(error).__name__, error)
        return peer in self.resolved

    async def resolve(self) -> None:
        """Look the names up again; a name that no longer resolves is trusted no more."""
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        try:
            for name in self.names:
                try:
                    answers = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
                except OSError:  # gaierror, and the resolver's system errors (EAI_SYSTEM)
                    continue
                found.update(str(ipaddress.ip_address(answer[4][0])) for answer in answers)
            if found != self.resolved:
                log.info("rate limit: trusted proxies %s are at %s", ", ".join(self.names), sorted(found) or "none")
            self.resolved = frozenset(found)
        finally:
            self.resolved_at = time.monotonic()
            self._resolving = None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def client_key(address: str) -> str:
    """The counter a client address counts on. An IPv6 host usually holds a whole /64, so the
    /64 is the client (else it could take a fresh address per request); IPv4 as it is."""
    if ":" not in address:
        return KEY_PREFIX + address
    ip = ipaddress.IPv6Address(address)
    if ip.ipv4_mapped is not None:
        return KEY_PREFIX + str(ip.ipv4_mapped)
    return KEY_PREFIX + str(ipaddress.IPv6Network((ip, 64), strict=False))


class FailOpenLog:
    """Log lines about Redis failures: one when they start, then at most one a minute with the
    number of requests let through unchecked meanwhile, one when Redis answers again."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        self.failing_since: float | None = None
        self.logged_at = -math.inf
        self.unchecked = 0

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        self.unchecked += 1
        if self.failing_since is None:
            self.failing_since = now
        elif now - self.logged_at < self.EVERY_S:
            return
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        log.warning(
            "rate limit: Redis unavailable (%s%s); requests go through unchecked (%d so far)",
            type(error).__name__,
            f": {reason}" if reason else "",
            self.unchecked,
        )
        self.logged_at = now

    def skipped(self) -> None:
        self.unchecked += 1

    def recovered(self) -> None:
        if self.failing_since is None:
            return
        log.warning(
            "rate limit: Redis answers again after %.1f s; limiting resumed (%d requests went through unchecked)",
            time.monotonic() - self.failing_since,
            self.unchecked,
        )
        self.failing_since, self.logged_at, self.unchecked = None, -math.inf, 0


class RateLimiter:
    """The per-client budget. `open()` and `close()` in the app's lifespan make and close the
    worker's Redis client; `client()` says whom a request counts for, `retry_after_ms()`
    counts it and says whether it is refused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limit = settings.RATE_LIMIT_REQUESTS
        self.window_ms = settings.RATE_LIMIT_WINDOW_S * 1000
        self.retry_s = settings.RATE_LIMIT_RETRY_S
        self.proxies = TrustedProxies(settings.TRUSTED_PROXIES)
        self.redis: Redis | None = None
        self.script: AsyncScript | None = None
        self.pool_size = settings.REDIS_POOL_SIZE
        self.in_flight = 0
        self.paused_until = -math.inf
        self.failures = FailOpenLog()

    def open(self) -> None:
        self.redis = create_redis(self.settings)
        self.script = self.redis.register_script(WINDOW_SCRIPT)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = self.script = None

    async def client(self, scope: Scope) -> str | None:
        """The client's address: the TCP peer's, or, from a trusted proxy, the one it states in
        X-Real-IP. Never X-Forwarded-For: its first entries are whatever the client sent."""
        peer = scope.get("client")
        if not peer:
            return None
        address: str = peer[0]
        if self.proxies and await self.proxies.trusts(address):
            stated = header(scope, b"x-real-ip")
            if stated and _is_ip(stated.strip()):
                return stated.strip()
        return address

    async def retry_after_ms(self, client: str) -> int:
        """0 while the client is within its budget, else the milliseconds until its window ends.
        Fails open: 0 when Redis does not answer."""
        if self.script is None or time.monotonic() < self.paused_until:
            metrics.RATE_LIMIT_UNCHECKED.labels("redis").inc()
            self.failures.skipped()
            return 0
        if self.in_flight >= self.pool_size:
            metrics.RATE_LIMIT_UNCHECKED.labels("busy").inc()
            return 0
        self.in_flight += 1
        try:
            wait_ms = int(await self.script(keys=[client_key(client)], args=[self.window_ms, self.limit]))
        except REDIS_FAILURES as error:
            self.paused_until = time.monotonic() + self.retry_s
            metrics.RATE_LIMIT_UNCHECKED.labels("redis").inc()
            self.failures.failed(error)
            return 0
        finally:
            self.in_flight -= 1
        self.failures.recovered()
        return wait_ms

    async def ping(self) -> bool:
        """Whether Redis answers a PING (for /health), connecting and answering each within
        REDIS_TIMEOUT."""
        if self.redis is None:
            return False
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), self.settings.REDIS_TIMEOUT * 2))
        except REDIS_FAILURES:
            return False


class RateLimitMiddleware:
    """429 for a client past its budget on the API (paths under /api/); anything else, and
    every request when no client address is known, passes untouched."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(LIMITED_PREFIX):
            client = await self.limiter.client(scope)
            wait_ms = await self.limiter.retry_after_ms(client) if client else 0
            if wait_ms:
                await self.refuse(scope, receive, send, wait_ms)
                return
        await self.app(scope, receive, send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send, wait_ms: int) -> None:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        limiter = self.limiter
        detail = (
            f"Too many requests: at most {limiter.limit} per {limiter.window_ms // 1000} s; retry in {retry_after} s"
        )
        body = {"detail": detail, "retry_after_s": retry_after}
        response = JSONResponse(body, status_code=429, headers={"Retry-After": str(retry_after)})
        await response(scope, receive, send)
