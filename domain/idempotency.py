"""Idempotency keys (SPEC 5; the semantics of Stripe's keys and the IETF draft): a retried
request with the same key and body gets the first answer, accepted or refused, and appends
nothing; the same key with another body is refused. Keys are kept for IDEMPOTENCY_TTL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from domain import errors
from domain.context import Outcome
from domain.errors import ConcurrencyConflict, InvalidInput, LedgerError

IDEMPOTENCY_TTL = timedelta(hours=24)
"""How long a key is remembered; after that the same key starts a new request."""


@runtime_checkable
class CommandRecorder(Protocol):
    """A recorder that keeps, in the same transaction as the events, each command's outcome (by
    command id) and each idempotency key's request hash and answer."""

    def find_command(self, command_id: UUID) -> tuple[str, int | None] | None: ...

    def find_idempotency(self, key: str) -> tuple[str | None, str, int | None] | None:
        """(request hash, answer, position) of a key used within the TTL, else None."""

    def record_refusal(self, key: str, request_hash: str | None, answer: str) -> None:
        """Remember a refused request's answer under its key (no events)."""


def replay(recorder: object, key: str, request_hash: str | None) -> Outcome | None:
    """The first answer given under `key`: its outcome, or its refusal raised again."""
    if not isinstance(recorder, CommandRecorder):
        return None
    found = recorder.find_idempotency(key)
    if found is None:
        return None
    stored_hash, answer, position = found
    if stored_hash != request_hash:
        raise InvalidInput(
            "idempotency.key_reused",
            "This Idempotency-Key was already used with a different request; use a new key.",
        )
    return restore(answer, position, replayed=True)


def restore(answer: str, position: int | None, *, replayed: bool = False) -> Outcome:
    """A stored answer given again: its outcome, or its refusal raised again."""
    data = json.loads(answer)
    if "refusal" in data:
        refusal = data["refusal"]
        error_type = getattr(errors, refusal["type"], LedgerError)
        flags = {"replayed": True} if replayed else {}
        raise error_type(refusal["code"], refusal["message"], **refusal["details"], **flags)
    return Outcome.model_validate(data).model_copy(
        update={"position": position, "replayed": replayed}
    )


def refusal_answer(refusal: LedgerError) -> str:
    """A refusal as a stored answer (under its idempotency key or its command id)."""
    answer: dict[str, Any] = {
        "refusal": {
            "type": type(refusal).__name__,
            "code": refusal.code,
            "message": refusal.message,
            "details": refusal.details,
        }
    }
    return json.dumps(answer, default=str)


def remember_refusal(
    recorder: object, key: str, request_hash: str | None, refusal: LedgerError
) -> None:
    """Keep a refusal under its key, so a retry answers it again even if the state changed.
    Concurrency refusals are not kept: a retry is what they ask for."""
    if isinstance(refusal, ConcurrencyConflict) or not isinstance(recorder, CommandRecorder):
        return
    recorder.record_refusal(key, request_hash, refusal_answer(refusal))
