"""Shared building blocks: command and event bases, event metadata, and errors with stable codes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from pydantic import AwareDatetime, BaseModel, ConfigDict

LEDGER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:incident-ledger")


def stable_id(kind: str, key: str) -> UUID:
    """Deterministic id for a record looked up by a natural key (number, email, key hash)."""
    return uuid5(LEDGER_NAMESPACE, f"{kind}:{key}")


class Role(StrEnum):
    INCIDENT_MANAGER = "incident_manager"
    TECHNICAL_SUPPORT = "technical_support"
    ACCOUNT_MANAGER = "account_manager"
    EXECUTIVE = "executive"
    SYSTEM_ADMINISTRATOR = "system_administrator"
    CLIENT_CONTACT = "client_contact"
    AUDITOR = "auditor"
    ANALYST = "analyst"


class Meta(BaseModel):
    """Who did it, when it happened, and which command (and request) it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: UUID | None
    occurred_at: AwareDatetime
    command_id: UUID
    command: str
    idempotency_key: str | None = None
    source: str | None = None


class DomainEvent(BaseModel):
    """Frozen pydantic event: keeps enum, UUID and datetime types through the JSON round trip."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: UUID
    originator_version: int
    timestamp: datetime  # when the ledger recorded it (set by the library, never by a client)
    meta: Meta


class Aggregate(BaseAggregate[UUID]):
    """Aggregate base whose nested events are pydantic models."""

    field_types: ClassVar[dict[str, Any]] = {}
    """Types to restore when a JSON-plain `changes` value is applied (UUIDs, enums)."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    def apply_changes(self, changes: dict[str, list[Any]]) -> None:
        for name, (_before, after) in changes.items():
            kind = self.field_types.get(name)
            setattr(self, name, kind(after) if kind is not None and after is not None else after)

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str


class Command(BaseModel):
    """A validated request to change the ledger. Unknown or server-owned fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    roles: ClassVar[frozenset[Role]] = frozenset()
    """Roles allowed to issue this command (checked centrally by the ledger)."""

    occurred_at: AwareDatetime | None = None
    """When the step happened; defaults to now; may be backdated, never in the future."""


# --- errors ---------------------------------------------------------------------------------------


class LedgerError(Exception):
    """A refusal with a stable dotted code and a message a person can act on."""

    status: ClassVar[int] = 409

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class NotFound(LedgerError):
    status = 404


class Forbidden(LedgerError):
    status = 403


class Unauthenticated(LedgerError):
    status = 401


class RuleViolation(LedgerError):
    status = 409


class ConcurrencyConflict(LedgerError):
    status = 409


class InvalidInput(LedgerError):
    """Well-formed input that only the ledger can judge unusable (e.g. a reused idempotency key)."""

    status = 422


def require(condition: bool, code: str, message: str, **details: Any) -> None:
    """Raise a RuleViolation unless the condition holds."""
    if not condition:
        raise RuleViolation(code, message, **details)


def changes_between(current: Any, updates: dict[str, Any]) -> dict[str, list[Any]]:
    """The fields an update really changes, as {field: [before, after]} in JSON-ready form."""

    def plain(value: Any) -> Any:
        if isinstance(value, StrEnum):
            return value.value
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return {
        name: [plain(getattr(current, name)), plain(value)]
        for name, value in updates.items()
        if plain(getattr(current, name)) != plain(value)
    }
