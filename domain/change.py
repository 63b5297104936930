"""Change requests (SOP 12): commands, the status machine and the Change aggregate. An emergency
change reaches `approved` (and so `scheduled` and `implemented`) only through a granted approval,
which the approval's decision records on the change in the same append."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime, model_validator

from domain.base import Aggregate, Command, Meta, Moment, Numbered, RecordCommand
from domain.errors import RuleViolation, require, require_transition
from domain.incident import MANAGERS, Level
from domain.text import Ref, Text, Title

RiskLevel = Level
"""A change's risk: low, medium, high or critical (the same scale as an incident's impact)."""


class ChangeType(StrEnum):
    STANDARD = "standard"
    NORMAL = "normal"
    EMERGENCY = "emergency"


class ChangeStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"
    SCHEDULED = "scheduled"
    IMPLEMENTED = "implemented"
    CANCELLED = "cancelled"


C = ChangeStatus
TRANSITIONS: dict[ChangeStatus, frozenset[ChangeStatus]] = {
    C.REQUESTED: frozenset({C.APPROVED, C.DENIED, C.CANCELLED}),
    C.APPROVED: frozenset({C.SCHEDULED, C.CANCELLED}),
    C.SCHEDULED: frozenset({C.IMPLEMENTED, C.CANCELLED}),
    C.DENIED: frozenset(),
    C.IMPLEMENTED: frozenset(),
    C.CANCELLED: frozenset(),
}
FINAL = frozenset(s for s, moves in TRANSITIONS.items() if not moves)


# --- commands -------------------------------------------------------------------------------------


class RequestChange(Command):
    """SOP 12: request a change, optionally for an incident and/or a problem. An emergency change
    names an active executive `approver`; its approval request (SOP 20) is made in the same
    append. Any other change may name an approver too, and gets an approval request the same
    way."""

    roles = MANAGERS
    title: Title
    description: Text
    change_type: ChangeType
    risk_level: RiskLevel
    incident: Ref | None = None
    problem: Ref | None = None
    implementation_date: Moment | None = None
    approver: UUID | None = None

    @model_validator(mode="after")
    def _emergency_names_approver(self) -> Self:
        if self.change_type == ChangeType.EMERGENCY and self.approver is None:
            raise ValueError("an emergency change needs an 'approver' (an active executive)")
        return self


class UpdateChangeStatus(RecordCommand):
    """Move a change along its status machine; `implementation_date` may accompany `scheduled`
    (the planned date) or `implemented` (when it was done; defaults to the step's time)."""

    roles = MANAGERS
    change: Ref
    status: ChangeStatus
    implementation_date: Moment | None = None

    @model_validator(mode="after")
    def _date_only_when_scheduling(self) -> Self:
        if self.implementation_date is not None and self.status not in (
            ChangeStatus.SCHEDULED,
            ChangeStatus.IMPLEMENTED,
        ):
            raise ValueError("'implementation_date' goes only with 'scheduled' or 'implemented'")
        return self


# --- aggregate ------------------------------------------------------------------------------------


class Change(Numbered):
    class Requested(Aggregate.Created):
        number: str
        title: str
        description: str
        change_type: ChangeType
        risk_level: RiskLevel
        requested_by: UUID | None
        incident_id: UUID | None
        problem_id: UUID | None
        implementation_date: AwareDatetime | None

    @event(Requested)
    def __init__(
        self,
        meta: Meta,
        number: str,
        title: str,
        description: str,
        change_type: ChangeType,
        risk_level: RiskLevel,
        requested_by: UUID | None,
        incident_id: UUID | None,
        problem_id: UUID | None,
        implementation_date: datetime | None,
    ) -> None:
        self.number = number
        self.title = title
        self.description = description
        self.change_type = change_type
        self.risk_level = risk_level
        self.requested_by = requested_by
        self.incident_id = incident_id
        self.problem_id = problem_id
        self.implementation_date = implementation_date
        self.status = ChangeStatus.REQUESTED
        self.approved_by: UUID | None = None
        self.approval_id: UUID | None = None
        """The approval request whose grant approved the change (None if approved by hand)."""

    @property
    def is_emergency(self) -> bool:
        return self.change_type == ChangeType.EMERGENCY

    # rules, then the event -------------------------------------------------------------------

    def update_status(
        self, meta: Meta, status: ChangeStatus, implementation_date: datetime | None
    ) -> None:
        require_transition(
            "change.invalid_transition", f"Change {self.number}", self.status, status, TRANSITIONS
        )
        # SOP 12 step 5 / SOP 20: an emergency change is approved only by its executive's
        # granted approval (DecideApproval), never by hand; and so it is never scheduled or
        # implemented before that grant.
        approving = status == ChangeStatus.APPROVED
        proceeding = status in (ChangeStatus.SCHEDULED, ChangeStatus.IMPLEMENTED)
        if self.is_emergency and (approving or (proceeding and self.approval_id is None)):
            raise RuleViolation(
                "change.approval_required",
                f"Change {self.number} is an emergency change: only a granted approval "
                "request from an executive approves it (POST /approvals/{id}/decision).",
                current_status=self.status.value,
            )
        if status == ChangeStatus.IMPLEMENTED and implementation_date is None:
            implementation_date = meta.occurred_at
        self._status_changed(
            meta,
            status,
            self.status,
            meta.actor if approving else None,
            implementation_date,
        )

    def record_approval(self, meta: Meta, approval_id: UUID, approved_by: UUID) -> None:
        """An approval request for this change was granted: the change knows it, and a requested
        change moves to approved."""
        require(
            self.status not in FINAL,
            "approval.reference_not_eligible",
            f"Change {self.number} is {self.status.value}; an approval can no longer apply to "
            "it (deny the request instead).",
            current_status=self.status.value,
        )
        status = ChangeStatus.APPROVED if self.status == ChangeStatus.REQUESTED else self.status
        self._approval_granted(meta, approval_id, approved_by, status, self.status)

    # events ------------------------------------------------------------------------------------

    class StatusChanged(Aggregate.Event):
        status: ChangeStatus
        previous: ChangeStatus
        approved_by: UUID | None
        implementation_date: AwareDatetime | None

    @event(StatusChanged)
    def _status_changed(
        self,
        meta: Meta,
        status: ChangeStatus,
        previous: ChangeStatus,
        approved_by: UUID | None,
        implementation_date: datetime | None,
    ) -> None:
        self.status = status
        if approved_by is not None:
            self.approved_by = approved_by
        if implementation_date is not None:
            self.implementation_date = implementation_date

    class ApprovalGranted(Aggregate.Event):
        approval_id: UUID
        approved_by: UUID
        status: ChangeStatus
        previous: ChangeStatus

    @event(ApprovalGranted)
    def _approval_granted(
        self,
        meta: Meta,
        approval_id: UUID,
        approved_by: UUID,
        status: ChangeStatus,
        previous: ChangeStatus,
    ) -> None:
        self.approval_id = approval_id
        self.approved_by = approved_by
        self.status = status
