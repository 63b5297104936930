"""Approval requests (SOP 19, 20): commands, the Approval aggregate, and the slot index that keeps
one pending request per action, record and approver under concurrency."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime, model_validator

from domain.base import Aggregate, Command, Meta, RecordCommand, Role, stable_id
from domain.errors import Forbidden, RuleViolation, require
from domain.incident import MANAGERS
from domain.text import Ref, Text


class ReferenceType(StrEnum):
    ESCALATION = "escalation"
    BRIDGE = "bridge"
    CHANGE = "change"
    ROLLBACK = "rollback"
    RCA = "rca"
    INCIDENT_CLOSURE = "incident_closure"


class RequestedAction(StrEnum):
    CREATE_ESCALATION = "create_escalation"
    INITIATE_BRIDGE = "initiate_bridge"
    CREATE_CHANGE_REQUEST = "create_change_request"
    CREATE_ROLLBACK_REQUEST = "create_rollback_request"
    CONDUCT_RCA = "conduct_rca"
    CLOSE_INCIDENT = "close_incident"


ACTION: dict[ReferenceType, RequestedAction] = {
    ReferenceType.ESCALATION: RequestedAction.CREATE_ESCALATION,
    ReferenceType.BRIDGE: RequestedAction.INITIATE_BRIDGE,
    ReferenceType.CHANGE: RequestedAction.CREATE_CHANGE_REQUEST,
    ReferenceType.ROLLBACK: RequestedAction.CREATE_ROLLBACK_REQUEST,
    ReferenceType.RCA: RequestedAction.CONDUCT_RCA,
    ReferenceType.INCIDENT_CLOSURE: RequestedAction.CLOSE_INCIDENT,
}
"""The one action each kind of record can be asked to approve (SPEC 4.6)."""

ELIGIBLE: dict[ReferenceType, frozenset[str]] = {
    ReferenceType.ESCALATION: frozenset({"pending"}),
    ReferenceType.BRIDGE: frozenset({"active"}),
    ReferenceType.CHANGE: frozenset({"requested", "scheduled"}),
    ReferenceType.ROLLBACK: frozenset({"requested"}),
    ReferenceType.RCA: frozenset({"in_progress", "completed"}),
    ReferenceType.INCIDENT_CLOSURE: frozenset({"resolved"}),
}
"""The statuses a record must have for an approval to be requested about it (SOP 20 step 4)."""

APPROVERS = frozenset(
    {
        Role.INCIDENT_MANAGER,
        Role.TECHNICAL_SUPPORT,
        Role.ACCOUNT_MANAGER,
        Role.EXECUTIVE,
        Role.SYSTEM_ADMINISTRATOR,
    }
)
"""Who may be named approver and decide: every role that may write (auditors, analysts and
client contacts only read)."""
EXECUTIVES = frozenset({Role.EXECUTIVE})
"""Who approves an emergency change (SPEC 3, SOP 12 step 5)."""


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


# --- commands -------------------------------------------------------------------------------------


class RequestApproval(Command):
    """SOP 20: ask a named, active approver to approve an action on a record that is in a state
    that allows it (escalation pending, bridge active, change requested or scheduled, rollback
    requested, RCA in progress or completed, incident resolved for its closure)."""

    roles = MANAGERS
    reference_type: ReferenceType
    reference: Ref
    requested_action: RequestedAction
    approver: UUID

    @model_validator(mode="after")
    def _action_matches_reference(self) -> Self:
        expected = ACTION[self.reference_type]
        if self.requested_action != expected:
            raise ValueError(
                f"requested_action for a {self.reference_type.value} must be {expected.value}"
            )
        return self


class DecideApproval(RecordCommand):
    """SOP 19: the named approver approves or denies a pending request, with an optional
    comment. Granting records the approval on the referenced change, rollback or incident."""

    roles = APPROVERS
    approval: UUID
    decision: ApprovalDecision
    comment: Text | None = None


# --- aggregates -----------------------------------------------------------------------------------


class Approval(Aggregate):
    class Requested(Aggregate.Created):
        reference_type: ReferenceType
        reference_id: UUID
        requested_action: RequestedAction
        requested_by: UUID | None
        approver: UUID
        requested_at: AwareDatetime
        incident_id: UUID | None
        problem_id: UUID | None

    @event(Requested)
    def __init__(
        self,
        meta: Meta,
        reference_type: ReferenceType,
        reference_id: UUID,
        requested_action: RequestedAction,
        requested_by: UUID | None,
        approver: UUID,
        requested_at: datetime,
        incident_id: UUID | None,
        problem_id: UUID | None,
    ) -> None:
        self.reference_type = reference_type
        self.reference_id = reference_id
        self.requested_action = requested_action
        self.requested_by = requested_by
        self.approver = approver
        self.requested_at = requested_at
        self.incident_id = incident_id
        self.problem_id = problem_id
        self.status = ApprovalStatus.PENDING
        self.responded_at: datetime | None = None
        self.comment: str | None = None

    def decide(self, meta: Meta, decision: ApprovalDecision, comment: str | None) -> None:
        if meta.actor != self.approver:
            raise Forbidden(
                "approval.not_approver",
                "Only the approver named in the request may decide it.",
            )
        require(
            self.status == ApprovalStatus.PENDING,
            "approval.not_pending",
            f"The approval request was already {self.status.value}.",
            current_status=self.status.value,
        )
        require_not_own_request(self.requested_by, self.approver)
        self._decided(meta, ApprovalStatus(decision.value), comment)

    class Decided(Aggregate.Event):
        status: ApprovalStatus
        comment: str | None

    @event(Decided)
    def _decided(self, meta: Meta, status: ApprovalStatus, comment: str | None) -> None:
        self.status = status
        self.comment = comment
        self.responded_at = meta.occurred_at


def require_not_own_request(requested_by: UUID | None, approver: UUID) -> None:
    """Beyond the SOP: nobody approves a request they made (nor names themselves approver)."""
    if requested_by == approver:
        raise RuleViolation(
            "approval.own_request",
            "Nobody approves their own request: name another approver.",
        )


class ApprovalSlot(Aggregate):
    """Claims 'a pending request for this action on this record by this approver' for one
    approval, so two identical pending requests cannot both be recorded, even at once. Claimed
    on request, released on decision."""

    @staticmethod
    def create_id(
        requested_action: RequestedAction, reference_id: UUID, approver: UUID, **_: Any
    ) -> UUID:
        action = RequestedAction(requested_action).value
        return stable_id("approval-slot", f"{action}:{reference_id}:{approver}")

    class Claimed(Aggregate.Created):
        requested_action: RequestedAction
        reference_id: UUID
        approver: UUID
        approval_id: UUID

    @event(Claimed)
    def __init__(
        self,
        meta: Meta,
        requested_action: RequestedAction,
        reference_id: UUID,
        approver: UUID,
        approval_id: UUID,
    ) -> None:
        self.requested_action = requested_action
        self.reference_id = reference_id
        self.approver = approver
        self.approval_id: UUID | None = approval_id

    def claim(self, meta: Meta, approval_id: UUID) -> None:
        require(
            self.approval_id is None,
            "approval.duplicate_pending",
            f"A {self.requested_action.value} request to that approver about that record is "
            "already pending; wait for its decision.",
            pending_approval=str(self.approval_id),
        )
        self._reclaimed(meta, approval_id)

    class Reclaimed(Aggregate.Event):
        approval_id: UUID

    @event(Reclaimed)
    def _reclaimed(self, meta: Meta, approval_id: UUID) -> None:
        self.approval_id = approval_id

    class Released(Aggregate.Event):
        approval_id: UUID

    @event(Released)
    def release(self, meta: Meta, approval_id: UUID) -> None:
        self.approval_id = None
