"""The rate limiter: who the client is, the budget in the real Redis (REDIS_URL, the stack's
own), and failing open when Redis is down or frozen.

Every test that counts uses client addresses of its own (TestClient's `client`), so runs
sharing one Redis never count on each other's budgets."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import uvloop
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy.engine import URL

from app.core.config import Settings
from app.core.ratelimit import FailOpenLog, RateLimiter, TrustedProxies, client_key
from app.main import create_app
from tests.conftest import make_settings
from tests.tcp_proxy import TcpProxy

TODOS = "/api/v1/todos"


def unique_address() -> str:
    """An address in 198.18.0.0/15 (benchmarking, never routed) no other test or run uses."""
    a, b = secrets.token_bytes(2)
    return f"198.{18 + (a & 1)}.{b}.{1 + secrets.randbelow(254)}"


def scope(peer: str, **headers: str) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 40000),
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
    }


def limiter(**settings: object) -> RateLimiter:
    return RateLimiter(Settings(_env_file=None, **settings))


# --- who the client is -------------------------------------------------------------------


def client_of(rl: RateLimiter, peer: str, **headers: str) -> str | None:
    return asyncio.run(rl.client(scope(peer, **headers)))


def test_the_peer_is_the_client_and_its_headers_are_ignored_without_trusted_proxies() -> None:
    assert client_of(limiter(), "203.0.113.7", x_real_ip="192.0.2.1", x_forwarded_for="192.0.2.2") == "203.0.113.7"


def test_a_trusted_proxy_names_the_client_in_x_real_ip_only() -> None:
    rl = limiter(TRUSTED_PROXIES="10.0.0.5,172.16.0.0/12")
    assert client_of(rl, "10.0.0.5", x_real_ip="192.0.2.1") == "192.0.2.1"
    assert client_of(rl, "172.20.3.4", x_real_ip="192.0.2.9") == "192.0.2.9"
    # X-Forwarded-For's first entries are whatever the client sent: never read.
    assert client_of(rl, "10.0.0.5", x_forwarded_for="192.0.2.1") == "10.0.0.5"
    # Not an address: the peer counts.
    assert client_of(rl, "10.0.0.5", x_real_ip="nonsense") == "10.0.0.5"
    # Any other peer's header is ignored.
    assert client_of(rl, "10.0.0.6", x_real_ip="192.0.2.1") == "10.0.0.6"


def test_a_trusted_proxy_name_is_looked_up_before_its_first_request_counts() -> None:
    rl = limiter(TRUSTED_PROXIES="localhost")
    assert client_of(rl, "127.0.0.1", x_real_ip="192.0.2.1") == "192.0.2.1"
    assert "127.0.0.1" in rl.proxies.resolved
    # Another peer: looked up again at most once a second, and not trusted.
    assert client_of(rl, "203.0.113.7", x_real_ip="192.0.2.1") == "203.0.113.7"


def test_a_name_that_no_longer_resolves_is_trusted_no_more() -> None:
    async def scenario() -> frozenset[str]:
        proxies = TrustedProxies(["localhost"])
        await proxies.resolve()
        assert "127.0.0.1" in proxies.resolved
        proxies.names = ["no-such-host.invalid"]
        await proxies.resolve()
        return proxies.resolved

    assert asyncio.run(scenario()) == frozenset()


@pytest.mark.parametrize(
    "error", [OSError(11, "Resource temporarily unavailable"), RuntimeError("can't start new thread")]
)
def test_a_look_up_that_fails_leaves_the_peer_untrusted_and_the_request_served(monkeypatch, error) -> None:
    async def failing(*args: object, **kwargs: object) -> None:
        raise error

    async def scenario() -> bool:
        proxies = TrustedProxies(["frontend"])
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", failing)
        return await proxies.trusts("10.0.0.9")

    assert asyncio.run(scenario()) is False


def test_client_keys_group_ipv6_by_64_and_unwrap_mapped_ipv4() -> None:
    assert client_key("192.0.2.1") == "ratelimit:192.0.2.1"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "ratelimit:2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "ratelimit:192.0.2.1"


def test_settings_refuse_a_malformed_trusted_network() -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        Settings(_env_file=None, TRUSTED_PROXIES="10.0.0.0/33")
    assert Settings(_env_file=None, TRUSTED_PROXIES='["frontend", " 10.0.0.1 "]').TRUSTED_PROXIES == [
        "frontend",
        "10.0.0.1",
    ]


# --- the budget, in the real Redis -------------------------------------------------------


@pytest.fixture(scope="module")
def limited_app(database_url: URL):
    return create_app(make_settings(database_url, RATE_LIMIT_REQUESTS=5, RATE_LIMIT_WINDOW_S=60))


@pytest.fixture
def as_client(limited_app) -> Iterator[TestClient]:
    with TestClient(limited_app, client=(unique_address(), 50000)) as c:
        yield c


def test_the_limit_bites_on_the_request_after_the_budget_and_not_before(as_client: TestClient) -> None:
    assert [as_client.get(TODOS).status_code for _ in range(5)] == [200] * 5
    refused = as_client.get(TODOS, headers={"Origin": "http://localhost:3000"})
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert refused.json() == {
        "detail": f"Too many requests: at most 5 per 60 s; retry in {retry_after} s",
        "retry_after_s": retry_after,
    }
    # Readable by the page's script: the answer carries the CORS headers.
    assert refused.headers["access-control-allow-origin"] == "http://localhost:3000"
    # Every method counts: a write is refused too, and nothing is written.
    assert as_client.post(TODOS, json={"title": "over the limit"}).status_code == 429


def test_health_and_the_root_are_not_limited(as_client: TestClient) -> None:
    for _ in range(5):
        as_client.get(TODOS)
    assert as_client.get(TODOS).status_code == 429
    assert as_client.get("/health").status_code == 200
    assert as_client.get("/").status_code == 200
    assert as_client.get("/openapi.json").status_code == 200


def test_clients_have_budgets_of_their_own(limited_app) -> None:
    with TestClient(limited_app, client=(unique_address(), 1)) as first:
        assert [first.get(TODOS).status_code for _ in range(6)] == [200] * 5 + [429]
    with TestClient(limited_app, client=(unique_address(), 1)) as second:
        assert second.get(TODOS).status_code == 200


def test_the_window_ends_and_the_budget_is_whole_again(database_url: URL) -> None:
    app = create_app(make_settings(database_url, RATE_LIMIT_REQUESTS=2, RATE_LIMIT_WINDOW_S=1))
    with TestClient(app, client=(unique_address(), 1)) as c:
        assert [c.get(TODOS).status_code for _ in range(3)][-1] == 429
        # Redis expires the counter after the window; poll instead of guessing the moment.
        assert _eventually(lambda: c.get(TODOS).status_code == 200)


def _eventually(predicate, attempts: int = 100, interval: float = 0.05) -> bool:
    waiter = threading.Event()
    for _ in range(attempts):
        if predicate():
            return True
        waiter.wait(interval)
    return False


def test_rate_limit_off_means_no_redis_and_health_says_disabled(database_url: URL) -> None:
    app = create_app(make_settings(database_url, RATE_LIMIT_ENABLED=False, RATE_LIMIT_REQUESTS=1))
    with TestClient(app, client=(unique_address(), 1)) as c:
        assert [c.get(TODOS).status_code for _ in range(3)] == [200] * 3
        assert c.get("/health").json()["redis"] == "disabled"
    assert app.state.rate_limiter is None


def test_health_shows_redis_connected(client: TestClient) -> None:
    assert client.get("/health").json()["redis"] == "connected"


# --- failing open ------------------------------------------------------------------------


def unchecked(reason: str = "redis") -> float:
    return REGISTRY.get_sample_value("rate_limit_unchecked_total", {"reason": reason}) or 0.0


@pytest.fixture
def silent_redis() -> Iterator[tuple[str, list[socket.socket]]]:
    """A "Redis" that accepts connections and never answers (a frozen server): its URL, and
    the connections it accepted."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", accepted
    server.close()
    for conn in accepted:
        conn.close()


def test_a_frozen_redis_fails_open_and_is_not_asked_again_for_a_while(
    database_url: URL, silent_redis: tuple[str, list[socket.socket]], caplog: pytest.LogCaptureFixture
) -> None:
    url, accepted = silent_redis
    settings = make_settings(
        database_url, REDIS_URL=url, RATE_LIMIT_REQUESTS=1, REDIS_TIMEOUT=0.2, RATE_LIMIT_RETRY_S=60
    )
    before = unchecked()
    app = create_app(settings)
    # create_app set up the root logger's handlers anew: caplog's listens on the limiter's own.
    limiter_log = logging.getLogger("app.core.ratelimit")
    limiter_log.addHandler(caplog.handler)
    try:
        with TestClient(app, client=(unique_address(), 1)) as c:
            statuses = [c.get(TODOS).status_code for _ in range(10)]
            health = c.get("/health")
    finally:
        limiter_log.removeHandler(caplog.handler)
    # Within a budget of 1, ten requests went through: nothing could count them.
    assert statuses == [200] * 10
    assert unchecked() - before == 10
    # Only the first request waited for Redis; the others went on without asking it.
    assert len(accepted) == 2  # the first request's connection, and /health's
    failures = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    assert "Timeout" in failures[0].getMessage()
    # The backend is healthy; only its limiter is degraded.
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["redis"] == "degraded"


def test_a_redis_that_refuses_connections_fails_open(database_url: URL, closed_port: int) -> None:
    settings = make_settings(database_url, REDIS_URL=f"redis://127.0.0.1:{closed_port}/0", RATE_LIMIT_REQUESTS=1)
    before = unchecked()
    with TestClient(create_app(settings), client=(unique_address(), 1)) as c:
        assert [c.get(TODOS).status_code for _ in range(3)] == [200] * 3
        health = c.get("/health")
    assert unchecked() - before == 3
    assert (health.status_code, health.json()["redis"]) == (200, "degraded")


def test_limiting_resumes_when_redis_is_back(database_url: URL) -> None:
    """The stack's Redis behind a proxy that is cut (Redis down) and restored."""
    redis_url = urlsplit(Settings(_env_file=None).REDIS_URL.get_secret_value())
    proxy = TcpProxy(redis_url.hostname or "redis", redis_url.port or 6379)
    proxy.start()
    try:
        settings = make_settings(
            database_url,
            REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
            RATE_LIMIT_REQUESTS=3,
            RATE_LIMIT_RETRY_S=0.2,
        )
        with TestClient(create_app(settings), client=(unique_address(), 1)) as c:
            assert [c.get(TODOS).status_code for _ in range(4)] == [200] * 3 + [429]
            proxy.stop()
            assert [c.get(TODOS).status_code for _ in range(5)] == [200] * 5
            assert c.get("/health").json()["redis"] == "degraded"
            proxy.start()
            # The client's counter survived in Redis: refused again once Redis is asked again.
            assert _eventually(lambda: c.get(TODOS).status_code == 429)
            assert c.get("/health").json()["redis"] == "connected"
    finally:
        proxy.stop()


def test_a_connection_reset_while_idle_fails_open_under_uvloop(database_url: URL) -> None:
    """A pooled connection that Redis (or the way to it) resets while idle, as when Redis is
    replaced on a lost swarm node: the next check fails open, and the one after the pause
    counts again on a new connection. Under uvloop, the server's loop: writing on the reset
    connection raises RuntimeError there, which once answered the request with a 500."""
    redis_url = urlsplit(Settings(_env_file=None).REDIS_URL.get_secret_value())
    proxy = TcpProxy(redis_url.hostname or "redis", redis_url.port or 6379)
    proxy.start()
    client = unique_address()

    async def scenario() -> list[int]:
        settings = make_settings(
            database_url, REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", RATE_LIMIT_REQUESTS=1, RATE_LIMIT_RETRY_S=0.2
        )
        rl = RateLimiter(settings)
        rl.open()
        try:
            first = await rl.retry_after_ms(client)
            proxy.reset()
            await asyncio.sleep(0.2)  # the loop reads the RST and closes the connection's transport
            after_reset = await rl.retry_after_ms(client)
            await asyncio.sleep(0.3)  # past RATE_LIMIT_RETRY_S
            return [first, after_reset, await rl.retry_after_ms(client)]
        finally:
            await rl.close()

    before = unchecked()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            first, after_reset, resumed = runner.run(scenario())
    finally:
        proxy.stop()
    assert (first, after_reset) == (0, 0)
    assert unchecked() - before == 1
    assert resumed > 0, "the second request of a budget of 1 is refused once Redis is asked again"


def test_a_request_that_finds_every_connection_busy_goes_on_without_waiting(database_url: URL) -> None:
    async def scenario() -> tuple[int, float]:
        rl = RateLimiter(make_settings(database_url, RATE_LIMIT_REQUESTS=1, REDIS_POOL_SIZE=2))
        rl.open()
        try:
            rl.in_flight = 2  # two checks under way: the pool is spoken for
            wait_ms = await rl.retry_after_ms(unique_address())
            return wait_ms, rl.paused_until
        finally:
            await rl.close()

    before = unchecked("busy")
    wait_ms, paused_until = asyncio.run(scenario())
    assert (wait_ms, unchecked("busy") - before) == (0, 1)
    assert paused_until == -math.inf, "a busy pool is no Redis failure: the others must keep asking"


def test_the_failure_log_is_one_line_per_minute_at_most(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    clock = [1000.0]
    monkeypatch.setattr("app.core.ratelimit.time.monotonic", lambda: clock[0])
    failures = FailOpenLog()
    with caplog.at_level(logging.WARNING, logger="app.core.ratelimit"):
        for _ in range(100):
            failures.failed(ConnectionError("refused"))
            failures.skipped()
            clock[0] += 0.1  # 10 s in all
        clock[0] += 60
        failures.failed(ConnectionError("refused"))
        failures.recovered()
        failures.recovered()  # nothing more to say
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "(1 so far)" in lines[0] and "(201 so far)" in lines[1]
    assert "limiting resumed (201 requests went through unchecked)" in lines[2]
