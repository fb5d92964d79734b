import json

import pytest
from invoke import MockContext, Result

from stackctl import Problem, engine


@pytest.fixture(autouse=True)
def docker_cli_present(monkeypatch):
    monkeypatch.setattr(engine.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "docker" else None)


def test_server_version_from_json():
    out = json.dumps({"Client": {"Version": "28.2.2"}, "Server": {"Version": "20.10.24"}})
    c = MockContext(run={"docker version --format '{{json .}}'": Result(stdout=out)})
    assert engine.server_version(c) == "20.10.24"


def test_daemon_down_says_how_to_start_it(monkeypatch):
    monkeypatch.setattr(engine.os.path, "exists", lambda path: False)
    out = json.dumps({"Client": {"Version": "28.2.2"}, "Server": None})
    c = MockContext(run={"docker version --format '{{json .}}'": Result(stdout=out, exited=1)})
    with pytest.raises(Problem, match="Docker daemon is not running: start it"):
        engine.server_version(c)


def test_missing_cli(monkeypatch):
    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    with pytest.raises(Problem, match="Docker CLI not found"):
        engine.server_version(MockContext())


def test_compose_v2_version():
    c = MockContext(run={"docker compose version --format json": Result(stdout='{"version":"v2.40.3"}')})
    assert engine.compose_version(c) == "v2.40.3"


def test_compose_v1_only_is_named(monkeypatch):
    monkeypatch.setattr(engine.shutil, "which", lambda name: "/usr/bin/docker-compose")
    c = MockContext(run={"docker compose version --format json": Result(exited=1, stderr="unknown command")})
    with pytest.raises(Problem, match="only Compose v1"):
        engine.compose_version(c)


def test_no_compose_at_all():
    c = MockContext(run={"docker compose version --format json": Result(exited=1)})
    with pytest.raises(Problem, match="Compose v2 not found"):
        engine.compose_version(c)
