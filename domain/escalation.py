"""Escalations (SOP 3, 16): commands, the status machine and the Escalation aggregate."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Meta, RecordCommand
from domain.errors import require_transition
from domain.incident import MANAGERS, IncidentCommand
from domain.text import Text


class EscalationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"


E = EscalationStatus
TRANSITIONS: dict[EscalationStatus, frozenset[EscalationStatus]] = {
    E.PENDING: frozenset({E.APPROVED, E.DENIED, E.CANCELLED}),
    E.APPROVED: frozenset({E.CANCELLED}),
    E.DENIED: frozenset(),
    E.CANCELLED: frozenset(),
}


class Escalate(IncidentCommand):
    """SOP 3: escalate an open or in-progress incident to an active user."""

    roles = MANAGERS
    escalated_to: UUID
    reason: Text


class UpdateEscalationStatus(RecordCommand):
    """SOP 16: approve, deny or cancel an escalation; a work note records it on the incident."""

    roles = MANAGERS
    escalation: UUID
    status: EscalationStatus


class Escalation(Aggregate):
    class Created(Aggregate.Created):
        incident_id: UUID
        escalated_from: UUID | None
        escalated_to: UUID
        reason: str

    @event(Created)
    def __init__(
        self,
        meta: Meta,
        incident_id: UUID,
        escalated_from: UUID | None,
        escalated_to: UUID,
        reason: str,
    ) -> None:
        self.incident_id = incident_id
        self.escalated_from = escalated_from
        self.escalated_to = escalated_to
        self.reason = reason
        self.status = EscalationStatus.PENDING

    def update_status(self, meta: Meta, status: EscalationStatus) -> None:
        require_transition(
            "escalation.invalid_transition", "The escalation", self.status, status, TRANSITIONS
        )
        self._status_updated(meta, status, self.status)

    class StatusUpdated(Aggregate.Event):
        status: EscalationStatus
        previous: EscalationStatus

    @event(StatusUpdated)
    def _status_updated(
        self, meta: Meta, status: EscalationStatus, previous: EscalationStatus
    ) -> None:
        self.status = status
