"""stackctl.swarm: the stack file made from Compose's config output, the order of a deploy,
and what `inv deploy` refuses before it changes anything. tests/integration/test_swarm.py
deploys for real on a three-node swarm."""

import json

import pytest
from invoke import MockContext, Result

from stackctl import Problem, swarm
from tests.helpers import project_config

PINNED = {
    "todostack/backend:latest": "reg:5000/todostack/backend@sha256:b",
    "localbase/postgres:17": "reg:5000/localbase/postgres@sha256:p",
}


@pytest.fixture
def config(tmp_path):
    """Compose's config output for a stack shaped like ours (abridged)."""
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cret")
    return {
        "name": "todostack",
        "services": {
            "postgres": {
                "image": "localbase/postgres:17",
                "user": "999:999",
                "tmpfs": ["/var/run/postgresql:mode=1777", "/tmp"],
                "volumes": [{"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"}],
                "mem_limit": "536870912",
                "pids_limit": 200,
                "restart": "unless-stopped",
                "security_opt": ["no-new-privileges:true"],
                "networks": {"data": None},
                "secrets": [{"source": "postgres_password"}],
                "entrypoint": None,
                "deploy": {"resources": {}, "placement": {"constraints": ["node.labels.db == true"]}},
            },
            "migrate": {
                "image": "todostack/backend:latest",
                "build": {"context": "/src/backend"},
                "command": ["alembic", "upgrade", "head"],
                "depends_on": {"postgres": {"condition": "service_healthy", "required": True}},
                "restart": "no",
                "networks": {"data": None},
                "deploy": {"mode": "replicated-job", "replicas": 1, "restart_policy": {"condition": "none"}},
            },
            "backend": {
                "image": "todostack/backend:latest",
                "build": {"context": "/src/backend"},
                "depends_on": {"migrate": {"condition": "service_completed_successfully", "required": True}},
                "expose": ["9100"],
                "tmpfs": ["/data:uid=999,gid=999,size=1m"],
                "healthcheck": {"test": ["CMD-SHELL", '[ "$$(redis-cli ping)" = PONG ]'], "interval": "3s"},
                "ports": [
                    {"mode": "ingress", "host_ip": "127.0.0.1", "target": 8080, "published": "8080", "protocol": "tcp"}
                ],
                "restart": "unless-stopped",
                "networks": {"data": None, "web": {"aliases": ["api"]}},
                "deploy": {"replicas": 2, "endpoint_mode": "dnsrr", "resources": {}},
            },
        },
        "networks": {
            "data": {"name": "todostack_data", "internal": True, "ipam": {}},
            "web": {"name": "todostack_web"},
        },
        "volumes": {"postgres-data": {"name": "todostack_postgres-data"}},
        "secrets": {"postgres_password": {"name": "todostack_postgres_password", "file": str(secret)}},
        "x-logging": {"driver": "json-file"},
    }


def test_what_swarm_lacks_is_translated_and_the_rest_kept(config):
    stack = swarm.stack_file(config, "todostack", PINNED)
    postgres, backend = stack["services"]["postgres"], stack["services"]["backend"]
    assert postgres["image"] == "reg:5000/localbase/postgres@sha256:p"
    assert backend["image"] == stack["services"]["migrate"]["image"] == "reg:5000/todostack/backend@sha256:b"
    for spec in stack["services"].values():
        assert not set(spec) & set(swarm.UNSUPPORTED), spec
    assert postgres["deploy"] == {
        "endpoint_mode": "dnsrr",
        "resources": {"limits": {"memory": "512M", "pids": 200}},
        "placement": {"constraints": ["node.labels.db == true"]},
        "restart_policy": {"condition": "any"},
    }
    assert postgres["volumes"] == [
        {"type": "volume", "source": "postgres-data", "target": "/var/lib/postgresql/data"},
        {"type": "tmpfs", "target": "/var/run/postgresql"},
        {"type": "tmpfs", "target": "/tmp"},
    ]
    assert postgres["networks"] == ["data"] and postgres["user"] == "999:999" and "entrypoint" not in postgres
    assert backend["volumes"] == [{"type": "tmpfs", "target": "/data", "tmpfs": {"size": "1m"}}]
    assert backend["ports"] == [{"target": 8080, "published": 8080, "protocol": "tcp", "mode": "host"}]
    assert backend["networks"] == {"data": None, "web": {"aliases": ["api"]}}
    # Compose escapes a literal $ as $$, which the stack deploy reads back as $.
    assert backend["healthcheck"]["test"][1] == '[ "$$(redis-cli ping)" = PONG ]'
    assert stack["services"]["migrate"]["deploy"]["restart_policy"] == {"condition": "none"}


def test_networks_are_overlays_and_names_are_left_to_the_stack(config):
    stack = swarm.stack_file(config, "todostack", PINNED)
    assert stack["version"] == swarm.STACK_FILE_VERSION
    assert stack["networks"] == {"data": {"driver": "overlay", "internal": True}, "web": {"driver": "overlay"}}
    assert stack["volumes"] == {"postgres-data": {}}
    assert not [key for key in stack if key.startswith("x-") or key == "name"]


def test_a_secret_s_name_changes_with_its_value(config, tmp_path):
    first = swarm.stack_file(config, "todostack", PINNED)["secrets"]["postgres_password"]
    (tmp_path / "postgres_password").write_text("another")
    second = swarm.stack_file(config, "todostack", PINNED)["secrets"]["postgres_password"]
    assert first["name"].startswith("todostack_postgres_password_") and first["name"] != second["name"]
    assert first["file"] == second["file"] == str(tmp_path / "postgres_password")


def test_the_jobs_and_what_they_need_go_first(config):
    assert swarm.jobs_first(config) == ["migrate", "postgres"]
    config["services"]["migrate"]["deploy"]["mode"] = "replicated"
    assert swarm.jobs_first(config) == []


def swarm_state(**state):
    return Result(stdout=json.dumps(state))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {"LocalNodeState": "inactive"},
            r"^this Docker engine is not in a swarm \(state: inactive\): run `docker swarm init`",
        ),
        (
            {"LocalNodeState": "active", "ControlAvailable": False},
            r"^this Docker engine is a swarm worker, and only a manager",
        ),
    ],
)
def test_only_a_manager_deploys(state, message):
    c = MockContext(config=project_config(), run=swarm_state(**state))
    with pytest.raises(Problem, match=message):
        swarm.require_manager(c)


def test_an_engine_that_does_not_answer_is_one_line():
    c = MockContext(config=project_config(), run=Result(exited=1, stderr="Cannot connect to the Docker daemon"))
    with pytest.raises(Problem, match=r"^the Docker engine does not answer: start it, or point DOCKER_HOST"):
        swarm.require_manager(c)


def test_a_manager_passes():
    swarm.require_manager(
        MockContext(config=project_config(), run=swarm_state(LocalNodeState="active", ControlAvailable=True))
    )


def service_doc(state=None, replicas=2):
    doc = {
        "ID": "svc1",
        "Spec": {"Name": "todostack_backend", "Mode": {"Replicated": {"Replicas": replicas}}},
        "Version": {"Index": 9},
    }
    if state:
        doc["UpdateStatus"] = {
            "State": state,
            "Message": "update rolled back due to failure or early termination of task",
        }
    return doc


def task_doc(desired, state):
    return {"DesiredState": desired, "Status": {"State": state}}


def converged(monkeypatch, doc, task_docs, updated=True):
    monkeypatch.setattr(swarm, "tasks", lambda c, service_id: task_docs)
    return swarm.converged(MockContext(), doc, updated)


def test_converged_once_every_wanted_task_runs(monkeypatch):
    running = [task_doc("running", "running"), task_doc("running", "running"), task_doc("shutdown", "shutdown")]
    assert converged(monkeypatch, service_doc("completed"), running)
    assert not converged(monkeypatch, service_doc("updating"), running)
    assert not converged(monkeypatch, service_doc("completed"), [*running[:1], task_doc("running", "starting")])
    assert not converged(monkeypatch, service_doc(replicas=3), running)


def test_a_rollback_of_this_deploy_s_update_is_a_failure_an_earlier_one_is_not(monkeypatch):
    running = [task_doc("running", "running")] * 2
    with pytest.raises(swarm.RolledBack, match="rolled back"):
        converged(monkeypatch, service_doc("rollback_completed"), running)
    assert converged(monkeypatch, service_doc("rollback_completed"), running, updated=False)


def test_a_job_s_outcome_is_its_current_run_s(monkeypatch):
    doc = {"ID": "job", "JobStatus": {"JobIteration": {"Index": 5}}}
    old_failure = {"JobIteration": {"Index": 4}, "Status": {"State": "failed", "Err": "old"}}
    monkeypatch.setattr(
        swarm, "tasks", lambda c, i: [old_failure, {"JobIteration": {"Index": 5}, "Status": {"State": "running"}}]
    )
    assert swarm.job_outcome(MockContext(), doc) is None
    monkeypatch.setattr(
        swarm, "tasks", lambda c, i: [old_failure, {"JobIteration": {"Index": 5}, "Status": {"State": "complete"}}]
    )
    assert swarm.job_outcome(MockContext(), doc) == "complete"
    failed = {"JobIteration": {"Index": 5}, "Status": {"State": "failed", "Err": "task: non-zero exit (1)"}}
    monkeypatch.setattr(swarm, "tasks", lambda c, i: [failed])
    assert swarm.job_outcome(MockContext(), doc) == "failed: task: non-zero exit (1)"
