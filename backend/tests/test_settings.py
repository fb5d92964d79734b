from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.core.config import Settings, settings_or_exit


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "DB_PASSWORD_FILE",
        "POSTGRES_PASSWORD_FILE",
        "APP_DB_USER",
        "APP_DB_PASSWORD",
        "APP_DB_PASSWORD_FILE",
        "DB_POOL_SIZE",
        "DB_POOL_IDLE_S",
        "DB_CONNECT_TIMEOUT",
        "CORS_ORIGINS",
        "DEBUG",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "REQUEST_TIMEOUT",
        "HEALTH_CHECK_TIMEOUT",
        "DB_POOL_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    s = make()
    assert s.DB_HOST == "postgres"
    assert s.DB_PORT == 5432
    assert s.DB_POOL_SIZE == 10
    assert s.DB_CONNECT_TIMEOUT == 2
    assert s.CORS_ORIGINS == ["http://localhost:3000"]
    assert s.DEBUG is False


@pytest.mark.parametrize("size", [5, 12, 20])
def test_pool_size_in_bounds(size: int) -> None:
    assert make(DB_POOL_SIZE=size).DB_POOL_SIZE == size


@pytest.mark.parametrize("size", [0, 4, 21, 100])
def test_pool_size_out_of_bounds(size: int) -> None:
    with pytest.raises(ValidationError, match="DB_POOL_SIZE"):
        make(DB_POOL_SIZE=size)


def test_pool_size_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_SIZE", "21")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    assert Settings(_env_file=None).DB_POOL_SIZE == 7


def test_url_from_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6543")
    monkeypatch.setenv("DB_NAME", "todos")
    monkeypatch.setenv("DB_USER", "u")
    monkeypatch.setenv("DB_PASSWORD", "p@ss:w/rd")
    url = Settings(_env_file=None).SQLALCHEMY_DATABASE_URI
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "db.internal",
        6543,
        "todos",
        "u",
        "p@ss:w/rd",
    )


def test_database_url_overrides_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "ignored")
    monkeypatch.setenv("DB_NAME", "ignored")
    monkeypatch.setenv("DATABASE_URL", "postgresql://x:y@elsewhere:5433/other")
    url = Settings(_env_file=None).SQLALCHEMY_DATABASE_URI
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "elsewhere",
        5433,
        "other",
        "x",
        "y",
    )


def test_postgres_scheme_is_accepted() -> None:
    url = make(DATABASE_URL="postgres://a:b@h/d").SQLALCHEMY_DATABASE_URI
    assert url.drivername == "postgresql+asyncpg"


def test_secrets_are_not_in_repr() -> None:
    s = make(DB_PASSWORD="hunter2", DATABASE_URL="postgresql://u:hunter2@h/d")
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://localhost:3000", ["http://localhost:3000"]),
        ("http://a.example, https://b.example/ ,", ["http://a.example", "https://b.example"]),
        ('["http://a.example","http://b.example"]', ["http://a.example", "http://b.example"]),
    ],
)
def test_cors_origins_from_env(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]) -> None:
    monkeypatch.setenv("CORS_ORIGINS", raw)
    assert Settings(_env_file=None).CORS_ORIGINS == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_CONNECT_TIMEOUT", 0),
        ("DB_PORT", 0),
        ("DB_POOL_IDLE_S", -1),
        ("HEALTH_CHECK_TIMEOUT", 0),
    ],
)
def test_other_bounds(name: str, value: int) -> None:
    with pytest.raises(ValidationError):
        make(**{name: value})


def test_debug_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "true")
    assert Settings(_env_file=None).DEBUG is True


def test_postgres_image_names_are_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_USER", "pguser")
    monkeypatch.setenv("POSTGRES_PASSWORD", "pgpass")
    monkeypatch.setenv("POSTGRES_DB", "pgdb")
    url = Settings(_env_file=None).SQLALCHEMY_DATABASE_URI
    assert (url.username, url.password, url.database) == ("pguser", "pgpass", "pgdb")
    monkeypatch.setenv("DB_USER", "dbuser")
    monkeypatch.setenv("DB_NAME", "dbname")
    url = Settings(_env_file=None).SQLALCHEMY_DATABASE_URI
    assert (url.username, url.database) == ("dbuser", "dbname")


def test_unknown_variables_are_ignored(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An older .env still has SECRET_KEY, which nothing reads any more.
    env = tmp_path / ".env"
    env.write_text("SECRET_KEY=left-over\nDB_HOST=from-file\n")
    monkeypatch.setenv("SECRET_KEY", "left-over")
    s = Settings(_env_file=env)
    assert s.DB_HOST == "from-file"
    assert "left-over" not in repr(s) and not hasattr(s, "SECRET_KEY")


def test_env_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("DB_HOST=from-file\nDB_POOL_SIZE=9\n")
    s = Settings(_env_file=env)
    assert (s.DB_HOST, s.DB_POOL_SIZE) == ("from-file", 9)
    monkeypatch.setenv("DB_HOST", "from-env")
    assert Settings(_env_file=env).DB_HOST == "from-env"


def test_password_files_are_read_without_the_line_end(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "db").write_text("from-file-1\n")
    (tmp_path / "app").write_text("from-file-2")
    monkeypatch.setenv("POSTGRES_PASSWORD_FILE", str(tmp_path / "db"))
    monkeypatch.setenv("APP_DB_USER", "app_rw")
    monkeypatch.setenv("APP_DB_PASSWORD_FILE", str(tmp_path / "app"))
    s = make()
    assert s.DB_PASSWORD.get_secret_value() == "from-file-1"
    assert s.APP_DB_PASSWORD.get_secret_value() == "from-file-2"
    assert s.SQLALCHEMY_DATABASE_URI.password == "from-file-1"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda path: None, "{path} does not exist"),
        (lambda path: path.write_text("\n"), "{path} is empty"),
        # A directory: unreadable as a file even for root, who runs these tests in a container.
        (lambda path: path.mkdir(), "cannot read {path} (Is a directory)"),
    ],
    ids=["missing", "empty", "unreadable"],
)
def test_a_bad_password_file_is_refused_in_one_line_naming_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], setup, expected: str
) -> None:
    path = tmp_path / "secret"
    setup(path)
    monkeypatch.setenv("DB_PASSWORD_FILE", str(path))
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(SystemExit) as exited:
        settings_or_exit()
    assert str(exited.value) == "settings: DB_PASSWORD_FILE: " + expected.format(path=path)


def test_an_app_role_needs_a_password() -> None:
    with pytest.raises(ValidationError, match="APP_DB_USER is set but APP_DB_PASSWORD"):
        make(APP_DB_USER="app_rw")
