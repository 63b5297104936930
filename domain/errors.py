"""Refusals: a few error types, each with a stable dotted code and a message a person can act on.
No HTTP numbers here: `api/errors.py` maps each type to a status, once."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class LedgerError(Exception):
    """A refusal with a stable dotted code and a message a person can act on."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class NotFound(LedgerError):
    """The record named does not exist (or is out of the caller's sight)."""


class Forbidden(LedgerError):
    """The acting user may not do this (role, inactive account, not their incident)."""


class Unauthenticated(LedgerError):
    """No key, or a key that is not valid."""


class RuleViolation(LedgerError):
    """A well-formed command that a rule of the SOP or of the ledger refuses."""


class RecordedRefusal(RuleViolation):
    """A refusal answered after the command's events were recorded (SOP 5: closing a closed
    bridge records a work note and answers 409). Its events are in the ledger; a retry with the
    same idempotency key answers the same refusal and records nothing more."""


class ConcurrencyConflict(LedgerError):
    """The record changed under the command; carries `current_version` where known."""


class InvalidInput(LedgerError):
    """Well-formed input that only the ledger can judge unusable (e.g. a reused idempotency key)."""


def require(condition: bool, code: str, message: str, **details: Any) -> None:
    """Raise a RuleViolation unless the condition holds."""
    if not condition:
        raise RuleViolation(code, message, **details)


def require_transition(
    code: str, name: str, current: StrEnum, target: StrEnum, transitions: Mapping[Any, Any]
) -> None:
    """`target` is a status the record may move to from `current` (its TRANSITIONS table), or
    409 `code` naming the statuses it may go to."""
    allowed = sorted(s.value for s in transitions[current])
    if target not in transitions[current]:
        raise RuleViolation(
            code,
            f"{name} cannot go from {current.value} to {target.value}; allowed: "
            f"{', '.join(allowed) or 'none (final)'}.",
            current_status=current.value,
            allowed=allowed,
        )
