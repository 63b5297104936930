"""IncidentLedger: the application. `handle()` is the one entry point: check the actor, decide
with the command's handler, and save every event of the command in one atomic append."""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, project_aggregate
from eventsourcing.persistence import EventStore, RecordConflictError
from eventsourcing.utils import Environment, EnvType, get_topic

from domain import idempotency
from domain.api_key import ApiKey, hash_key
from domain.base import Aggregate, Command, DomainEvent, Meta
from domain.context import Context, Handler, Outcome, resolve
from domain.errors import (
    ConcurrencyConflict,
    Forbidden,
    LedgerError,
    NotFound,
    RecordedRefusal,
    Unauthenticated,
)
from domain.handlers import HANDLERS
from domain.idempotency import CommandRecorder
from domain.mapper import JSONTranscoder, PydanticMapper
from domain.memory import MemoryFactory
from domain.numbering import Counter
from domain.topics import register_moved_topics
from domain.user import User

MAX_ATTEMPTS = 10
RETRY_SECONDS = 3.0
"""A command that keeps losing races is decided again at least MAX_ATTEMPTS times and for at
least RETRY_SECONDS (several workers numbering an alert storm from one counter), then refused
with 409 concurrency.busy."""
BACKOFF_FIRST = 0.001
BACKOFF_CAP = 0.1
"""Seconds: before the n-th attempt a command waits up to BACKOFF_FIRST x 2^n, at most the cap."""
A = TypeVar("A", bound=Aggregate)
SNAPSHOT_INTERVAL = 100
log = logging.getLogger("incident_ledger.ledger")
register_moved_topics()


class CounterSnapshots(EventStore[UUID]):
    """The snapshot store, asked only about counters (the only records snapshotted): any other
    record loads from its events without a query for a snapshot it cannot have."""

    def get(self, originator_id: UUID, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if originator_id not in Counter.ids:
            return iter(())
        return super().get(originator_id, *args, **kwargs)


class IncidentLedger(Application[UUID]):
    """Every SOP action is a command; every accepted command becomes immutable events."""

    env: ClassVar[dict[str, str]] = {
        "PERSISTENCE_MODULE": get_topic(MemoryFactory),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(JSONTranscoder),
        "AGGREGATE_CACHE_MAXSIZE": "5000",
        # Decisions trust the cache (no read per record per command): every state a rule relies
        # on is guarded or saved, so a stale copy fails the append, is refreshed and decided
        # again. Reads for people (`get_or_none`, `find`, `authenticate`) fetch what is newer.
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "IS_SNAPSHOTTING_ENABLED": "y",
    }
    snapshotting_intervals = {Counter: SNAPSHOT_INTERVAL}
    """Records whose streams grow without end (an event per number issued): a snapshot every
    SNAPSHOT_INTERVAL events, so loading one reads at most that many events after it."""

    def __init__(
        self, env: dict[str, str] | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(env)
        self.clock = clock or (lambda: datetime.now(UTC))
        # Commands that issue a human number take turns in this process (from loading the
        # counter to the commit), so they do not all collide on the counter and retry.
        self._numbering = threading.Lock()

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only what the caller passes: the domain never reads the process environment."""
        return Environment(name, {**type(self).env, **(env or {})})

    # --- the one entry point ----------------------------------------------------------------

    def handle(
        self,
        command: Command,
        actor: UUID | None,
        *,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        api_key: UUID | None = None,
    ) -> Outcome:
        """Check the actor, run the command's handler and save all its events in one append.
        With `api_key` (the key the actor authenticated with), the key is checked again in the
        decision and guarded: a key revoked before the append commits refuses the command.

        Records another command changed meanwhile make the append fail; the command is then
        decided again on fresh state, unless a record the client named moved (409). If the
        append's commit landed but its acknowledgment was lost, the retry finds the command's
        own record and answers the first outcome instead of deciding twice."""
        handler = HANDLERS[type(command)]
        if idempotency_key is None:
            return self._decide(handler, command, actor, None, None, api_key)
        try:
            first = idempotency.replay(self.recorder, idempotency_key, request_hash)
        except LedgerError:  # the key's first answer was a refusal
            self._check_caller(actor, api_key)
            raise
        if first is not None:
            self._check_caller(actor, api_key)
            return first
        try:
            return self._decide(handler, command, actor, idempotency_key, request_hash, api_key)
        except LedgerError as refusal:
            if refusal.details.get("replayed") or isinstance(refusal, RecordedRefusal):
                raise  # already the key's answer (a recorded refusal is saved with its events)
            if isinstance(refusal, Unauthenticated) or refusal.code == "actor.inactive":
                raise  # about the caller, not the request: a retry with a valid key may pass
            idempotency.remember_refusal(self.recorder, idempotency_key, request_hash, refusal)
            # A concurrent request with the same key may have answered first: that answer wins.
            first = idempotency.replay(self.recorder, idempotency_key, request_hash)
            if first is not None:
                return first
            raise

    def _decide(
        self,
        handler: Handler,
        command: Command,
        actor: UUID | None,
        idempotency_key: str | None,
        request_hash: str | None,
        api_key: UUID | None = None,
    ) -> Outcome:
        command_id = uuid4()
        deadline = time.monotonic() + RETRY_SECONDS
        for attempt in itertools.count():
            if attempt:  # let the commands that won the race finish before deciding again:
                # jittered and doubling, so that processes racing for one record (a counter
                # in an alert storm, several workers) spread out instead of colliding again
                time.sleep(
                    random.uniform(0, min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** min(attempt, 10)))
                )
            last = attempt >= MAX_ATTEMPTS - 1 and time.monotonic() >= deadline
            # A refusal is given only on current records: decisions read this process's copies,
            # and a copy behind the store (changed by another worker) is refreshed, then the
            # command is decided again. (Commits need no such check: the append guards them.)
            try:
                ctx = self._context(command, actor, command_id, idempotency_key, api_key)
            except LedgerError:
                if last or not self._refreshed([actor, api_key]):
                    raise
                continue
            try:
                done = self._attempt(handler, command, ctx, idempotency_key, request_hash)
            except LedgerError as refusal:
                if (
                    last
                    or isinstance(refusal, RecordedRefusal)
                    or not self._refreshed([actor, api_key, *ctx.loaded])
                ):
                    raise
                continue
            finally:
                ctx.release()
            if done is not None:
                return done
            if last:
                break
        raise ConcurrencyConflict(
            "concurrency.busy", "Too many concurrent changes; try again.", current_version=None
        )

    def _attempt(
        self,
        handler: Handler,
        command: Command,
        ctx: Context,
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> Outcome | None:
        """Decide and save once; None when another command's append got in first. A decision
        may record its events and still be refused (`Outcome.refused`): raised after the save."""
        outcome, aggregates = handler(command, ctx)
        saved = {aggregate.id for aggregate in aggregates}
        refusal = outcome.refused.error() if outcome.refused is not None else None
        answer = (
            outcome.model_dump_json() if refusal is None else idempotency.refusal_answer(refusal)
        )
        kwargs: dict[str, Any] = {
            "command": (ctx.meta.command_id, answer),
            "guards": {i: v for i, v in ctx.guarded.items() if i not in saved},
        }
        if idempotency_key is not None:
            kwargs["idempotency"] = (idempotency_key, request_hash, answer)
        try:
            recordings = self.save(*aggregates, **kwargs)
        except RecordConflictError:
            first = self._committed(ctx.meta.command_id)
            if first is not None:
                return first
            if idempotency_key is not None:
                replayed = idempotency.replay(self.recorder, idempotency_key, request_hash)
                if replayed is not None:
                    return replayed
            for aggregate_id in {*ctx.guarded, *ctx.addressed, *(a.id for a in aggregates)}:
                self.get_or_none(aggregate_id)  # refreshes a stale cached copy
            self._raise_if_addressed_moved(ctx)
            return None  # a guarded or bookkeeping record moved: decide again
        position = recordings[-1].notification.id if recordings else None
        if refusal is not None:
            refusal.details["position"] = position  # where its recorded events are
            raise refusal
        return outcome.model_copy(update={"position": position})

    def construct_snapshot_store(self) -> EventStore[UUID]:
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return CounterSnapshots(mapper=self.mapper, recorder=recorder)

    def take_snapshot(self, aggregate_id: UUID, *args: Any, **kwargs: Any) -> None:
        """After an append, as the library's save does: a snapshot is a shortcut for later loads,
        so once the events committed, failing to take one (a lost connection) only costs that
        shortcut: logged, never the command's answer."""
        try:
            super().take_snapshot(aggregate_id, *args, **kwargs)
        except Exception as exc:  # the events are committed: the command succeeded
            log.warning("snapshot of %s not taken: %s", aggregate_id, exc)

    def _context(
        self,
        command: Command,
        actor_id: UUID | None,
        command_id: UUID,
        key: str | None,
        api_key: UUID | None = None,
    ) -> Context:
        now = self.clock()
        occurred_at = command.occurred_at or now
        actor: User | None = None
        if actor_id is None and not command.system:
            raise Forbidden("actor.missing", "Only the ledger itself may act without a user.")
        loaded: set[UUID] = set()

        def load(aggregate_id: UUID) -> Aggregate | None:
            loaded.add(aggregate_id)
            return self.cached_or_none(aggregate_id)

        ctx = Context(
            load,
            Meta(
                actor=actor_id,
                occurred_at=occurred_at,
                command_id=command_id,
                command=type(command).__name__,
                idempotency_key=key,
            ),
            actor,
            now,
            numbering=self._numbering,
            loaded=loaded,
        )
        if actor_id is not None:
            actor = ctx.find(User, actor_id, "actor", guard=True)
            if not actor.is_active:
                raise Forbidden("actor.inactive", "Your user account is inactive.")
            if api_key is not None:  # checked again here, and guarded until the commit
                key_record = ctx.load(api_key)
                _still_valid(key_record, actor)
                assert key_record is not None
                ctx.guard(key_record)
            if actor.role not in command.roles:
                raise Forbidden(
                    "role.forbidden",
                    f"Your role ({actor.role.value}) may not {type(command).__name__}.",
                )
            ctx.actor = actor
        ctx.not_in_future(occurred_at, "occurred_at")
        return ctx

    def _refreshed(self, ids: list[UUID | None]) -> bool:
        """Whether any of these records' copies in this process was behind the store; each such
        copy is brought up to date. One read per record: only refusals ask."""
        moved = False
        for aggregate_id in {i for i in ids if i is not None}:
            cached = self.cached_or_none(aggregate_id)
            if cached is not None:  # (a record read from the store just now is current)
                current = self.get_or_none(aggregate_id)
                moved |= current is not None and current.version != cached.version
        return moved

    def _check_caller(self, actor_id: UUID | None, api_key: UUID | None) -> None:
        """Before a stored answer is given again to a request sent with `api_key`: the key is
        still valid and its user active, on the current records."""
        if actor_id is None or api_key is None:
            return
        user = self.get_or_none(actor_id)
        if not isinstance(user, User):
            raise Unauthenticated("auth.invalid_key", "The API key is not valid.")
        if not user.is_active:
            raise Forbidden("actor.inactive", "Your user account is inactive.")
        _still_valid(self.get_or_none(api_key), user)

    def _committed(self, command_id: UUID) -> Outcome | None:
        """The outcome of a command whose append already committed (a lost acknowledgment)."""
        if not isinstance(self.recorder, CommandRecorder):
            return None
        found = self.recorder.find_command(command_id)
        if found is None:
            return None
        answer, position = found
        return idempotency.restore(answer, position)

    def _raise_if_addressed_moved(self, ctx: Context) -> None:
        """A record the client named changed while this command was decided: the client's 409.
        (A change recorded before the command began only means this process's copy was stale:
        the command is then simply decided again on the current state.)"""
        for aggregate_id, version in ctx.addressed.items():
            current: Aggregate = self.repository.get(aggregate_id, deepcopy_from_cache=False)
            if current.version == version:
                continue
            newer = self.events.get(aggregate_id, gt=version)
            if all(cast(DomainEvent, event).timestamp < ctx.started for event in newer):
                continue
            raise ConcurrencyConflict(
                "concurrency.conflict",
                f"The record changed while this command ran (now version {current.version}); "
                "reload it and try again.",
                current_version=current.version,
            )

    # --- reading ------------------------------------------------------------------------------

    def get_or_none(self, aggregate_id: UUID) -> Aggregate | None:
        """The record as stored now (the cached copy brought up to date), or None."""
        cached = self.cached_or_none(aggregate_id)
        if cached is None or self.repository.cache is None:
            return cached
        newer = list(self.events.get(aggregate_id, gt=cached.version))
        if not newer:
            return cached
        current = cast(Aggregate, project_aggregate(cached, newer))
        self.repository.cache.put(aggregate_id, deepcopy(current))
        return current

    def cached_or_none(self, aggregate_id: UUID) -> Aggregate | None:
        """The record as this process last saw it (read from the store on a cache miss)."""
        try:
            return cast(Aggregate, self.repository.get(aggregate_id))
        except AggregateNotFoundError:
            return None

    def find(self, cls: type[A], ref: UUID | str, what: str) -> A:
        """Load a record by UUID or number; 404 with `<what>.not_found` if absent."""
        found = self.get_or_none(resolve(ref, what))
        if not isinstance(found, cls):
            raise NotFound(f"{what}.not_found", f"No {what.replace('_', ' ')} {ref}.")
        return found

    def authenticate(self, key: str, *, cached: bool = False) -> User:
        """The active user an API key belongs to; 401 if the key is unknown. `cached`: as this
        process last saw the key and its user (for a command, whose append guards both); a
        refusal is checked again on the current records before it is given."""
        if cached:
            with suppress(Unauthenticated, Forbidden, NotFound):
                return self._authenticate(key, self.cached_or_none)
        return self._authenticate(key, self.get_or_none)

    @staticmethod
    def _authenticate(key: str, load: Callable[[UUID], Aggregate | None]) -> User:
        api_key = load(ApiKey.create_id(key_hash=hash_key(key)))
        if not isinstance(api_key, ApiKey) or api_key.revoked:
            raise Unauthenticated("auth.invalid_key", "The API key is not valid.")
        user = load(api_key.user_id)
        if not isinstance(user, User):
            raise NotFound("user.not_found", f"No user {api_key.user_id}.")
        if not user.is_active:
            raise Forbidden("actor.inactive", "Your user account is inactive.")
        _still_valid(api_key, user)
        return user


def _still_valid(api_key: Aggregate | None, user: User) -> None:
    """The key is the user's, not revoked, and issued in the user's current key generation
    (a key issued before a deactivation stays invalid after the reactivation)."""
    if (
        not isinstance(api_key, ApiKey)
        or api_key.revoked
        or api_key.user_id != user.id
        or api_key.generation != user.key_generation
    ):
        raise Unauthenticated("auth.invalid_key", "The API key is not valid.")
