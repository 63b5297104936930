"""Typed settings, read from the environment once at start-up and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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
    projector: Literal["thread", "off"] = Field(
        default="thread",
        description="thread: `serve` keeps the views caught up in a background thread; off: a "
        "separate `incident-ledger projector` process does (docker compose).",
    )
    projector_poll_seconds: float = Field(
        default=1.0, gt=0, description="The projector also looks for new events this often."
    )
    projector_retry_seconds: float = Field(
        default=30.0, gt=0, description="A view that failed on an event is retried this often."
    )
    read_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a view read waits for its view to reach the wanted position "
        "before answering 503 view.behind.",
    )
    pool_size: int = 8

    @field_validator("database_url", "admin_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
