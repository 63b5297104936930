"""What a handler decides with: the Context of one attempt at one command (actor, time, the
records it read and how each must still be when the append commits), and the Outcome it answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.base import Aggregate, Command, Meta, Role, record_id
from domain.errors import ConcurrencyConflict, Forbidden, NotFound, RecordedRefusal, RuleViolation
from domain.numbering import Counter
from domain.user import User

A = TypeVar("A", bound=Aggregate)
NUMBER = re.compile(r"^[A-Z]{3}\d{7}$")
CLOCK_SKEW = timedelta(seconds=5)
"""How far ahead of the ledger's clock a client's `occurred_at` may be (clock drift)."""
WORKERS = frozenset({Role.INCIDENT_MANAGER, Role.TECHNICAL_SUPPORT})
"""Roles that may be assigned an incident."""


class Refusal(BaseModel):
    """A refusal answered after the command's events are recorded (see `refused_after`)."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    details: dict[str, Any] = {}

    def error(self) -> RecordedRefusal:
        code, message = self.code, self.message
        return RecordedRefusal(code, message, **self.details)


class Outcome(BaseModel):
    """What a command answers: the record it created or changed, its new version, and the
    position (notification id) of the command's last event in the ledger."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    type: str
    version: int
    number: str | None = None
    status: str | None = None
    severity: str | None = None
    position: int | None = None
    extra: dict[str, Any] = {}
    state: dict[str, Any] = {}
    """The record as it stands after the command (what `GET` on it would show)."""
    secret: str | None = Field(default=None, exclude=True)
    """Shown once (a new API key); never stored, so a replayed request does not show it."""
    replayed: bool = Field(default=False, exclude=True)
    """The first answer to an earlier request with the same idempotency key."""
    refused: Refusal | None = Field(default=None, exclude=True)
    """Set when the command is refused although its events are recorded: the ledger saves them
    and then raises this refusal (and remembers it as the command's answer)."""


Decision = tuple[Outcome, list[Aggregate]]
Loader = Callable[[UUID], Aggregate | None]


def resolve(ref: UUID | str, what: str) -> UUID:
    """A record's id from its UUID or its human number; 404 for anything else."""
    if isinstance(ref, UUID):
        return ref
    ref = ref.strip()
    if NUMBER.match(ref.upper()):
        return record_id(ref.upper())
    try:
        return UUID(ref)
    except ValueError:
        raise NotFound(
            f"{what}.not_found", f"{ref!r} is neither a UUID nor a record number."
        ) from None


def outcome(aggregate: Aggregate, secret: str | None = None, **extra: Any) -> Outcome:
    def text(name: str) -> str | None:
        value = getattr(aggregate, name, None)
        return None if value is None else str(value)

    return Outcome(
        id=aggregate.id,
        type=type(aggregate).__name__,
        version=aggregate.version,
        number=text("number"),
        status=text("status"),
        severity=text("severity"),
        extra=extra,
        state=aggregate.state(),
        secret=secret,
    )


def refused_after(recorded: Aggregate, code: str, message: str, **details: Any) -> Outcome:
    """The answer of a command that records `recorded` (and whatever else its decision saves) and
    is nevertheless refused: SOP 5 closing a closed bridge records the work note `Bridge already
    closed.` and answers 409."""
    refusal = Refusal(code=code, message=message, details=details)
    return outcome(recorded).model_copy(update={"refused": refusal})


@dataclass
class Context:
    """One attempt at one command: who acts, when, and which records it read.

    `addressed` records are the ones the client named: if one moves before the append commits,
    the client gets a 409. `guarded` records are others whose state a rule relied on (an active
    assignee, an incident still open): the append commits only if each is still at the version
    read, else the command is decided again on fresh state."""

    load: Loader
    meta: Meta
    actor: User | None
    now: datetime
    addressed: dict[UUID, int] = field(default_factory=dict)
    guarded: dict[UUID, int] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When this attempt began, by the recording clock (the library's event timestamps)."""
    loaded: set[UUID] = field(default_factory=set)
    """Every record this attempt read (a refusal is checked against their current versions)."""
    numbering: AbstractContextManager[Any] | None = None
    """Held from the first number issued until the attempt ends (see `release`)."""
    _holding: bool = False

    @property
    def actor_id(self) -> UUID | None:
        return self.meta.actor

    # --- lookups --------------------------------------------------------------------------------

    def find(self, cls: type[A], ref: UUID | str, what: str, *, guard: bool = False) -> A:
        """Load a record by UUID or number; 404 `<what>.not_found` if absent. With `guard`, the
        append commits only if the record has not changed since."""
        found = self.load(resolve(ref, what))
        if not isinstance(found, cls):
            raise NotFound(f"{what}.not_found", f"No {what.replace('_', ' ')} {ref}.")
        if guard:
            self.guard(found)
        return found

    def active_user(self, user_id: UUID, what: str, roles: frozenset[Role] | None = None) -> User:
        """A user who may be referenced (assignee, recipient, target...): exists, is active (and
        holds one of `roles`) when the append commits."""
        user = self.find(User, user_id, "user", guard=True)
        if not user.is_active:
            raise RuleViolation(
                "user.inactive",
                f"The {what} ({user.full_name}) is inactive and cannot be referenced.",
                user=str(user_id),
            )
        if roles is not None and user.role not in roles:
            raise RuleViolation(
                "user.wrong_role",
                f"The {what} ({user.full_name}) is {user.role.value}; the {what} must be one of "
                f"{', '.join(sorted(r.value for r in roles))}.",
                user=str(user_id),
            )
        return user

    # --- what the append must find unchanged ----------------------------------------------------

    def address(self, aggregate: A, expected_version: int | None = None) -> A:
        """Mark a record the client named: if it changes before the append commits (whether or
        not this command saves it), the client gets a 409 with its current version."""
        if expected_version is not None and expected_version != aggregate.version:
            raise ConcurrencyConflict(
                "concurrency.version_mismatch",
                f"The record is at version {aggregate.version}, not {expected_version}; "
                "reload it and try again.",
                current_version=aggregate.version,
            )
        self.addressed[aggregate.id] = aggregate.version
        self.guard(aggregate)
        return aggregate

    def guard(self, aggregate: Aggregate) -> None:
        """The append commits only if `aggregate` is still at the version read now."""
        self.guarded[aggregate.id] = aggregate.version

    # --- actor and time ---------------------------------------------------------------------

    def require_assignee_if_support(self, incident: Any) -> None:
        """Technical support may acknowledge or move only the incidents assigned to them."""
        if (
            self.actor is not None
            and self.actor.role == Role.TECHNICAL_SUPPORT
            and incident.assigned_to != self.actor.id
        ):
            raise Forbidden(
                "incident.not_assigned_to_you",
                f"Technical support may only do this on incidents assigned to them; "
                f"{incident.number} is not.",
            )

    def not_before(self, moment: datetime, what: str) -> None:
        """The step cannot be dated before `moment` (an incident's detection)."""
        if self.meta.occurred_at < moment:
            raise RuleViolation(
                "occurred_at.before_detection",
                f"occurred_at {self.meta.occurred_at.isoformat()} is before {what} "
                f"({moment.isoformat()}).",
            )

    def not_in_future(self, moment: datetime, field_name: str, *, skew: bool = True) -> None:
        """`moment` is not after now (give or take the clients' clock skew, unless `skew` is
        off)."""
        if moment > self.now + (CLOCK_SKEW if skew else timedelta(0)):
            raise RuleViolation(
                f"{field_name}.in_future",
                f"{field_name} {moment.isoformat()} is in the future (now {self.now.isoformat()}).",
            )

    # --- numbers ----------------------------------------------------------------------------

    def next_number(self, prefix: str) -> tuple[str, Counter]:
        """Issue the next human number of a kind; the counter is saved with the record."""
        if self.numbering is not None and not self._holding:
            self.numbering.__enter__()
            self._holding = True
        counter = self.load(Counter.create_id(prefix=prefix))
        if not isinstance(counter, Counter):
            counter = Counter(meta=self.meta, prefix=prefix)
        return counter.next_number(self.meta), counter

    def release(self) -> None:
        """End of the attempt: let the next command issue numbers."""
        if self._holding and self.numbering is not None:
            self._holding = False
            self.numbering.__exit__(None, None, None)


C = TypeVar("C", bound=Command)
Handler = Callable[[Any, Context], Decision]


def entry(
    command: type[C], handler: Callable[[C, Context], Decision]
) -> tuple[type[Command], Handler]:
    """One row of a handler table; the type checker sees that the handler takes this command."""
    return command, handler
