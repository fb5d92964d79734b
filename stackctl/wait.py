"""Waiting for what Compose cannot wait for (`up --wait` covers health checks and one-shot
services): an HTTP answer, an edit served. One loop, for the tasks, the bench and the tests."""

import time


def wait_until(predicate, timeout, interval=0.02):
    """Seconds until predicate() held (errors count as not yet), or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(interval)
    return None
