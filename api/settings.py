"""Typed settings, read from the environment once at start-up and passed in."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ADMIN_KEY_MIN_LENGTH = 24


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INCIDENT_LEDGER_", extra="ignore", populate_by_name=True
    )

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="postgresql://owner:password@host:port/db?sslmode=... (or key=value pairs); "
        "unset = embedded PostgreSQL.",
    )
    data_dir: Path = Field(default=Path(".incident-ledger"))
    signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PEM) that `incident-ledger checkpoint` signs with; "
        "kept outside the database (make one with `incident-ledger keygen`).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    admin_key: SecretStr | None = Field(
        default=None,
        description=f"API key for the first administrator ({ADMIN_KEY_MIN_LENGTH}+ characters, "
        "no spaces); never printed. Unset: one is generated and printed once.",
    )
    app_role: str = Field(
        default="incident_ledger_app",
        description="Login role the API connects as: appends events, reads the views.",
    )
    projector_role: str = Field(
        default="incident_ledger_projector",
        description="Login role the projector connects as: writes the views, reads the events.",
    )
    app_password: SecretStr | None = Field(
        default=None,
        description="The API role's password; unset: generated once into the data directory.",
    )
    projector_password: SecretStr | None = Field(
        default=None,
        description="The projector role's password; unset: as above.",
    )
    allow_superuser: bool = Field(
        default=False,
        description="Let DATABASE_URL name a superuser (or a BYPASSRLS or REPLICATION role).",
    )
    lock_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How long a statement of the service may wait for a lock (an append for "
        "its turn) before it fails with 503 database.busy.",
    )
    statement_timeout_seconds: float = Field(
        default=30.0, gt=0, description="How long one statement of the service may run."
    )
    projector: Literal["process", "thread", "off"] = Field(
        default="process",
        description="process: `serve` runs the projector as its own child process (its own "
        "interpreter, so projecting never waits on requests), restarted if it stops; a service "
        "embedded in another program (tests, tools) runs it as a thread. thread: a background "
        "thread of `serve`. off: a separate `incident-ledger projector` does (docker compose).",
    )
    projector_poll_seconds: float = Field(
        default=1.0, gt=0, description="The projector also looks for new events this often."
    )
    projector_retry_seconds: float = Field(
        default=30.0, gt=0, description="A view that failed on an event is retried this often."
    )
    rebuild_processes: int = Field(
        default=0,
        ge=0,
        description="Processes a rebuild of a large ledger folds the views in, each taking a "
        "share of the views; 0: one per CPU, at most one per view.",
    )
    read_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a view read waits for its view to reach the wanted position "
        "before answering 503 view.behind.",
    )
    pool_size: int = 8
    max_body_bytes: int = Field(
        default=256 * 1024,
        description="Largest request body accepted (413 above): well over what any command's "
        "bounded fields add up to, far under what could stall the write path.",
    )
    auth_failure_limit: int = Field(
        default=20, description="Failed authentications one client may make per window (429)."
    )
    auth_failure_window: float = Field(default=60.0, description="Seconds (see above).")

    @property
    def owner_may_be_privileged(self) -> bool:
        """The embedded server's owner is its superuser; DATABASE_URL's may be one only when
        allowed explicitly."""
        return self.database_url is None or self.allow_superuser

    def session_options(self) -> str:
        """libpq `options` for every connection of the service: its lock and statement timeouts."""
        return (
            f"-c lock_timeout={round(self.lock_timeout_seconds * 1000)} "
            f"-c statement_timeout={round(self.statement_timeout_seconds * 1000)}"
        )

    @field_validator(
        "database_url", "admin_key", "app_password", "projector_password", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("admin_key")
    @classmethod
    def _usable_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_admin_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _two_roles(self) -> Settings:
        if self.app_role == self.projector_role:
            raise ValueError(
                "INCIDENT_LEDGER_APP_ROLE and INCIDENT_LEDGER_PROJECTOR_ROLE must differ"
            )
        return self


def check_admin_key(key: str) -> None:
    """Refuse a chosen administrator key that is short or holds spaces or control characters
    (the message never repeats the key)."""
    if len(key) < ADMIN_KEY_MIN_LENGTH:
        raise ValueError(f"must be at least {ADMIN_KEY_MIN_LENGTH} characters long")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in key):
        raise ValueError("must not contain spaces or control characters")


def describe_invalid(error: ValidationError) -> str:
    """A settings error as one line naming the environment variables, without their values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        reason = item.get("ctx", {}).get("error", item["msg"])
        if not item["loc"]:  # a rule across settings names its variables itself
            parts.append(str(reason))
            continue
        name = str(item["loc"][0])
        variable = "DATABASE_URL" if name == "database_url" else f"INCIDENT_LEDGER_{name.upper()}"
        parts.append(f"{variable} {reason}")
    return "invalid settings: " + "; ".join(parts)
