"""Post-incident reviews (SOP 17 C, D): commands, the status machine, the PostIncidentReview
aggregate and its events. PIRs have no number: they are named by their id."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime

from domain.base import Aggregate, Changes, Command, Meta, Moment, RecordCommand
from domain.errors import require
from domain.incident import MANAGERS
from domain.text import Ref, Text


class PirStatus(StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


P = PirStatus
TRANSITIONS: dict[PirStatus, frozenset[PirStatus]] = {
    P.SCHEDULED: frozenset({P.COMPLETED, P.CANCELLED}),
    P.COMPLETED: frozenset(),
    P.CANCELLED: frozenset(),
}


class SchedulePostIncidentReview(Command):
    """SOP 17 C: schedule the review of a closed incident with an active facilitator."""

    roles = MANAGERS
    incident: Ref
    scheduled_date: Moment
    facilitator: UUID
    review_notes: Text | None = None
    lessons_learned: Text | None = None
    action_items: Text | None = None


class UpdatePostIncidentReview(RecordCommand):
    """SOP 17 D: record the review's notes, lessons and actions; complete or cancel it."""

    roles = MANAGERS
    pir: UUID
    status: PirStatus | None = None
    scheduled_date: Moment | None = None
    facilitator: UUID | None = None
    review_notes: Text | None = None
    lessons_learned: Text | None = None
    action_items: Text | None = None


class PostIncidentReview(Aggregate):
    class Scheduled(Aggregate.Created):
        incident_id: UUID
        scheduled_date: AwareDatetime
        facilitator: UUID
        review_notes: str | None
        lessons_learned: str | None
        action_items: str | None

    @event(Scheduled)
    def __init__(
        self,
        meta: Meta,
        incident_id: UUID,
        scheduled_date: datetime,
        facilitator: UUID,
        review_notes: str | None,
        lessons_learned: str | None,
        action_items: str | None,
    ) -> None:
        self.incident_id = incident_id
        self.scheduled_date = scheduled_date
        self.facilitator = facilitator
        self.review_notes = review_notes
        self.lessons_learned = lessons_learned
        self.action_items = action_items
        self.status = PirStatus.SCHEDULED

    def update(self, meta: Meta, changes: Changes, status: PirStatus | None) -> None:
        moves = status is not None and status != self.status
        require(
            bool(changes) or moves,
            "pir.no_change",
            "The update changes nothing: every given value equals the current one.",
        )
        # A review with no way out (completed, cancelled) is final; from scheduled, every
        # other status is allowed: so this one rule is the whole machine.
        require(
            bool(TRANSITIONS[self.status]),
            "pir.finished",
            f"The review is {self.status.value}; a completed or cancelled review does not "
            "change (complete it together with its notes).",
            current_status=self.status.value,
        )
        if changes:
            self._updated(meta, changes)
        if status is not None and moves:
            self._status_changed(meta, status, self.status)

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, PostIncidentReview.Scheduled)

    class StatusChanged(Aggregate.Event):
        status: PirStatus
        previous: PirStatus

    @event(StatusChanged)
    def _status_changed(self, meta: Meta, status: PirStatus, previous: PirStatus) -> None:
        self.status = status
