"""Rollback requests (SOP 13): undo an implemented change, for an existing incident or one opened
in the same command (SOP 2 with all its follow-ups)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import Field, model_validator

from domain.base import Aggregate, Command, Meta, Numbered, RecordCommand
from domain.errors import require, require_transition
from domain.incident import MANAGERS, OpenIncident
from domain.text import Ref, Text, Title


class RollbackStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    EXECUTED = "executed"
    FAILED = "failed"


R = RollbackStatus
TRANSITIONS: dict[RollbackStatus, frozenset[RollbackStatus]] = {
    R.REQUESTED: frozenset({R.APPROVED}),
    R.APPROVED: frozenset({R.EXECUTED, R.FAILED}),
    R.EXECUTED: frozenset(),
    R.FAILED: frozenset(),
}
FINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


# --- commands -------------------------------------------------------------------------------------


class RequestRollback(Command):
    """SOP 13: request the rollback of an implemented change, for an existing `incident` or a
    `new_incident` opened in the same append (SOP 2.1 with all its follow-ups)."""

    roles = MANAGERS
    change: Ref
    title: Title
    reason: Text
    incident: Ref | None = None
    new_incident: OpenIncident | None = Field(
        default=None,
        description="The incident the change caused, opened with the rollback (the fields of "
        "POST /incidents; its time is the rollback's `occurred_at`).",
    )

    @model_validator(mode="after")
    def _exactly_one_incident(self) -> Self:
        if (self.incident is None) == (self.new_incident is None):
            raise ValueError("give exactly one of 'incident' or 'new_incident'")
        if self.new_incident is not None and self.new_incident.occurred_at is not None:
            raise ValueError(
                "'new_incident.occurred_at' is not accepted: the rollback's 'occurred_at' "
                "dates the incident's opening too"
            )
        return self


class UpdateRollbackStatus(RecordCommand):
    """Move a rollback along requested → approved → executed | failed; executed stamps
    executed_at."""

    roles = MANAGERS
    rollback: Ref
    status: RollbackStatus


# --- aggregate ------------------------------------------------------------------------------------


class Rollback(Numbered):
    class Requested(Aggregate.Created):
        number: str
        change_id: UUID
        incident_id: UUID
        title: str
        reason: str
        requested_by: UUID | None

    @event(Requested)
    def __init__(
        self,
        meta: Meta,
        number: str,
        change_id: UUID,
        incident_id: UUID,
        title: str,
        reason: str,
        requested_by: UUID | None,
    ) -> None:
        self.number = number
        self.change_id = change_id
        self.incident_id = incident_id
        self.title = title
        self.reason = reason
        self.requested_by = requested_by
        self.status = RollbackStatus.REQUESTED
        self.approved_by: UUID | None = None
        self.approval_id: UUID | None = None
        self.executed_at: datetime | None = None

    def update_status(self, meta: Meta, status: RollbackStatus) -> None:
        require_transition(
            "rollback.invalid_transition",
            f"Rollback {self.number}",
            self.status,
            status,
            TRANSITIONS,
        )
        approved_by = meta.actor if status == RollbackStatus.APPROVED else None
        self._status_changed(meta, status, self.status, approved_by)

    def record_approval(self, meta: Meta, approval_id: UUID, approved_by: UUID) -> None:
        """An approval request for this rollback was granted: a requested rollback moves to
        approved."""
        require(
            self.status not in FINAL,
            "approval.reference_not_eligible",
            f"Rollback {self.number} is {self.status.value}; an approval can no longer apply to "
            "it (deny the request instead).",
            current_status=self.status.value,
        )
        status = RollbackStatus.APPROVED if self.status == RollbackStatus.REQUESTED else self.status
        self._approval_granted(meta, approval_id, approved_by, status, self.status)

    class StatusChanged(Aggregate.Event):
        status: RollbackStatus
        previous: RollbackStatus
        approved_by: UUID | None

    @event(StatusChanged)
    def _status_changed(
        self,
        meta: Meta,
        status: RollbackStatus,
        previous: RollbackStatus,
        approved_by: UUID | None,
    ) -> None:
        self.status = status
        if approved_by is not None:
            self.approved_by = approved_by
        if status == RollbackStatus.EXECUTED:
            self.executed_at = meta.occurred_at

    class ApprovalGranted(Aggregate.Event):
        approval_id: UUID
        approved_by: UUID
        status: RollbackStatus
        previous: RollbackStatus

    @event(ApprovalGranted)
    def _approval_granted(
        self,
        meta: Meta,
        approval_id: UUID,
        approved_by: UUID,
        status: RollbackStatus,
        previous: RollbackStatus,
    ) -> None:
        self.approval_id = approval_id
        self.approved_by = approved_by
        self.status = status
