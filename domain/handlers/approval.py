"""Handlers for approval requests (SOP 19, 20), and `new_approval`, which RequestChange uses to make
an emergency change's approval request in its own append (SOP 12 step 6)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.approval import (
    ACTION,
    APPROVERS,
    ELIGIBLE,
    EXECUTIVES,
    Approval,
    ApprovalDecision,
    ApprovalSlot,
    DecideApproval,
    ReferenceType,
    RequestApproval,
    require_not_own_request,
)
from domain.base import Aggregate
from domain.bridge import Bridge
from domain.change import Change
from domain.context import Context, Decision, entry, outcome
from domain.errors import Forbidden, RuleViolation
from domain.escalation import Escalation
from domain.incident import Incident
from domain.rca import RootCauseAnalysis
from domain.rollback import Rollback


@dataclass(frozen=True)
class Reference:
    """The record an approval is about, and where it belongs (for the timeline)."""

    record: Aggregate
    status: str
    incident_id: UUID | None
    problem_id: UUID | None

    @property
    def needs_executive(self) -> bool:
        """SPEC 3: emergency-change approvals need an active executive."""
        return isinstance(self.record, Change) and self.record.is_emergency


def _status(record: Aggregate) -> str:
    status = getattr(record, "status", "")
    return str(getattr(status, "value", status))


def find_reference(ctx: Context, reference_type: ReferenceType, ref: UUID | str) -> Reference:
    """The referenced record, guarded: the append commits only if it has not moved since."""
    record: Aggregate
    if reference_type == ReferenceType.ESCALATION:
        record = ctx.find(Escalation, ref, "escalation", guard=True)
    elif reference_type == ReferenceType.BRIDGE:
        record = ctx.find(Bridge, ref, "bridge", guard=True)
    elif reference_type == ReferenceType.CHANGE:
        record = ctx.find(Change, ref, "change", guard=True)
    elif reference_type == ReferenceType.ROLLBACK:
        record = ctx.find(Rollback, ref, "rollback", guard=True)
    elif reference_type == ReferenceType.INCIDENT_CLOSURE:
        record = ctx.find(Incident, ref, "incident", guard=True)
    else:
        record = ctx.find(RootCauseAnalysis, ref, "rca", guard=True)
    incident_id = (
        record.id if isinstance(record, Incident) else getattr(record, "incident_id", None)
    )
    return Reference(record, _status(record), incident_id, getattr(record, "problem_id", None))


def new_approval(
    ctx: Context, reference_type: ReferenceType, reference: Reference, approver_id: UUID
) -> list[Aggregate]:
    """Record a pending approval request (SOP 20 steps 2, 5, 6): the approver is active (an
    executive for an emergency change) and is not the requester; no identical request is pending
    (its slot is claimed in the same append). Answers the approval and its slot."""
    require_not_own_request(ctx.actor_id, approver_id)
    ctx.active_user(approver_id, "approver", EXECUTIVES if reference.needs_executive else APPROVERS)
    action = ACTION[reference_type]
    approval = Approval(
        meta=ctx.meta,
        reference_type=reference_type,
        reference_id=reference.record.id,
        requested_action=action,
        requested_by=ctx.actor_id,
        approver=approver_id,
        requested_at=ctx.meta.occurred_at,
        incident_id=reference.incident_id,
        problem_id=reference.problem_id,
    )
    slot_id = ApprovalSlot.create_id(action, reference.record.id, approver_id)
    slot = ctx.load(slot_id)
    if isinstance(slot, ApprovalSlot):
        slot.claim(ctx.meta, approval.id)
    else:
        slot = ApprovalSlot(
            meta=ctx.meta,
            requested_action=action,
            reference_id=reference.record.id,
            approver=approver_id,
            approval_id=approval.id,
        )
    return [approval, slot]


def _after_detection(ctx: Context, incident_id: UUID | None) -> None:
    """A step on a record of an incident cannot be dated before the incident was detected."""
    if incident_id is not None:
        incident = ctx.find(Incident, incident_id, "incident")
        ctx.not_before(incident.detection_time, f"the detection of {incident.number}")


def request_approval(cmd: RequestApproval, ctx: Context) -> Decision:
    reference = find_reference(ctx, cmd.reference_type, cmd.reference)
    _after_detection(ctx, reference.incident_id)
    allowed = ELIGIBLE[cmd.reference_type]
    if reference.status not in allowed:
        raise RuleViolation(
            "approval.reference_not_eligible",
            f"An approval to {cmd.requested_action.value} needs the "
            f"{cmd.reference_type.value.replace('_', ' ')} record to be "
            f"{' or '.join(sorted(allowed))}; it is {reference.status}.",
            current_status=reference.status,
            allowed=sorted(allowed),
        )
    saved = new_approval(ctx, cmd.reference_type, reference, cmd.approver)
    return outcome(saved[0]), saved


def decide_approval(cmd: DecideApproval, ctx: Context) -> Decision:
    approval = ctx.address(ctx.find(Approval, cmd.approval, "approval"), cmd.expected_version)
    _after_detection(ctx, approval.incident_id)
    approval.decide(ctx.meta, cmd.decision, cmd.comment)
    saved: list[Aggregate] = [approval]
    approver = approval.approver
    if approval.reference_type == ReferenceType.CHANGE:
        change = ctx.find(Change, approval.reference_id, "change")
        if change.is_emergency and (ctx.actor is None or ctx.actor.role not in EXECUTIVES):
            raise Forbidden(
                "approval.executive_required",
                f"Change {change.number} is an emergency change: only an executive decides "
                "its approval, and you are no longer one.",
            )
        if cmd.decision == ApprovalDecision.APPROVED:
            change.record_approval(ctx.meta, approval.id, approver)
            saved.append(change)
    elif cmd.decision == ApprovalDecision.APPROVED:
        # Granting is recorded on the records whose own rules use it. Escalations, bridges and
        # RCAs keep their own status commands; the approval itself (with its reference and
        # incident) is the record of the grant for them.
        if approval.reference_type == ReferenceType.ROLLBACK:
            rollback = ctx.find(Rollback, approval.reference_id, "rollback")
            rollback.record_approval(ctx.meta, approval.id, approver)
            saved.append(rollback)
        elif approval.reference_type == ReferenceType.INCIDENT_CLOSURE:
            incident = ctx.find(Incident, approval.reference_id, "incident")
            incident.approve_closure(ctx.meta, approval.id, approver)
            saved.append(incident)
    slot = ctx.load(
        ApprovalSlot.create_id(approval.requested_action, approval.reference_id, approver)
    )
    if isinstance(slot, ApprovalSlot) and slot.approval_id == approval.id:
        slot.release(ctx.meta, approval.id)
        saved.append(slot)
    return outcome(approval), saved


HANDLERS = dict(
    [
        entry(RequestApproval, request_approval),
        entry(DecideApproval, decide_approval),
    ]
)
