"""Building imported records: each record is constructed with its created event (keeping its
legacy id), then its later steps are applied in time order through the aggregate's own event
methods (no command rules: legacy data is recorded as found). Steps that follow one another in
a status machine keep their order even when the legacy times do not."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

from pydantic import ValidationError

from domain.base import Aggregate, DomainEvent, Meta
from domain.legacy.rows import NUMBERED, LegacyDataError, Row, malformed, meta

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Step:
    at: datetime
    """Sort time (the legacy time; for a status-machine step, never before the previous step)."""
    seq: int
    row: Row
    apply: Callable[[], None]


class Builder:
    """The records of one import, in the order they are created."""

    def __init__(self) -> None:
        self.records: dict[UUID, Aggregate] = {}
        self.sources: dict[UUID, str] = {}
        self.created_at: dict[UUID, datetime] = {}
        self.steps: dict[UUID, list[Step]] = {}
        self._chain: dict[UUID, datetime] = {}
        self._seq = itertools.count()
        self.administrators: list[tuple[UUID, Row]] = []
        """Active system administrators imported: they join the administrator roster."""
        self.numbers: dict[str, tuple[int, Row]] = {}
        """Per number prefix, the highest number imported and its row (the counters move)."""
        self.findings: dict[str, list[str]] = {}
        """Rule breaks met while building (kind → sources), beside those of legacy/findings."""

    def found(self, kind: str, row: Row) -> None:
        self.findings.setdefault(kind, []).append(row.source)

    def create(
        self,
        cls: type[A],
        created: type[Any],
        row: Row,
        at: datetime,
        actor: UUID | None,
        *,
        record_id: UUID | None = None,
        **fields: Any,
    ) -> A:
        """A new record with the given id (default: the row's), by its created event."""
        new_id = record_id or row.id
        if new_id in self.records:
            raise row.error(None, f"makes record {new_id} a second time")
        try:
            record = cls._create(created, id=new_id, meta=meta(row.source, at, actor), **fields)
        except ValidationError as exc:
            raise invalid(row, exc) from None
        self.records[new_id] = record
        self.sources[new_id] = row.source
        self.created_at[new_id] = at
        if row.table in NUMBERED and record_id is None:
            number = row.number()
            prefix, value = number[:3], int(number[3:])
            if value > self.numbers.get(prefix, (0, row))[0]:
                self.numbers[prefix] = (value, row)
        return record

    def get(self, cls: type[A], record_id: UUID) -> A:
        found = self.records[record_id]
        assert isinstance(found, cls)
        return found

    def step(
        self,
        record: Aggregate,
        row: Row,
        at: datetime,
        actor: UUID | None,
        change: Callable[..., Any],
        *args: Any,
        chain: bool = False,
    ) -> None:
        """Call `change(meta, *args)` (an event method of the record) once the record's steps
        are sorted by time. A `chain` step (a status-machine move) stays after the record's
        previous chain step, whatever the legacy times say."""
        sort_at = at
        if chain:
            sort_at = max(at, self._chain.get(record.id, at))
            self._chain[record.id] = sort_at
        event_meta = meta(row.source, at, actor)
        self.steps.setdefault(record.id, []).append(
            Step(sort_at, next(self._seq), row, lambda: change(event_meta, *args))
        )

    def audit(
        self, record: Aggregate, row: Row, at: datetime, actor: UUID | None, **fields: Any
    ) -> None:
        """A legacy audit-trail entry on the record (history only: its state is unchanged)."""
        event_class = type(record).AuditTrailRecorded

        def trigger(event_meta: Meta) -> None:
            record.trigger_event(event_class, meta=event_meta, **fields)

        self.step(record, row, at, actor, trigger)

    def events(self) -> list[DomainEvent]:
        """Every record's events: first each record's created event, in creation order (so a
        record is created before anything that refers to it, and every user before any step a
        user took), then each record's steps in time order."""
        created: list[DomainEvent] = []
        later: list[DomainEvent] = []
        for record_id, record in self.records.items():
            for step in sorted(self.steps.get(record_id, []), key=lambda s: (s.at, s.seq)):
                try:
                    step.apply()
                except ValidationError as exc:
                    raise invalid(step.row, exc) from None
            events = cast(list[DomainEvent], record.collect_events())
            created.append(events[0])
            later.extend(events[1:])
        return created + later


def invalid(row: Row, exc: ValidationError) -> LegacyDataError:
    """A value the record's event does not accept, named by the row and the field."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return row.error(field, f"{first['msg']} (got {first.get('input')!r})")


def undated(row: Row, *fields: str) -> datetime:
    """When a step the row implies but does not date happened: the first of `fields` the row
    has (its last update, else its creation)."""
    for field in fields:
        if row.data.get(field) is not None:
            return row.time(field)
    raise malformed(f"{row.table}.json", row.key, f"has none of {', '.join(fields)}")
