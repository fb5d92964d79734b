#!/bin/sh
# Production entry point: uvicorn with N workers (migrations run in the one-shot
# `migrate` service, before any backend starts), and the metrics listener.
#   WEB_CONCURRENCY  worker processes (default 2)
#   PORT             listen port of the API (default 8000)
#   METRICS_PORT     listen port of the Prometheus metrics (default 9100): on the
#                    compose networks only, never published nor proxied by nginx
#   DOCS_ENABLED     the API's /docs and /redoc pages (default false here: they
#                    load swagger-ui and redoc from a CDN)
#   HEALTH_REQUIRES_MIGRATIONS
#                    /health is 503 until the database is at the code's migration
#                    head (default true here: not ready on an unmigrated schema or
#                    one a newer deploy migrated)
set -eu

export DOCS_ENABLED="${DOCS_ENABLED:-false}"
export HEALTH_REQUIRES_MIGRATIONS="${HEALTH_REQUIRES_MIGRATIONS:-true}"

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    if mkdir -p "$PROMETHEUS_MULTIPROC_DIR" 2>/dev/null && [ -w "$PROMETHEUS_MULTIPROC_DIR" ]; then
        # Files of a previous run would be added into this run's numbers.
        find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
    else
        echo "start.sh: $PROMETHEUS_MULTIPROC_DIR is not writable; the metrics port will show no worker's numbers" >&2
        unset PROMETHEUS_MULTIPROC_DIR
    fi
fi

# uvloop and httptools are asked for by name: "auto" would quietly fall back
# to asyncio and h11. A worker that cannot import them is restarted by uvicorn
# over and over, so the check runs once here, where it stops the container.
python -c 'import uvloop, httptools'
# Likewise the settings (a missing or empty secret file): one line each, then exit.
python -m app.core.config

# The metrics listener: a process of its own, because only one process can bind
# the port and uvicorn's workers are alike (and restarted at will). It reads the
# workers' files in PROMETHEUS_MULTIPROC_DIR at each scrape, so it serves every
# worker's numbers while it takes no CPU from them between scrapes. It stays a
# child of this PID once uvicorn has replaced the shell below; it ends with the
# container.
python -m app.core.metrics "${METRICS_PORT:-9100}" &

# --no-proxy-headers: the client address stays the TCP peer's (uvicorn would otherwise take
# X-Forwarded-For from 127.0.0.1); the rate limiter alone decides whom to believe
# (TRUSTED_PROXIES, X-Real-IP).
exec uvicorn app.main:app \
    --host 0.0.0.0 \
    --port "${PORT:-8000}" \
    --no-proxy-headers \
    --workers "${WEB_CONCURRENCY:-2}" \
    --loop uvloop \
    --http httptools \
    --no-server-header \
    --timeout-graceful-shutdown 20
