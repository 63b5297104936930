"""Gapless human numbers (INC0000001, BRG..., RPT...): a counter per kind, saved in the same append
as the record it numbers, so a number is never skipped or reused."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Meta, RecordSnapshot, stable_id


class Counter(Aggregate):
    """Issues the human numbers of one kind of record. Its stream grows by an event per number
    issued, so it is snapshotted (IncidentLedger.snapshotting_intervals)."""

    class Snapshot(RecordSnapshot):
        prefix: str
        last: int

    ids: ClassVar[set[UUID]] = set()
    """Every counter id this process has named: the only records with snapshots, so the ledger
    looks for a snapshot of these alone (IncidentLedger.construct_snapshot_store)."""

    @staticmethod
    def create_id(prefix: str, **_: Any) -> UUID:
        counter_id = stable_id("counter", prefix)
        Counter.ids.add(counter_id)
        return counter_id

    class Started(Aggregate.Created):
        prefix: str

    @event(Started)
    def __init__(self, meta: Meta, prefix: str) -> None:
        self.prefix = prefix
        self.last = 0

    def next_number(self, meta: Meta) -> str:
        self._issued(meta, self.last + 1)
        return f"{self.prefix}{self.last:07d}"

    class NumberIssued(Aggregate.Event):
        value: int

    @event(NumberIssued)
    def _issued(self, meta: Meta, value: int) -> None:
        self.last = value
