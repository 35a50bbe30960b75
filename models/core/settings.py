"""Settings read from CLSM_* environment variables, validated once at start."""

from __future__ import annotations

import os
import secrets
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-key-change-me-in-production-0123456789"


def strong_secret(value: str) -> bool:
    """Whether a secret looks random: 32 characters at least, 12 distinct, no whitespace
    (refuses blank keys, repeated characters and pass phrases alike)."""
    return len(value) >= 32 and len(set(value)) >= 12 and not any(c.isspace() for c in value)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class SmtpSecurity(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


class Settings(BaseSettings):
    """Every knob of the installation; see the configuration table in README.md."""

    model_config = SettingsConfigDict(env_prefix="CLSM_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    var_dir: Path = Path("var")
    database_url: str = ""
    prefect_api_url: str = "http://127.0.0.1:4200/api"
    # the Prefect server's secret (`user:password`); empty: generated once under var_dir
    prefect_auth_string: str = ""
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = DEV_SECRET
    timezone: str = "Europe/Paris"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_concurrency: int = Field(default=4, ge=1, le=64)
    smtp_retry_base_seconds: float = Field(default=60.0, gt=0)
    smtp_max_attempts: int = Field(default=10, ge=1, le=100)
    smtp_claim_seconds: float = Field(default=600.0, gt=0)
    smtp_ca_file: Path | None = None
    mail_from: str = "CLSM <no-reply@clsm.localhost>"
    sink_dir: Path | None = None
    link_validity_days: int = Field(default=30, ge=1, le=365)
    stuck_run_seconds: float = Field(default=120.0, gt=0)
    # a running flow run silent this long (no heartbeat: its machine was lost) is marked
    # CRASHED by tick, then handed back; runs beat every 30 s
    silent_run_seconds: int = Field(default=90, ge=40, le=3600)
    retention_years: int = Field(default=5, ge=1, le=100)
    # the heartbeat process's pass (`python -m flows.tick`): due dates are met within it
    tick_seconds: float = Field(default=30.0, ge=1, le=60)
    # the audit chain's key (HMAC-SHA256), kept outside the database; generated under
    # var_dir in development, required in production; retired keys (comma-separated) still
    # verify the events they sealed
    audit_key: str = ""
    audit_retired_keys: str = ""
    # signed checkpoints of every chain head (Ed25519), outside the database
    checkpoint_dir: Path | None = None
    checkpoint_key_file: Path | None = None
    # addresses of the reverse proxies whose X-Forwarded-For is believed (comma-separated)
    trusted_proxies: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"fuseau horaire inconnu : {value!r}") from exc
        return value

    @field_validator("base_url", "prefect_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("doit commencer par http:// ou https://")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql")):
            raise ValueError("seules les URL sqlite:// et postgresql:// sont prises en charge")
        return value

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.env is not Environment.PRODUCTION:
            return self
        for variable, value in (
            ("CLSM_SECRET_KEY", self.secret_key),
            ("CLSM_AUDIT_KEY", self.audit_key),
        ):
            if value == DEV_SECRET or not strong_secret(value):
                raise ValueError(
                    f"{variable} : une clé secrète aléatoire d'au moins 32 caractères "
                    "(dont 12 différents au moins, sans espaces) est obligatoire en production"
                )
        return self

    @property
    def checkpoints_dir(self) -> Path:
        return self.checkpoint_dir or self.var_dir / "checkpoints"

    @property
    def checkpoint_signing_key(self) -> Path:
        return self.checkpoint_key_file or self.var_dir / "checkpoint-signing.key"

    @property
    def proxies(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.trusted_proxies.split(",") if p.strip())

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'clsm.db'}"

    @property
    def mail_sink_dir(self) -> Path:
        return self.sink_dir or self.var_dir / "mail"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def ui_url(self) -> str:
        """Where people open the Prefect UI: the service's gateway, never the server."""
        return f"{self.base_url}/prefect"

    def run_url(self, flow_run_id: str | None) -> str:
        """A run's page in the Prefect UI (through the gateway); "" without a run."""
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}" if flow_run_id else ""

    @property
    def prefect_server_url(self) -> str:
        return self.prefect_api_url.removesuffix("/api")

    @property
    def prefect_auth(self) -> str:
        """The Prefect server's secret: given, or generated at first use under var_dir."""
        return self.prefect_auth_string or _stored_secret(self.var_dir / "prefect-auth")


def _stored_secret(path: Path) -> str:
    """Read the secret kept in `path`, creating it (owner-only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = f"clsm:{secrets.token_urlsafe(32)}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process of the installation wrote it first
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secret)
    return path.read_text().strip()


class ConfigurationError(SystemExit):
    """Raised with one French line naming the faulty variable."""


_FRENCH_ERRORS = {
    "int_parsing": "doit être un nombre entier",
    "float_parsing": "doit être un nombre",
    "bool_parsing": "doit valoir true ou false",
    "enum": "valeur non reconnue (valeurs possibles : {expected})",
    "greater_than_equal": "doit être supérieur ou égal à {ge}",
    "less_than_equal": "doit être inférieur ou égal à {le}",
    "greater_than": "doit être strictement supérieur à {gt}",
}


def describe_error(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    variable = f"CLSM_{field.upper()}" if field else ""
    template = _FRENCH_ERRORS.get(first["type"])
    context = first.get("ctx") or {}
    message = template.format(**context) if template else first["msg"].removeprefix("Value error, ")
    if not variable and message.startswith("CLSM_"):
        return f"Configuration invalide : {message}"
    return f"Configuration invalide : {variable} — {message}"


def load_settings() -> Settings:
    """Read the environment; a bad value stops with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError(describe_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def fail_fast() -> Settings:
    """Entry points call this first: print the faulty variable on stderr and exit 2."""
    try:
        return get_settings()
    except ConfigurationError as error:
        print(error.code, file=sys.stderr)
        raise SystemExit(2) from None
