"""`inv setup` never gives a database volume a password other than the one it was made with."""

import json

import pytest
from invoke import MockContext, Result

from stackctl import Problem, doctor, envfile, secrets
from tests.helpers import ROOT, project_config

EXAMPLE = (ROOT / ".env.example").read_text()


def context(tmp_path, volumes=(), engine_answers=True):
    """A context for a checkout in tmp_path whose engine holds `volumes` of the dev project."""
    (tmp_path / ".env.example").write_text(EXAMPLE)
    config = project_config(stack={"env_file": str(tmp_path / ".env"), "env_example": str(tmp_path / ".env.example")})
    dev = "\n".join(json.dumps({"Name": name, "Driver": "local"}) for name in volumes)
    runs = {}
    targets = config.stack.targets
    for project, listing in ((targets.dev.project_name, dev), (targets.prod.project_name, "")):
        command = (
            "docker volume ls --format '{{json .}}' --filter label=com.docker.compose.volume "
            f"--filter label=com.docker.compose.project={project}"
        )
        runs[command] = Result(stdout=listing, exited=0 if engine_answers else 1)
    return MockContext(config=config, run=runs)


def test_first_run_creates_env_with_secrets(tmp_path):
    outcome, keys = secrets.write_env(context(tmp_path))
    assert outcome == "created" and "POSTGRES_PASSWORD" in keys
    assert len(envfile.read_env(tmp_path / ".env")["POSTGRES_PASSWORD"]) >= 32


def test_force_keeps_secrets_and_custom_values_and_keeps_the_previous_file(tmp_path):
    secrets.write_env(context(tmp_path))
    c = context(tmp_path, volumes=["todostack_postgres-data"])
    envfile.set_values(tmp_path / ".env", {"FRONTEND_PORT": "3999", "MY_OWN": "kept"})
    before = envfile.read_env(tmp_path / ".env")
    previous_text = (tmp_path / ".env").read_text()
    outcome, keys = secrets.write_env(c, rewrite=True)
    after = envfile.read_env(tmp_path / ".env")
    assert (outcome, keys) == ("rewritten", [])
    assert after == before
    backup = tmp_path / ".env.bak"
    assert backup.read_text() == previous_text and backup.stat().st_mode & 0o777 == 0o600


def test_regenerating_with_a_data_volume_refuses_and_changes_nothing(tmp_path):
    secrets.write_env(context(tmp_path))
    c = context(tmp_path, volumes=["todostack_postgres-data"])
    before = (tmp_path / ".env").read_bytes()
    with pytest.raises(Problem) as refusal:
        secrets.write_env(c, regenerate=True)
    message = str(refusal.value)
    assert "would lock the stack out of its data: volume todostack_postgres-data" in message
    assert "inv reset" in message and "\n" not in message
    assert (tmp_path / ".env").read_bytes() == before


def test_regenerating_without_data_volumes_gives_new_secrets(tmp_path):
    c = context(tmp_path)
    secrets.write_env(c)
    old = envfile.read_env(tmp_path / ".env")
    outcome, keys = secrets.write_env(c, regenerate=True)
    new = envfile.read_env(tmp_path / ".env")
    generated = ["POSTGRES_PASSWORD", "APP_DB_PASSWORD"]
    assert outcome == "rewritten" and keys == generated
    assert all(new[k] != old[k] for k in generated)
    assert {k: v for k, v in new.items() if k not in generated} == {k: v for k, v in old.items() if k not in generated}
    assert envfile.read_env(tmp_path / ".env.bak") == old


def test_regenerating_when_the_engine_does_not_answer_refuses(tmp_path):
    c = context(tmp_path, engine_answers=False)
    secrets.write_env(c)
    with pytest.raises(Problem, match="cannot check for database volumes"):
        secrets.write_env(c, regenerate=True)


def test_a_missing_env_with_a_data_volume_refuses_and_points_at_the_backup(tmp_path):
    secrets.write_env(context(tmp_path))
    c = context(tmp_path, volumes=["todostack_postgres-data"])
    envfile.set_values(tmp_path / ".env", {"DEBUG": "true"})  # now there is a .env.bak
    (tmp_path / ".env").unlink()
    with pytest.raises(
        Problem,
        match=r"\.env is missing but volume todostack_postgres-data .* restore it "
        r"from \.env\.bak",
    ):
        secrets.write_env(c)
    assert not (tmp_path / ".env").exists()


def test_a_left_over_secret_key_is_kept_and_harmless(tmp_path):
    """A .env made when the stack still had SECRET_KEY: setup leaves it alone, --force keeps
    it, and doctor does not mind the extra key."""
    c = context(tmp_path)
    secrets.write_env(c)
    envfile.set_values(tmp_path / ".env", {"SECRET_KEY": "left-over"})
    before = (tmp_path / ".env").read_bytes()
    assert secrets.write_env(c) == ("unchanged", [])
    assert (tmp_path / ".env").read_bytes() == before
    assert secrets.write_env(c, rewrite=True) == ("rewritten", [])
    assert envfile.read_env(tmp_path / ".env")["SECRET_KEY"] == "left-over"
    assert [(f.ok, f.message) for f in doctor.check_env(c)] == [(True, f"{tmp_path / '.env'} complete")]


def files_context(tmp_path, monkeypatch):
    for variable in ("POSTGRES_PASSWORD", "APP_DB_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    c = context(tmp_path)
    c.config.stack.secrets_dir = str(tmp_path / "secrets")
    return c


def test_secret_files_hold_the_env_values_in_a_private_directory(tmp_path, monkeypatch):
    c = files_context(tmp_path, monkeypatch)
    secrets.write_env(c)
    env = envfile.read_env(tmp_path / ".env")
    paths = secrets.write_files(c)
    assert sorted(p.name for p in paths) == ["app_db_password", "postgres_password"]
    assert (tmp_path / "secrets/postgres_password").read_text() == env["POSTGRES_PASSWORD"]
    assert (tmp_path / "secrets/app_db_password").read_text() == env["APP_DB_PASSWORD"]
    assert env["POSTGRES_PASSWORD"] != env["APP_DB_PASSWORD"]
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "secrets/app_db_password").stat().st_mode & 0o777 == 0o644


def test_secret_files_follow_env_and_are_left_alone_when_equal(tmp_path, monkeypatch):
    c = files_context(tmp_path, monkeypatch)
    secrets.write_env(c)
    secrets.write_files(c)
    path = tmp_path / "secrets/postgres_password"
    inode = path.stat().st_ino
    secrets.write_files(c)
    assert path.stat().st_ino == inode, "an unchanged secret file was rewritten"
    envfile.set_values(tmp_path / ".env", {"POSTGRES_PASSWORD": "changed-by-hand-0123456789"})
    secrets.write_files(c)
    assert path.read_text() == "changed-by-hand-0123456789"


def test_secret_files_refuse_an_empty_variable(tmp_path, monkeypatch):
    c = files_context(tmp_path, monkeypatch)
    secrets.write_env(c)
    envfile.set_values(tmp_path / ".env", {"APP_DB_PASSWORD": ""})
    with pytest.raises(Problem, match="APP_DB_PASSWORD must be set for the production stack .*; run `inv setup`"):
        secrets.write_files(c)
