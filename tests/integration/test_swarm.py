"""The prod stack on a three-node Docker Swarm (issue 14), as a team would run it: `inv
registry` on the manager, `inv push` and `inv deploy` from this machine with DOCKER_HOST at the
manager (tests/integration/swarm_nodes.py). Under a steady wrk load through the public port:
a new version rolls out with no failed request, a version whose health check fails is rolled
back with no failed request, a worker that dies is replaced and nothing is lost; and every bad
input is one line that leaves the running deployment as it was.

The tests run in order, on one deployment. Figures go to reports/measurements.json."""

import concurrent.futures
import json
import re
import threading
import time

import pytest
import requests
from invoke import Context

from stackctl.bases import tool_image
from stackctl.bench import wrk
from stackctl.compose import docker_compose, stack_target
from stackctl.copies import TreeCopy
from stackctl.images import stack_images
from stackctl.wait import wait_until
from tests.helpers import assert_one_line_failure, project_config
from tests.integration.swarm_nodes import Cluster

LIST = "/api/v1/todos?limit=5"
NEW_VERSION = "2.0.0-swarmtest"


@pytest.fixture(scope="module")
def swarm():
    """A copy of the tree with its prod images built, a three-node swarm, a registry on the
    manager, release v1 pushed and deployed. Yields (copy, cluster, env for `inv`)."""
    c = Context(project_config())
    copy = TreeCopy(c, "swarm", settings={"RATE_LIMIT_REQUESTS": "1000000000"})
    cluster = None
    try:
        prod = copy.target(prod=True)
        assert docker_compose(copy.ctx, prod, "build", warn=True, hide=True).ok
        cluster = Cluster(tool_image(c, "dockerd"), copy.ports["PROD_PORT"]).start()
        cluster.load([*sorted(set(stack_images(copy.ctx, prod).values())), tool_image(c, "registry")])
        env = {
            "DOCKER_HOST": cluster.docker_host(),
            "INVOKE_SWARM_REGISTRY": cluster.registry,
            "INVOKE_SWARM_REGISTRY_PUBLISH": "0.0.0.0:5000",
            "INVOKE_SWARM_DEPLOY_TIMEOUT": "300",
        }
        for step in (["registry"], ["push", "--tag", "v1"], ["deploy", "--tag", "v1"]):
            done = copy.inv(*step, env=env)
            assert done.returncode == 0, f"inv {' '.join(step)}:\n{done.stdout}{done.stderr}"
        yield copy, cluster, env
    finally:
        if cluster:
            cluster.close()
        copy.remove()


def stack(copy):
    """The stack's name: the copy's swarm project."""
    return stack_target(copy.ctx, name="swarm").project


def services(copy, cluster):
    """{service: (version index, image)} of the stack, to tell that nothing changed."""
    ids = cluster.on(
        cluster.manager, "service", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack(copy)}"
    )
    if not ids:
        return {}
    found = json.loads(cluster.on(cluster.manager, "service", "inspect", *ids.split()))
    return {
        s["Spec"]["Name"]: (s["Version"]["Index"], s["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]) for s in found
    }


def url(copy, path):
    return copy.url("PROD_PORT", path)


class Prober:
    """GET /health through the public port, one request after another, from a thread: each
    answer's time, status (or error) and the backend version that gave it."""

    def __init__(self, copy):
        self.url, self.seen, self.stop = url(copy, "/health"), [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                answer = requests.get(self.url, timeout=30)
                version = answer.json().get("version") if answer.status_code == 200 else None
                self.seen.append((started, time.monotonic() - started, answer.status_code, version))
            except (requests.RequestException, ValueError) as error:
                self.seen.append((started, time.monotonic() - started, repr(error), None))
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(60)

    def failures(self):
        return [s for s in self.seen if s[2] != 200]


def under_load(copy, seconds, action):
    """wrk's steady load on the list through the public port for `seconds`, and a prober,
    while action() runs (started 5 s in); returns (wrk result, prober, action's result and
    the time it returned)."""
    lua = wrk.COUNT_STATUSES
    with concurrent.futures.ThreadPoolExecutor(1) as pool, Prober(copy) as prober:
        load = pool.submit(wrk.run, url(copy, LIST), lua, seconds=seconds, connections=20, timeout_s=30)
        time.sleep(5)
        outcome = action()
        returned = time.monotonic()
        result = load.result().result
    return result, prober, outcome, returned


def test_every_service_runs_where_it_should_and_the_app_answers(swarm):
    copy, cluster, _env = swarm
    backends = [node for node, state in cluster.tasks(f"{stack(copy)}_backend") if state == "Running"]
    assert len(backends) == 2 and len(set(backends)) == 2, backends
    assert [node for node, _ in cluster.tasks(f"{stack(copy)}_postgres")] == [cluster.manager]
    assert sorted(node for node, _ in cluster.tasks(f"{stack(copy)}_frontend")) == sorted(cluster.nodes)
    health = requests.get(url(copy, "/health"), timeout=10).json()
    assert health["database"] == "connected" and health["migrations"] == "current" and health["redis"] == "connected"
    smoke = copy.inv("smoke", "--prod", "--base-url", url(copy, ""))
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    for spec in services(copy, cluster).values():
        assert "@sha256:" in spec[1], spec


@pytest.mark.parametrize(
    ("case", "args", "extra_env", "message"),
    [
        ("no swarm", ["deploy", "--tag", "v1"], {"DOCKER_HOST": None}, r"this Docker engine is not in a swarm"),
        ("a worker", ["deploy", "--tag", "v1"], {"DOCKER_HOST": "worker"}, r"is a swarm worker, and only a manager"),
        ("registry down", ["deploy", "--tag", "v1", "--registry", "REGISTRY_DOWN"], {}, r"cannot pull .* check that"),
        ("unknown tag", ["deploy", "--tag", "nosuchtag"], {}, r"cannot pull .*:nosuchtag .*`inv push` pushed"),
        ("missing secret", ["deploy", "--tag", "v1"], {"APP_DB_PASSWORD": ""}, r"APP_DB_PASSWORD must be set"),
        ("push to no registry", ["push", "--tag", "v9", "--registry", "REGISTRY_DOWN"], {}, r"pushing .* failed"),
    ],
)
def test_bad_input_is_one_line_and_the_deployment_is_untouched(swarm, case, args, extra_env, message):
    copy, cluster, env = swarm
    before = services(copy, cluster)
    down = f"{cluster.manager}:5999"  # nothing listens there
    args = [down if a == "REGISTRY_DOWN" else a for a in args]
    run_env = {**env, **extra_env}
    if run_env.get("DOCKER_HOST") == "worker":
        run_env["DOCKER_HOST"] = cluster.docker_host(cluster.workers[0])
    if run_env.get("DOCKER_HOST") is None:
        run_env["DOCKER_HOST"] = "unix:///var/run/docker.sock"  # this machine's engine: no swarm
    done = copy.inv(*args, env=run_env, timeout=300)
    assert_one_line_failure(done, "")
    assert re.search(message, done.stderr.strip().splitlines()[-1]), done.stderr
    assert services(copy, cluster) == before, case


def test_a_new_version_rolls_out_with_no_failed_request(swarm, measure):
    copy, cluster, env = swarm
    image = stack_images(copy.ctx, copy.target(prod=True))["backend"]
    cluster.on(cluster.manager, "create", "--name", "v2-source", image)
    cluster.on(cluster.manager, "commit", "--change", f"ENV VERSION={NEW_VERSION}", "v2-source", image)
    cluster.on(cluster.manager, "rm", "v2-source")
    pushed = copy.inv("push", "--tag", "v2", env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr

    def deploy():
        started = time.monotonic()
        done = copy.inv("deploy", "--tag", "v2", env=env)
        return done, time.monotonic() - started

    result, prober, (done, seconds), switched = under_load(copy, 100, deploy)
    assert done.returncode == 0, done.stdout + done.stderr
    measure("swarm_rolling_deploy_s", seconds, "s")
    measure("swarm_rolling_deploy_requests", result["requests"], "requests")
    measure("swarm_rolling_deploy_failed", result["errors"] + len(prober.failures()), "requests")
    assert result["errors"] == 0 and set(result["statuses"]) == {200}, result
    assert not prober.failures(), prober.failures()[:5]
    versions_before = {v for t, _, _, v in prober.seen if t < switched - seconds}
    versions_after = {v for t, _, _, v in prober.seen if t > switched}
    assert versions_before == {"0.1.0"} and versions_after == {NEW_VERSION}, (versions_before, versions_after)


def test_a_version_whose_health_check_fails_is_rolled_back_with_no_failed_request(swarm, measure):
    copy, cluster, env = swarm
    image = stack_images(copy.ctx, copy.target(prod=True))["backend"]
    # Answers on the backend's port, but nothing the app answers: /health is a 404.
    cluster.on(cluster.manager, "create", "--name", "v3-source", image)
    cluster.on(
        cluster.manager,
        "commit",
        "--change",
        'CMD ["python3", "-m", "http.server", "8000"]',
        "v3-source",
        image,
    )
    cluster.on(cluster.manager, "rm", "v3-source")
    pushed = copy.inv("push", "--tag", "v3-broken", env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    before = services(copy, cluster)[f"{stack(copy)}_backend"][1]

    def deploy():
        return copy.inv("deploy", "--tag", "v3-broken", env=env)

    result, prober, done, _ = under_load(copy, 100, deploy)
    assert_one_line_failure(done, f"{stack(copy)}_backend's new tasks failed")
    assert "Swarm rolled it back" in done.stderr
    measure("swarm_rollback_requests", result["requests"], "requests")
    measure("swarm_rollback_failed", result["errors"] + len(prober.failures()), "requests")
    assert result["errors"] == 0 and set(result["statuses"]) == {200}, result
    assert not prober.failures(), prober.failures()[:5]
    assert services(copy, cluster)[f"{stack(copy)}_backend"][1] == before
    assert {v for _, _, _, v in prober.seen} == {NEW_VERSION}


def test_a_worker_that_dies_is_replaced_and_nothing_is_lost(swarm, measure):
    copy, cluster, _env = swarm
    created = [
        requests.post(url(copy, "/api/v1/todos"), json={"title": f"kept {n} ✓"}, timeout=10).json()["id"]
        for n in range(20)
    ]
    backends = [node for node, _ in cluster.tasks(f"{stack(copy)}_backend") if node in cluster.workers]
    redis = [node for node, _ in cluster.tasks(f"{stack(copy)}_redis")]
    # The worst case: the rate limiter's Redis dies with the backend, when they share a worker.
    victim = next((node for node in backends if node in redis), backends[0])
    lost_addresses = cluster.addresses(victim, f"{stack(copy)}_backend")
    (postgres,) = cluster.containers(cluster.manager, f"{stack(copy)}_postgres")
    assert lost_addresses and database_connections(cluster, postgres, lost_addresses) > 0
    killed = {}

    def replaced():
        running = [node for node, state in cluster.tasks(f"{stack(copy)}_backend") if state == "Running"]
        return len(running) == 2 and victim not in running

    def released():
        return database_connections(cluster, postgres, lost_addresses) == 0

    def kill():
        killed["at"] = time.monotonic()
        cluster.stop(victim)
        killed["released"] = watcher.submit(wait_until, released, 200, 2)
        return wait_until(replaced, 80, 1)

    with concurrent.futures.ThreadPoolExecutor(1) as watcher:
        result, prober, replaced_s, _ = under_load(copy, 90, kill)
        # The lost replica's database connections, which it could not close: PostgreSQL's TCP
        # settings (docker-compose.prod.yml) close them; with the kernel's defaults they stayed
        # for 15 minutes (an answer in flight) to 2 hours (idle), and three node losses filled
        # max_connections.
        released_s = killed["released"].result()
    seen = [(t, latency, status) for t, latency, status, _ in prober.seen if t >= killed["at"]]
    bad = [(t, latency, status) for t, latency, status in seen if status != 200 or latency > 1]
    degraded = (max(t + latency for t, latency, _ in bad) - killed["at"]) if bad else 0.0
    failed = result["errors"] + len(prober.failures())
    print(f"node loss: replaced after {replaced_s} s; slow or failed probes (s after the kill, s, status):")
    print("  " + ", ".join(f"{t - killed['at']:.1f}/{latency:.2f}/{status}" for t, latency, status in bad))
    measure("swarm_node_loss_replaced_s", replaced_s or -1, "s")
    measure("swarm_node_loss_degraded_s", degraded, "s")
    measure("swarm_node_loss_slow_probes", len(bad), "requests")
    measure("swarm_node_loss_probe_max_s", max(latency for _, latency, _ in seen), "s")
    measure("swarm_node_loss_failed", failed, "requests")
    measure("swarm_node_loss_requests", result["requests"], "requests")
    measure("swarm_node_loss_p99_ms", result["p99_ms"], "ms")
    measure("swarm_node_loss_db_released_s", released_s or -1, "s")
    assert replaced_s is not None, (
        f"the backend on {victim} was not replaced within 80 s: {cluster.tasks(f'{stack(copy)}_backend')}"
    )
    running = [node for node, state in cluster.tasks(f"{stack(copy)}_backend") if state == "Running"]
    assert len(running) == 2 and victim not in running, running
    assert released_s is not None, "the lost replica's database connections were still open 200 s after the kill"
    cluster.restart(victim)

    def rejoined():
        node = json.loads(cluster.on(cluster.manager, "node", "inspect", victim))[0]
        return node["Status"]["State"] == "ready"

    assert wait_until(rejoined, 90, 1) is not None, f"{victim} did not rejoin the swarm"
    for todo in created:
        assert requests.get(url(copy, f"/api/v1/todos/{todo}"), timeout=10).status_code == 200
    assert failed == 0, (
        f"{failed} failed requests while {victim} was lost: wrk {result['error_kinds']}, statuses "
        f"{result['statuses']}, probes {prober.failures()[:5]}; the frontend's and backend's errors:\n"
        + errors_logged(cluster, stack(copy))
    )


def database_connections(cluster, postgres, addresses):
    """How many connections PostgreSQL (its container on the manager) has from these client
    addresses."""
    listed = ", ".join(f"'{address}'" for address in sorted(addresses))
    query = f"SELECT count(*) FROM pg_stat_activity WHERE host(client_addr) IN ({listed})"
    psql = f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atc "{query}"'
    return int(cluster.on(cluster.manager, "exec", postgres, "sh", "-c", psql, timeout=30))


def errors_logged(cluster, name):
    """What the frontend logged besides normal answers (nginx logs its own answers and errors,
    not the backend's), and the backend's 5xx answers and errors, over the last 3 minutes."""
    frontend = [line for line in cluster.service_logs(f"{name}_frontend", 180) if "GET / HTTP" not in line]
    markers = ('"status": 5', '"level": "ERROR"')
    backend = [line for line in cluster.service_logs(f"{name}_backend", 180) if any(m in line for m in markers)]
    return "\n".join(frontend)[-5000:] + "\n" + "\n".join(backend)[-8000:]


def test_deploy_rm_removes_the_stack_and_keeps_the_database_volume(swarm):
    copy, cluster, env = swarm
    removed = copy.inv("deploy", "--rm", env=env)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "removed; its database volume stays" in removed.stdout
    assert not services(copy, cluster)
    namespace = f"label=com.docker.stack.namespace={stack(copy)}"
    assert not cluster.on(cluster.manager, "network", "ls", "-q", "--filter", namespace)
    assert not cluster.on(cluster.manager, "secret", "ls", "-q", "--filter", namespace)
    volumes = cluster.on(cluster.manager, "volume", "ls", "-q").split()
    assert f"{stack(copy)}_postgres-data" in volumes, volumes
    registry = copy.inv("registry", "--rm", env=env)
    assert registry.returncode == 0 and "removed" in registry.stdout, registry.stdout + registry.stderr
    assert "todostack-registry" in cluster.on(cluster.manager, "volume", "ls", "-q").split()
