from stackctl import envfile

EXAMPLE = """# comment
PYTHON_IMAGE=python:3.13-slim
POSTGRES_PASSWORD=
API_TOKEN=
DB_HOST=postgres
"""
SECRETS = ["POSTGRES_PASSWORD", "API_TOKEN"]


def write_example(tmp_path):
    example = tmp_path / ".env.example"
    example.write_text(EXAMPLE)
    return example


def test_create_generates_distinct_secrets_and_keeps_the_rest(tmp_path):
    env = tmp_path / ".env"
    outcome, keys = envfile.create_or_complete(env, write_example(tmp_path), SECRETS)
    values = envfile.read_env(env)
    assert outcome == "created"
    assert keys == ["PYTHON_IMAGE", "POSTGRES_PASSWORD", "API_TOKEN", "DB_HOST"]
    assert values["DB_HOST"] == "postgres" and values["PYTHON_IMAGE"] == "python:3.13-slim"
    assert len(values["POSTGRES_PASSWORD"]) >= 32 and len(values["API_TOKEN"]) >= 32
    assert values["POSTGRES_PASSWORD"] != values["API_TOKEN"]
    assert "# comment" in env.read_text()
    assert env.stat().st_mode & 0o777 == 0o600


def test_second_run_changes_nothing(tmp_path):
    env, example = tmp_path / ".env", write_example(tmp_path)
    envfile.create_or_complete(env, example, SECRETS)
    before = env.read_text()
    assert envfile.create_or_complete(env, example, SECRETS) == ("unchanged", [])
    assert env.read_text() == before


def test_missing_keys_are_appended_without_touching_existing_values(tmp_path):
    env, example = tmp_path / ".env", write_example(tmp_path)
    env.write_text("DB_HOST=db\nPOSTGRES_PASSWORD=mine")
    outcome, keys = envfile.create_or_complete(env, example, SECRETS)
    values = envfile.read_env(env)
    assert (outcome, keys) == ("completed", ["PYTHON_IMAGE", "API_TOKEN"])
    assert values["DB_HOST"] == "db" and values["POSTGRES_PASSWORD"] == "mine"
    assert values["API_TOKEN"]


def test_rewrite_keeps_every_value_and_lays_out_the_example(tmp_path):
    env, example = tmp_path / ".env", write_example(tmp_path)
    env.write_text("DB_HOST=db\nPOSTGRES_PASSWORD=mine\nEXTRA=1\n")
    outcome, keys = envfile.create_or_complete(env, example, SECRETS, rewrite=True)
    values = envfile.read_env(env)
    assert (outcome, keys) == ("rewritten", ["PYTHON_IMAGE", "API_TOKEN"])
    assert values["DB_HOST"] == "db" and values["POSTGRES_PASSWORD"] == "mine" and values["EXTRA"] == "1"
    assert env.read_text().startswith("# comment\n")
    assert (tmp_path / ".env.bak").read_text() == "DB_HOST=db\nPOSTGRES_PASSWORD=mine\nEXTRA=1\n"


def test_regenerate_replaces_only_the_named_secrets(tmp_path):
    env, example = tmp_path / ".env", write_example(tmp_path)
    env.write_text("DB_HOST=db\nPOSTGRES_PASSWORD=mine\nAPI_TOKEN=key\n")
    envfile.create_or_complete(env, example, SECRETS, regenerate=["POSTGRES_PASSWORD"])
    values = envfile.read_env(env)
    assert values["POSTGRES_PASSWORD"] not in ("mine", "") and values["API_TOKEN"] == "key"
    assert values["DB_HOST"] == "db"


def test_every_rewrite_keeps_the_previous_file_private(tmp_path):
    env = tmp_path / ".env"
    env.write_text("A=1\n")
    envfile.set_values(env, {"A": "2"})
    backup = tmp_path / ".env.bak"
    assert backup.read_text() == "A=1\n" and backup.stat().st_mode & 0o777 == 0o600


def test_set_values_replaces_in_place_and_appends(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# images\nPYTHON_IMAGE=python:3.13-slim\nOTHER=1\n")
    envfile.set_values(env, {"PYTHON_IMAGE": "localbase/python:3.13-slim", "NEW": "x"})
    assert env.read_text() == "# images\nPYTHON_IMAGE=localbase/python:3.13-slim\nOTHER=1\nNEW=x\n"


def test_missing_keys(tmp_path):
    env = tmp_path / ".env"
    env.write_text("PYTHON_IMAGE=x\nexport DB_HOST=postgres\n")
    assert envfile.missing_keys(env, write_example(tmp_path)) == ["POSTGRES_PASSWORD", "API_TOKEN"]
