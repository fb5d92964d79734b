"""A Docker Swarm of three nodes on this one machine: each node a container running an engine
of its own (the dind tool image, bases/dockerd), on a network of their own, one manager and two
workers. Each engine answers on a unix socket under a directory of the host too (so the host's
`inv` drives it through DOCKER_HOST); the manager publishes the stack's public port on
loopback; every engine trusts the plain-HTTP registry that `inv registry` runs on the manager.

ENVIRONMENT.md, "Docker inside Docker": the flags that replace --privileged here, a subnet the
inner engines do not use, and no IPVS (no service virtual IPs, no ingress routing mesh: the
stack uses dnsrr and host-mode ports). Everything a Cluster makes is named after one token and
removed by close()."""

import json
import random
import shlex
import subprocess
import tempfile
import uuid
from pathlib import Path

from stackctl.wait import wait_until
from tests.helpers import ROOT
from tests.integration.pristine import DIND_FLAGS

REGISTRY_PORT = 5000


def docker(*args, timeout=300, stdin=None):
    result = subprocess.run(["docker", *map(str, args)], capture_output=True, text=True, timeout=timeout, input=stdin)
    assert result.returncode == 0, f"docker {' '.join(map(str, args))}: {result.stderr.strip()[-800:]}"
    return result.stdout.strip()


class Cluster:
    def __init__(self, image, public_port, size=3):
        token = uuid.uuid4().hex[:8]
        self.image = image
        self.public_port = public_port
        self.network = f"swarmtest-{token}"
        self.nodes = [f"swarmtest-{token}-{n}" for n in range(1, size + 1)]
        self.manager, self.workers = self.nodes[0], self.nodes[1:]
        (ROOT / ".cache").mkdir(exist_ok=True)
        self.sockets = Path(tempfile.mkdtemp(prefix=f"swarmtest-{token}-", dir=ROOT / ".cache"))
        self.created = []
        self.lost = {}

    def docker_host(self, node=None):
        """DOCKER_HOST for a node's engine (the manager's by default), from this machine."""
        return f"unix://{self.sockets}/{node or self.manager}/docker.sock"

    @property
    def registry(self):
        """The registry's address as every node (and the manager that pushes) reaches it."""
        return f"{self.manager}:{REGISTRY_PORT}"

    def start(self):
        # A /24 the inner engines do not use (their own networks are 172.x and 10.0.x).
        subnet = f"10.123.{random.randrange(1, 255)}.0/24"
        docker("network", "create", "--subnet", subnet, self.network)
        self.created.append(("network", self.network))
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes:
            assert wait_until(lambda node=node: self.engine_answers(node), 90, 0.5) is not None, (
                f"the engine in {node} did not start:\n{self.logs(node)}"
            )
        address = self.address(self.manager)
        self.on(self.manager, "swarm", "init", "--advertise-addr", address)
        token = self.on(self.manager, "swarm", "join-token", "--quiet", "worker")
        for worker in self.workers:
            self.on(worker, "swarm", "join", "--token", token, f"{address}:2377")
        # The database's node: the manager, which the node-loss test keeps.
        self.on(self.manager, "node", "update", "--label-add", "todostack.database=true", self.manager)
        return self

    def start_node(self, node):
        docker("volume", "create", node)
        self.created.append(("volume", node))
        manager = node == self.manager
        (self.sockets / node).mkdir()
        published = ["-p", f"127.0.0.1:{self.public_port}:{self.public_port}"] if manager else []
        docker(
            "run",
            "-d",
            "--name",
            node,
            "--hostname",
            node,
            "--network",
            self.network,
            *DIND_FLAGS,
            "-v",
            f"{node}:/var/lib/docker",
            "-v",
            f"{self.sockets / node}:/run/outer",
            *published,
            self.image,
            "dockerd",
            # The inner containers' cgroups under one of the node's own (cgroup v1 here).
            f"--cgroup-parent=/{node}",
            "--insecure-registry",
            self.registry,
            "-H",
            "unix:///var/run/docker.sock",
            "-H",
            "unix:///run/outer/docker.sock",
        )
        self.created.append(("container", node))

    def engine_answers(self, node):
        done = subprocess.run(["docker", "exec", node, "docker", "info"], capture_output=True, timeout=30)
        return done.returncode == 0

    def on(self, node, *args, timeout=300, stdin=None):
        """`docker ARGS` against the engine in a node."""
        return docker("exec", "-i", node, "docker", *args, timeout=timeout, stdin=stdin)

    def address(self, node):
        found = json.loads(docker("inspect", node))[0]["NetworkSettings"]["Networks"][self.network]
        return found["IPAddress"]

    def load(self, images, node=None):
        """Copy images from this machine's engine into a node's (the manager's by default)."""
        target = node or self.manager
        save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "exec", "-i", target, "docker", "load", "--quiet"], stdin=save.stdout, capture_output=True
        )
        save.stdout.close()
        assert save.wait() == 0 and load.returncode == 0, load.stderr.decode()[-500:]

    def logs(self, node):
        return subprocess.run(["docker", "logs", "--tail", "30", node], capture_output=True, text=True).stderr

    def tasks(self, service):
        """[(node hostname, task state)] of a service's tasks meant to run."""
        lines = self.on(
            self.manager, "service", "ps", "--filter", "desired-state=running", "--format", "{{json .}}", service
        )
        return [(t["Node"], t["CurrentState"].split()[0]) for t in map(json.loads, lines.splitlines())]

    def containers(self, node, service):
        """The ids of a service's running containers on a node."""
        label = f"label=com.docker.swarm.service.name={service}"
        return self.on(node, "ps", "-q", "--filter", label, timeout=30).split()

    def addresses(self, node, service):
        """The addresses of a service's running containers on a node, on every network."""
        ids = self.containers(node, service)
        found = json.loads(self.on(node, "inspect", *ids)) if ids else []
        return {n["IPAddress"] for c in found for n in c["NetworkSettings"]["Networks"].values() if n["IPAddress"]}

    def service_logs(self, service, since_s):
        """The lines the tasks of a service (stopped ones too) logged in the last since_s
        seconds, read from each node's own engine: `docker service logs` goes through the
        manager, which waits for a lost node (past a minute in a CI run)."""
        lines = []
        for node in self.nodes:
            label = f"label=com.docker.swarm.service.name={service}"
            ids = subprocess.run(
                ["docker", "exec", node, "docker", "ps", "-aq", "--filter", label],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if ids.returncode != 0:
                lines.append(f"{node}: its engine did not list its containers: {ids.stderr.strip()[-200:]}")
            for container in ids.stdout.split():
                logs = subprocess.run(
                    ["docker", "exec", node, "docker", "logs", "--since", f"{since_s}s", container],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                lines += [f"{node} {line}" for line in (logs.stdout + logs.stderr).splitlines()]
        return lines

    def stop(self, node):
        """The node is lost at once, as in a power cut: cut off the network first, so that no
        connection it had is closed properly (no FIN or RST reaches the other nodes), then its
        engine and everything in it killed."""
        self.lost[node] = self.address(node)
        docker("network", "disconnect", "--force", self.network, node)
        docker("kill", node)

    def restart(self, node):
        """The lost node back, at its address."""
        docker("network", "connect", "--ip", self.lost.pop(node), self.network, node)
        docker("start", node)
        assert wait_until(lambda: self.engine_answers(node), 90, 0.5) is not None, self.logs(node)

    def close(self):
        """The inner engines (their containers and cgroups), then the nodes, volumes, network."""
        for node in self.nodes:
            subprocess.run(
                [
                    "docker",
                    "exec",
                    node,
                    "sh",
                    "-c",
                    "docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1; "
                    f"pid=$(cat /var/run/docker.pid 2>/dev/null) && kill $pid; sleep 3; "
                    f"for d in /sys/fs/cgroup/*/{shlex.quote(node)}; do "
                    "[ -d $d ] && find $d -depth -type d -exec rmdir {} + 2>/dev/null; done; true",
                ],
                capture_output=True,
                timeout=120,
            )
        removals = {"container": ["rm", "--force"], "volume": ["volume", "rm", "--force"], "network": ["network", "rm"]}
        for kind, name in reversed(self.created):
            subprocess.run(["docker", *removals[kind], name], capture_output=True, timeout=300)
        subprocess.run(["rm", "-rf", str(self.sockets)], timeout=60)
