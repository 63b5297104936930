"""Replay from events, never from a view: a record as of a version or a moment (recorded or
occurred time), and a step through its events with the state each left."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field

from api.deps import ServiceDep
from domain.base import Aggregate, DomainEvent
from domain.errors import InvalidInput, NotFound
from projections.folds import changes_of

A = TypeVar("A", bound=Aggregate)


AsOfVersion = Annotated[
    int | None, Query(ge=1, description="The record as it was at this version.")
]
AsOf = Annotated[
    datetime | None,
    Query(
        description="The record as it was at this moment (ISO 8601), rebuilt from its events: "
        "by default from the events recorded by then; with `as_of_basis=occurred`, from its "
        "events (in order) up to the first that occurred after it."
    ),
]
AsOfBasis = Annotated[
    Literal["recorded", "occurred"],
    Query(
        description="recorded: when the ledger stored each event (what the ledger showed at "
        "that moment); occurred: when each step happened in the world (backdated steps count "
        "from when they happened)."
    ),
]


def as_of_state(
    service: ServiceDep,
    found: A,
    what: str,
    version: int | None,
    moment: datetime | None,
    basis: str,
) -> A:
    """The record at a version, or as of a moment, rebuilt from its own events (never a view)."""
    if version is not None and moment is not None:
        raise InvalidInput("query.invalid", "Give as_of_version or as_of, not both.")
    if moment is not None:
        if moment.tzinfo is None:
            raise InvalidInput("query.invalid", "as_of must carry its time zone (e.g. Z).")
        version = 0
        for event in cast(Iterable[DomainEvent], service.ledger.events.get(found.id)):
            when = event.timestamp if basis == "recorded" else event.meta.occurred_at
            if when > moment:
                break
            version = event.originator_version
        if version == 0:
            raise NotFound(
                f"{what}.not_found_as_of",
                f"The record did not exist yet at {moment.isoformat()} ({basis} time).",
            )
    if version is None or version == found.version:
        return found
    if version > found.version:
        raise NotFound(
            f"{what}.version_not_found",
            f"The record is at version {found.version}; there is no version {version} yet.",
            current_version=found.version,
        )
    return cast(A, service.ledger.repository.get(found.id, version=version))


class RecordStep(BaseModel):
    """One event of a record, and the record's state after it."""

    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: UUID | None
    command: str
    command_id: UUID
    changes: dict[str, Any] = Field(description="What it changed: field → [before, after].")
    state: dict[str, Any] = Field(description="The record after this event.")


def step_through(service: ServiceDep, record_id: UUID) -> list[dict[str, Any]]:
    """Every event of one record, in order, each with the state it left (from the events)."""
    aggregate: Any = None
    steps = []
    for event in cast(Iterable[DomainEvent], service.ledger.events.get(record_id)):
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
        steps.append(
            {
                "version": event.originator_version,
                "type": type(event).__qualname__,
                "occurred_at": event.meta.occurred_at,
                "recorded_at": event.timestamp,
                "actor": event.meta.actor,
                "command": event.meta.command,
                "command_id": event.meta.command_id,
                "changes": changes_of(event),
                "state": aggregate.state(),
            }
        )
    return steps
