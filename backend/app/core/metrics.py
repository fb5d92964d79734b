"""Prometheus metrics.

The workers count requests; `python -m app.core.metrics PORT` serves the numbers to
scrapers on a port of its own (scripts/start.sh starts it next to uvicorn), never on
the API's port: nothing public routes there. With several uvicorn workers set
PROMETHEUS_MULTIPROC_DIR (the prod image does): each worker writes its numbers to
files there, and this server adds up those of every worker at each scrape.
"""

from __future__ import annotations

import os
import sys
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

LABELS = ("method", "path", "status")

REQUESTS = Counter("http_requests_total", "HTTP requests handled.", LABELS)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency in seconds.",
    LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Requests to the API that the rate limiter let through without a check (app.core.ratelimit
# fails open), by reason: "redis", it did not answer (or had not answered a moment ago);
# "busy", every pooled connection of the worker was in use. Their share of http_requests_total
# is how open it was.
RATE_LIMIT_UNCHECKED = Counter(
    "rate_limit_unchecked_total", "API requests the rate limiter let through unchecked.", ("reason",)
)


def observe(method: str, path: str, status: int, seconds: float) -> None:
    labels = (method, path, str(status))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(seconds)


def registry() -> CollectorRegistry:
    """The registry a scrape reads: every worker's files, or this process's own numbers."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def listen(port: int, address: str = "0.0.0.0") -> WSGIServer:
    """A server for scrapers on address:port (any path answers), in a background thread."""
    server, _ = start_http_server(port, address, registry=registry())
    return server


def serve(port: int) -> None:
    """Serve the metrics on every address of the container until the process is killed."""
    listen(port)
    threading.Event().wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
