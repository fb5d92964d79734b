"""The dev stack's reload latency, from a source file written to the edit served: the backend's
reload (a route's answer) and Vite's HMR (the module it serves). One measurement, for the bench
and for tests/integration/test_dev_stack.py."""

import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass

from .. import Problem
from ..wait import wait_until
from .loopback import http

BACKEND_SOURCE = "backend/app/main.py"
FRONTEND_SOURCE = "frontend/src/App.tsx"
# What the measurements replace: the root route's name, and the page's heading.
BACKEND_ROUTE = "AppInfo(name=settings.PROJECT_NAME,"
FRONTEND_HEADING = "<h1>Todos</h1>"
# Seconds between writes to a watched file. Vite's watcher (chokidar) drops a change whose
# mtime equals the one it stat()ed for the previous event, which happens when the next
# write lands before that stat: an edit restored within tens of milliseconds (or the next
# edit right after the restore) was then never served. No one saves twice that fast.
SETTLE_S = 1.0


@dataclass
class Reload:
    source: str  # the file edited, relative to the tree
    seconds: float | None  # from the write to the edit served; None: not served within the wait
    restored: bool | None  # the original served again once the file was restored (None: not waited for)


@contextmanager
def edited(path, transform):
    """The file changed by transform(text) inside the block, restored afterwards."""
    original = path.read_text()
    changed = transform(original)
    if changed == original:
        raise Problem(
            f"{path.name} no longer has the line the reload measurement edits; update stackctl/bench/reload.py"
        )
    try:
        yield changed
    finally:
        path.write_text(original)


def edit_until_served(tree, source, old, new, served, wait_s):
    """Writes `new` in place of `old` in tree/source and times it until served() holds; then
    restores the file and waits (as long again) until the original is served."""
    path = tree / source
    time.sleep(SETTLE_S)
    with edited(path, lambda text: text.replace(old, new)) as changed:
        start = time.monotonic()
        path.write_text(changed)
        took = None if wait_until(served, wait_s) is None else time.monotonic() - start
        time.sleep(SETTLE_S)
    if took is None:
        return Reload(source, None, None)
    return Reload(source, took, wait_until(lambda: not served(), wait_s) is not None)


def backend_reload(tree, backend_url, wait_s):
    """The backend's root route renamed in the copy at `tree`, until `backend_url` answers with the new name."""
    marker = f"reload-{secrets.token_hex(4)}"
    return edit_until_served(
        tree,
        BACKEND_SOURCE,
        BACKEND_ROUTE,
        f"AppInfo(name={marker!r},",
        lambda: http("GET", f"{backend_url}/").json()["name"] == marker,
        wait_s,
    )


def vite_hmr(tree, frontend_url, wait_s):
    """The page's heading changed in the copy at `tree`, until Vite at `frontend_url` serves the module with it."""
    marker = f"Todos {secrets.token_hex(4)}"
    module = f"{frontend_url}/src/App.tsx"
    http("GET", module)  # Vite has the module in its graph, as in a browser session
    return edit_until_served(
        tree,
        FRONTEND_SOURCE,
        FRONTEND_HEADING,
        f"<h1>{marker}</h1>",
        lambda: marker in http("GET", module).text,
        wait_s,
    )
