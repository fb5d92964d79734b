from invoke import MockContext, Result

from stackctl import doctor
from tests.helpers import project_config


def test_db_host_localhost_is_flagged_with_the_fix():
    [finding] = doctor.check_database_host({"DB_HOST": "localhost"}, ".env")
    assert not finding.ok
    assert "DB_HOST in .env points at localhost" in finding.message
    assert "DB_HOST=postgres" in finding.message


def test_database_url_on_loopback_is_flagged():
    [finding] = doctor.check_database_host({"DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:5432/db"}, ".env")
    assert "DATABASE_URL in .env points at 127.0.0.1" in finding.message


def test_service_name_is_fine():
    assert doctor.check_database_host({"DB_HOST": "postgres"}, ".env") == []


def context_for(env_path, example_path):
    config = project_config(stack={"env_file": str(env_path), "env_example": str(example_path)})
    return MockContext(config=config, run=Result(), repeat=True)


def test_missing_env_file_says_run_setup(tmp_path):
    [finding] = doctor.check_env(context_for(tmp_path / ".env", tmp_path / ".env.example"))
    assert not finding.ok and "run `inv setup`" in finding.message


def test_missing_and_empty_keys(tmp_path):
    (tmp_path / ".env.example").write_text("A=1\nB=2\nPOSTGRES_PASSWORD=\nAPP_DB_PASSWORD=\n")
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=\nAPP_DB_PASSWORD=\n")
    messages = [f.message for f in doctor.check_env(context_for(tmp_path / ".env", tmp_path / ".env.example"))]
    assert any("lacks A, B" in m for m in messages)
    assert any("POSTGRES_PASSWORD, APP_DB_PASSWORD empty" in m for m in messages)


def test_finding_line_format():
    assert doctor.Finding("port", False, "port 1 busy").line().startswith("FAIL  port")
    assert doctor.Finding("env", True, ".env complete").line().startswith("ok    env")


def test_a_local_base_built_from_an_older_recipe_is_flagged_with_the_fix(monkeypatch):
    c = MockContext(config=project_config())
    configured = {"postgres": ("POSTGRES_IMAGE", "localbase/postgres:17"), "python": ("PYTHON_IMAGE", "python:3.13")}
    monkeypatch.setattr(doctor.bases, "configured_images", lambda c, path: configured)
    old = {"Config": {"Labels": {doctor.bases.RECIPE_LABEL: "0" * 16}}}
    monkeypatch.setattr(doctor, "inspect_image", lambda c, image: old)
    stale, official = doctor.check_base_images(c)
    assert not stale.ok and "localbase/postgres:17 predates bases/postgres/" in stale.message
    assert "`inv bases --base postgres`" in stale.message
    assert official.ok
