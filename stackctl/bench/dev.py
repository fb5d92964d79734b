"""Sections `up` and `reload`, on the dev stack: `inv up` to all-healthy, and the reload
latencies of the backend and of Vite (stackctl.bench.reload)."""

from .. import Problem
from .reload import backend_reload, vite_hmr


def ups(bench):
    """`inv up` from stopped containers and from no containers (images built, data volume kept)."""
    bench.copy.dev_stack_up(bench.say)
    for _ in range(bench.runs):
        bench.copy.compose("stop")
        bench.add("up_from_stopped_s", "inv up from stopped containers", "s", "up", bench.copy.inv("up"))
        bench.copy.inv("down")
        bench.add("up_from_nothing_s", "inv up from no containers (images built)", "s", "up", bench.copy.inv("up"))


def reloads(bench):
    bench.copy.dev_stack_up(bench.say)
    for _ in range(bench.runs):
        reload = backend_reload(bench.copy.path, bench.copy.url("BACKEND_PORT"), bench.wait_s)
        bench.add(
            "backend_reload_s", "backend reload (write -> new response)", "s", "reload", _served(reload, bench.wait_s)
        )
    for _ in range(bench.runs):
        reload = vite_hmr(bench.copy.path, bench.copy.url("FRONTEND_PORT"), bench.wait_s)
        bench.add(
            "vite_hmr_s", "Vite HMR (write -> updated module served)", "s", "reload", _served(reload, bench.wait_s)
        )


def _served(reload, wait_s):
    """A reload's seconds; a Problem when the edit was not served, or still is after its restore."""
    if reload.seconds is None:
        raise Problem(
            f"bench: the dev stack did not serve the edit of {reload.source} within {wait_s:g} s; see the bench log"
        )
    if not reload.restored:
        raise Problem(f"bench: the dev stack still serves the edit of {reload.source} after restoring it")
    return reload.seconds
