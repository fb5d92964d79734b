#!/bin/sh
# Production entry point: uvicorn with N workers (migrations run in the one-shot
# `migrate` service, before any backend starts).
#   WEB_CONCURRENCY  worker processes (default 2)
#   PORT             listen port (default 8000)
set -eu

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    if mkdir -p "$PROMETHEUS_MULTIPROC_DIR" 2>/dev/null && [ -w "$PROMETHEUS_MULTIPROC_DIR" ]; then
        # Files of a previous run would be added into this run's numbers.
        find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
    else
        echo "start.sh: $PROMETHEUS_MULTIPROC_DIR is not writable; /metrics will show one worker only" >&2
        unset PROMETHEUS_MULTIPROC_DIR
    fi
fi

# uvloop and httptools are asked for by name: "auto" would quietly fall back
# to asyncio and h11. A worker that cannot import them is restarted by uvicorn
# over and over, so the check runs once here, where it stops the container.
python -c 'import uvloop, httptools'
# Likewise the settings (a missing or empty secret file): one line each, then exit.
python -m app.core.config

exec uvicorn app.main:app \
    --host 0.0.0.0 \
    --port "${PORT:-8000}" \
    --workers "${WEB_CONCURRENCY:-2}" \
    --loop uvloop \
    --http httptools \
    --no-server-header \
    --timeout-graceful-shutdown 20
