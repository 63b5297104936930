"""API keys (SPEC 3): a key authenticates one user; only its hash is ever stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AfterValidator, Field, SecretStr

from domain.base import Aggregate, Command, Meta, stable_id
from domain.text import Label, Name, storable
from domain.user import ADMIN, Email, Timezone


def hash_key(key: str) -> str:
    """API keys are random and long, so a fast hash is enough; only the hash is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "il_" + secrets.token_urlsafe(32)


def _valid_key(key: SecretStr) -> SecretStr:
    value = key.get_secret_value()
    storable(value)
    if any(c.isspace() for c in value):
        raise ValueError("an API key cannot contain whitespace")
    return key


ChosenKey = Annotated[SecretStr, Field(min_length=24, max_length=200), AfterValidator(_valid_key)]


class IssueApiKey(Command):
    """Give a user an API key (shown once, stored hashed)."""

    roles = ADMIN
    user: UUID
    label: Label = ""
    key: ChosenKey | None = Field(
        default=None, description="Use this key instead of a generated one."
    )


class BootstrapAdministrator(Command):
    """First start: the first system administrator and its key, in one append (no actor)."""

    system = True

    first_name: Name = "Ledger"
    last_name: Name = "Administrator"
    email: Email
    timezone: Timezone = "UTC"
    key: ChosenKey | None = None


class ApiKey(Aggregate):
    """An API key, known only by its hash; it authenticates one user."""

    @staticmethod
    def create_id(key_hash: str, **_: Any) -> UUID:
        return stable_id("api-key", key_hash)

    class Issued(Aggregate.Created):
        user_id: UUID
        key_hash: str
        label: str

    @event(Issued)
    def __init__(self, meta: Meta, user_id: UUID, key_hash: str, label: str) -> None:
        self.user_id = user_id
        self.key_hash = key_hash
        self.label = label
        self.revoked = False
