"""Application settings, read from the environment (and an optional .env file)."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

from app import __version__

# asyncpg: queries run on the event loop (no thread per request), and a deadline cancels
# them on the server.
DRIVER = "postgresql+asyncpg"
# Driver names a DATABASE_URL may carry; each is replaced by DRIVER.
POSTGRES_DRIVERS = ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", DRIVER)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    PROJECT_NAME: str = "Todo API"
    VERSION: str = __version__
    DEBUG: bool = False

    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["json", "plain"] = "json"

    # The interactive API docs, /docs and /redoc: pages that load swagger-ui and redoc from
    # a CDN, so off in production (scripts/start.sh), where no third-party script may run on
    # the app's origin. /openapi.json, plain JSON, is served either way.
    DOCS_ENABLED: bool = True

    # Comma-separated list ("http://a,http://b") or a JSON list.
    CORS_ORIGINS: Annotated[list[str], NoDecode] = ["http://localhost:3000"]

    # Database: either DATABASE_URL, or the DB_* parts it is built from.
    DATABASE_URL: SecretStr | None = None
    DB_HOST: str = "postgres"
    DB_PORT: int = Field(default=5432, ge=1, le=65535)
    # The postgres image's variable names are accepted as fallbacks.
    DB_NAME: str = Field(default="app", validation_alias=AliasChoices("DB_NAME", "POSTGRES_DB"))
    DB_USER: str = Field(default="app", validation_alias=AliasChoices("DB_USER", "POSTGRES_USER"))
    DB_PASSWORD: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("DB_PASSWORD", "POSTGRES_PASSWORD")
    )
    # A file holding DB_PASSWORD (a Compose secret under /run/secrets), as the postgres image
    # reads POSTGRES_PASSWORD_FILE: the value then never shows in `docker inspect`.
    DB_PASSWORD_FILE: Path | None = Field(
        default=None, validation_alias=AliasChoices("DB_PASSWORD_FILE", "POSTGRES_PASSWORD_FILE")
    )
    # The role the app connects as in prod, which `alembic upgrade` (run as the owner, DB_USER)
    # creates or updates and grants read/write on the app's tables only. Empty: no such role
    # (the dev stack connects as the owner).
    APP_DB_USER: str = ""
    APP_DB_PASSWORD: SecretStr = SecretStr("")
    APP_DB_PASSWORD_FILE: Path | None = None

    # Most connections per worker process. A request holds one only while its statements
    # run, but under load about as many run at once as there are requests in flight.
    DB_POOL_SIZE: int = Field(default=10, ge=5, le=20)
    # Seconds to wait for a free pooled connection.
    DB_POOL_TIMEOUT: float = Field(default=5.0, gt=0, le=300)
    # Seconds an idle pooled connection is kept open; 0 keeps it for good.
    DB_POOL_IDLE_S: float = Field(default=300.0, ge=0)
    # Seconds to open a connection (TCP, TLS and authentication).
    DB_CONNECT_TIMEOUT: float = Field(default=2.0, gt=0, le=60)
    # Server-side statement_timeout for every connection; 0 disables it.
    DB_STATEMENT_TIMEOUT_MS: int = Field(default=5000, ge=0)

    # Upper bound for the whole /health database probe, seconds.
    HEALTH_CHECK_TIMEOUT: float = Field(default=1.5, gt=0, le=30)
    # /health answers 503 (not ready) until the database's schema is at the code's migration
    # head. Off by default, so a dev stack is healthy before its first `inv migrate`; the
    # prod image's scripts/start.sh turns it on: its backend serves only a migrated schema.
    HEALTH_REQUIRES_MIGRATIONS: bool = False
    # Deadline for a request to start its response, seconds; 0 disables. Past it the
    # request's work is cancelled (its transaction rolled back) and the answer is 503
    # with Retry-After, or 504 when a commit was already on its way (outcome unknown).
    REQUEST_TIMEOUT: float = Field(default=10.0, ge=0, le=600)
    # Largest accepted request body, bytes (1 MiB).
    MAX_BODY_SIZE: int = Field(default=1024 * 1024, ge=1)

    # Rate limiting of the API (paths under /api/; not /health, /, the OpenAPI document or the
    # docs) per client address: at most RATE_LIMIT_REQUESTS requests in a window of
    # RATE_LIMIT_WINDOW_S seconds, which starts with the client's first request (a fixed
    # window); the requests past the limit get 429 with Retry-After, the seconds until it ends.
    # The counters live in Redis (REDIS_URL), so every worker and replica shares one budget
    # per client. False: no limit, and no connection to Redis.
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_REQUESTS: int = Field(default=600, ge=1, le=1_000_000_000)
    RATE_LIMIT_WINDOW_S: int = Field(default=60, ge=1, le=86_400)
    # Seconds after a Redis failure during which requests go through unchecked without asking
    # Redis at all: a Redis that is down or frozen costs one REDIS_TIMEOUT per worker and
    # period, not one per request. Then the next request tries again.
    RATE_LIMIT_RETRY_S: float = Field(default=1.0, gt=0, le=60)
    # The peers allowed to name the client in X-Real-IP: the reverse proxy (nginx sets that
    # header from the address it was connected from, replacing whatever the client sent).
    # Host names (resolved again, at most once a second, when an unknown peer connects), IP
    # addresses or networks (CIDR); comma-separated or a JSON list. From any other peer the
    # header is ignored and the peer's own address is the client. Empty: the peer always is.
    TRUSTED_PROXIES: Annotated[list[str], NoDecode] = []

    # Redis (Valkey in the stacks): the rate limiter's counters, nothing else.
    REDIS_URL: SecretStr = SecretStr("redis://redis:6379/0")
    # Seconds connecting or one command may take; past it the request goes on unchecked
    # (fail open), so a frozen Redis cannot hold up the API. A command takes well under 1 ms,
    # but a worker busy with a burst of requests reads the answer late: 60 new connections at
    # once on two busy cores took over 0.1 s, and each such false alarm let requests through
    # unchecked for RATE_LIMIT_RETRY_S.
    REDIS_TIMEOUT: float = Field(default=0.25, gt=0, le=5)
    # Most Redis connections per worker process, one per check in flight; a request that finds
    # them all in use goes on unchecked rather than wait.
    REDIS_POOL_SIZE: int = Field(default=100, ge=1, le=1000)

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        value = split_list(value)
        if isinstance(value, list):
            return [o.rstrip("/") for o in value]
        return value

    @field_validator("TRUSTED_PROXIES", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        value = split_list(value)
        for entry in value if isinstance(value, list) else ():
            if "/" in entry:
                ipaddress.ip_network(entry, strict=False)  # a ValueError names the bad network
        return value

    @model_validator(mode="after")
    def _read_password_files(self) -> Settings:
        if self.DB_PASSWORD_FILE is not None:
            self.DB_PASSWORD = read_secret_file("DB_PASSWORD_FILE", self.DB_PASSWORD_FILE)
        if self.APP_DB_PASSWORD_FILE is not None:
            self.APP_DB_PASSWORD = read_secret_file("APP_DB_PASSWORD_FILE", self.APP_DB_PASSWORD_FILE)
        if self.APP_DB_USER and not self.APP_DB_PASSWORD.get_secret_value():
            raise ValueError("APP_DB_USER is set but APP_DB_PASSWORD (or APP_DB_PASSWORD_FILE) is empty")
        return self

    @property
    def SQLALCHEMY_DATABASE_URI(self) -> URL:
        """The database URL, always with the asyncpg driver."""
        if self.DATABASE_URL is not None:
            url = make_url(self.DATABASE_URL.get_secret_value())
            if url.drivername not in POSTGRES_DRIVERS:
                raise ValueError(f"DATABASE_URL: {url.drivername!r} is not a PostgreSQL URL")
            return url.set(drivername=DRIVER)
        return URL.create(
            drivername=DRIVER,
            username=self.DB_USER,
            password=self.DB_PASSWORD.get_secret_value() or None,
            host=self.DB_HOST,
            port=self.DB_PORT,
            database=self.DB_NAME,
        )


def split_list(value: Any) -> Any:
    """A list setting given as "a,b" or as a JSON list: its non-empty items, stripped."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    if isinstance(value, (list, tuple)):
        return [str(item).strip() for item in value if str(item).strip()]
    return value


def read_secret_file(variable: str, path: Path) -> SecretStr:
    """A secret from a file, without the line end a text editor adds; refuses a missing,
    unreadable or empty file in one sentence that names it."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise ValueError(f"{variable}: {path} does not exist") from None
    except OSError as error:
        raise ValueError(f"{variable}: cannot read {path} ({error.strerror})") from None
    if not value:
        raise ValueError(f"{variable}: {path} is empty")
    return SecretStr(value)


def settings_or_exit() -> Settings:
    """The settings, or exit with one line per invalid one: for entry points, where a
    traceback (or uvicorn restarting its workers for ever) would bury the reason."""
    try:
        return Settings()
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"settings: {where + ': ' if where else ''}{message}")
        raise SystemExit("\n".join(lines)) from None


@lru_cache
def get_settings() -> Settings:
    return Settings()


if __name__ == "__main__":
    # `python -m app.core.config`: check the settings before starting the server.
    settings_or_exit()
