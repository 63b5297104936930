"""IncidentLedger: the application. One handler per command: load, decide, save atomically."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import get_topic
from pydantic import BaseModel, ConfigDict, Field

from domain.base import (
    Aggregate,
    Command,
    ConcurrencyConflict,
    Forbidden,
    InvalidInput,
    Meta,
    NotFound,
    Role,
    RuleViolation,
    Unauthenticated,
    stable_id,
)
from domain.mapper import JSONTranscoder, PydanticMapper
from domain.parties import ApiKey, User
from domain.records import Counter

A = TypeVar("A", bound=Aggregate)
NUMBER = re.compile(r"^[A-Z]{3}\d{7}$")
CLOCK_SKEW = timedelta(seconds=5)
MAX_ATTEMPTS = 8


class Outcome(BaseModel):
    """What a command answers: the record it created or changed, and its new version."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    type: str
    version: int
    number: str | None = None
    status: str | None = None
    severity: str | None = None
    extra: dict[str, Any] = {}
    secret: str | None = Field(default=None, exclude=True)
    """Shown once (a new API key); never stored, so a replayed request does not show it."""
    position: int | None = None
    """The notification id of the command's last event: a read that must see this command
    waits until a view has reached it. None for a replayed request (not known then)."""


@runtime_checkable
class IdempotencyRecorder(Protocol):
    """A recorder that stores idempotency keys in the same transaction as the events."""

    def find_idempotency(self, key: str) -> tuple[str, str] | None: ...


@dataclass
class Context:
    """One attempt at one command: who acts, when, and which records the client addressed."""

    ledger: IncidentLedger
    meta: Meta
    actor: User | None
    now: datetime
    addressed: dict[UUID, int] = field(default_factory=dict)

    @property
    def actor_id(self) -> UUID | None:
        return self.meta.actor

    def address(self, aggregate: A, expected_version: int | None = None) -> A:
        """Mark a record the client named; a concurrent change to it is the client's 409."""
        if expected_version is not None and expected_version != aggregate.version:
            raise ConcurrencyConflict(
                "concurrency.version_mismatch",
                f"The record is at version {aggregate.version}, not {expected_version}; "
                "reload it and try again.",
                current_version=aggregate.version,
            )
        self.addressed[aggregate.id] = aggregate.version
        return aggregate

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

    def next_number(self, prefix: str) -> tuple[str, Counter]:
        """Issue the next human number of a kind; the counter is saved with the record."""
        counter = self.ledger.get_or_none(Counter.create_id(prefix=prefix))
        if not isinstance(counter, Counter):
            counter = Counter(meta=self.meta, prefix=prefix)
        return counter.next_number(self.meta), counter

    def not_before(self, moment: datetime, what: str) -> None:
        if self.meta.occurred_at < moment:
            raise InvalidInput(
                "occurred_at.before_detection",
                f"occurred_at {self.meta.occurred_at.isoformat()} is before {what} "
                f"({moment.isoformat()}).",
            )


Handler = Callable[["IncidentLedger", Any, Context], tuple[Outcome, list[Aggregate]]]


class IncidentLedger(Application[UUID]):
    """Every SOP action is a command; every accepted command becomes immutable events."""

    env: ClassVar[dict[str, str]] = {
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(JSONTranscoder),
        "AGGREGATE_CACHE_MAXSIZE": "5000",
    }
    handlers: ClassVar[dict[type[Command], Handler]] = {}

    def __init__(
        self, env: dict[str, str] | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(env)
        self.clock = clock or (lambda: datetime.now(UTC))

    # --- the one entry point ----------------------------------------------------------------

    def handle(
        self,
        command: Command,
        actor: UUID | None,
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Outcome:
        """Check the actor, run the command's handler and save all its events in one append."""
        handler = self.handlers[type(command)]
        if idempotency_key is not None:
            replay = self._idempotent_replay(idempotency_key, request_hash)
            if replay is not None:
                return replay
        command_id = uuid4()
        for _attempt in range(MAX_ATTEMPTS):
            ctx = self._context(command, actor, command_id, idempotency_key)
            outcome, aggregates = handler(self, command, ctx)
            kwargs: dict[str, Any] = {}
            if idempotency_key is not None:
                kwargs["idempotency"] = (idempotency_key, request_hash, outcome.model_dump_json())
            try:
                recordings = self.save(*aggregates, **kwargs)
            except RecordConflictError:
                if idempotency_key is not None:
                    replay = self._idempotent_replay(idempotency_key, request_hash)
                    if replay is not None:
                        return replay
                self._raise_if_addressed_moved(ctx)
                continue  # only a bookkeeping record (a number counter) moved: decide again
            if recordings:
                return outcome.model_copy(update={"position": recordings[-1].notification.id})
            return outcome
        raise ConcurrencyConflict(
            "concurrency.busy", "Too many concurrent changes; try again.", current_version=None
        )

    def _context(
        self, command: Command, actor_id: UUID | None, command_id: UUID, key: str | None
    ) -> Context:
        now = self.clock()
        occurred_at = command.occurred_at or now
        if occurred_at > now + CLOCK_SKEW:
            raise InvalidInput(
                "occurred_at.in_future",
                f"occurred_at {occurred_at.isoformat()} is in the future (now {now.isoformat()}).",
            )
        actor: User | None = None
        if actor_id is not None:
            actor = self.find(User, actor_id, "actor")
            if not actor.is_active:
                raise Forbidden("actor.inactive", "Your user account is inactive.")
            if actor.role not in command.roles:
                raise Forbidden(
                    "role.forbidden",
                    f"Your role ({actor.role.value}) may not {type(command).__name__}.",
                )
        meta = Meta(
            actor=actor_id,
            occurred_at=occurred_at,
            command_id=command_id,
            command=type(command).__name__,
            idempotency_key=key,
        )
        return Context(self, meta, actor, now)

    def _idempotent_replay(self, key: str, request_hash: str | None) -> Outcome | None:
        if not isinstance(self.recorder, IdempotencyRecorder):
            return None
        found = self.recorder.find_idempotency(key)
        if found is None:
            return None
        stored_hash, stored_outcome = found
        if stored_hash != request_hash:
            raise InvalidInput(
                "idempotency.key_reused",
                "This Idempotency-Key was already used with a different request body.",
            )
        return Outcome.model_validate_json(stored_outcome)

    def _raise_if_addressed_moved(self, ctx: Context) -> None:
        for aggregate_id, version in ctx.addressed.items():
            current: int = self.repository.get(aggregate_id).version
            if current != version:
                raise ConcurrencyConflict(
                    "concurrency.conflict",
                    f"The record changed while this command ran (now version {current}); "
                    "reload it and try again.",
                    current_version=current,
                )

    # --- loading ------------------------------------------------------------------------------

    def find(self, cls: type[A], ref: UUID | str, what: str) -> A:
        """Load a record by UUID or human number; 404 with `<what>.not_found` if absent."""
        aggregate_id = self.resolve(ref, what)
        aggregate = self.get_or_none(aggregate_id)
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what}.not_found", f"No {what.replace('_', ' ')} {ref}.")
        return aggregate

    @staticmethod
    def resolve(ref: UUID | str, what: str) -> UUID:
        if isinstance(ref, UUID):
            return ref
        ref = ref.strip()
        if NUMBER.match(ref.upper()):
            return stable_id("record", ref.upper())
        try:
            return UUID(ref)
        except ValueError:
            raise NotFound(
                f"{what}.not_found", f"{ref!r} is neither a UUID nor a record number."
            ) from None

    def active_user(self, user_id: UUID, what: str) -> User:
        """A user who may be referenced (assignee, recipient, target...): exists and is active."""
        user = self.find(User, user_id, "user")
        if not user.is_active:
            raise RuleViolation(
                "user.inactive",
                f"The {what} ({user.full_name}) is inactive and cannot be referenced.",
                user=str(user_id),
            )
        return user

    def get_or_none(self, aggregate_id: UUID) -> Aggregate | None:
        try:
            return cast(Aggregate, self.repository.get(aggregate_id))
        except AggregateNotFoundError:
            return None

    def authenticate(self, key: str) -> User:
        """The active user an API key belongs to; 401 if the key is unknown."""
        api_key = self.get_or_none(ApiKey.create_id(key_hash=hash_key(key)))
        if not isinstance(api_key, ApiKey) or api_key.revoked:
            raise Unauthenticated("auth.invalid_key", "The API key is not valid.")
        user = self.find(User, api_key.user_id, "user")
        if not user.is_active:
            raise Forbidden("actor.inactive", "Your user account is inactive.")
        return user


def hash_key(key: str) -> str:
    """API keys are random and long, so a fast hash is enough; only the hash is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "il_" + secrets.token_urlsafe(32)


def handles(command_class: type[Command]) -> Callable[[Handler], Handler]:
    """Register a ledger handler for a command class."""

    def register(func: Handler) -> Handler:
        IncidentLedger.handlers[command_class] = func
        return func

    return register


def outcome(aggregate: Aggregate, secret: str | None = None, **extra: Any) -> Outcome:
    def plain(name: str) -> str | None:
        value = getattr(aggregate, name, None)
        return None if value is None else str(value)

    return Outcome(
        id=aggregate.id,
        type=type(aggregate).__name__,
        version=aggregate.version,
        number=plain("number"),
        status=plain("status"),
        severity=plain("severity"),
        extra=extra,
        secret=secret,
    )


# Handlers register themselves on import.
import domain.handlers.incident  # noqa: E402
import domain.handlers.parties  # noqa: E402, F401
