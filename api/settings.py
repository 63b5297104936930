"""Typed settings, read from the environment once at start-up and passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INCIDENT_LEDGER_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="postgresql://owner:password@host:port/db; unset = embedded PostgreSQL.",
    )
    data_dir: Path = Field(default=Path(".incident-ledger"))
    host: str = "127.0.0.1"
    port: int = 8000
    admin_key: str | None = Field(
        default=None, description="API key for the first administrator (else one is generated)."
    )
    app_role: str = Field(
        default="incident_ledger_app",
        description="Database role the service writes with; it cannot update or delete events.",
    )
    inline_projections: bool = Field(
        default=True,
        description="Project each command's events before answering (read-your-writes). "
        "Turn off when a separate `incident-ledger projector` runs.",
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

    @field_validator("database_url", "admin_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
