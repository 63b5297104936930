"""Handlers for change requests (SOP 12) and rollbacks (SOP 13), with their follow-ups: an
emergency change's approval request (SOP 20) and a rollback's new incident (SOP 2), each in the
same append as the record that needs it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.approval import ReferenceType
from domain.base import Aggregate
from domain.change import Change, ChangeStatus, RequestChange, UpdateChangeStatus
from domain.context import Context, Decision, entry, outcome
from domain.errors import RuleViolation
from domain.handlers.approval import Reference, new_approval
from domain.handlers.incident import open_incident
from domain.incident import Incident
from domain.problem import Problem
from domain.rollback import RequestRollback, Rollback, UpdateRollbackStatus


def _incident(ctx: Context, ref: str) -> Incident:
    """An existing incident a change or rollback is for; the step is not dated before its
    detection."""
    incident = ctx.find(Incident, ref, "incident")
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    return incident


def _problem_id(ctx: Context, ref: str) -> UUID:
    """An existing problem a change is for."""
    return ctx.find(Problem, ref, "problem").id


def request_change(cmd: RequestChange, ctx: Context) -> Decision:
    incident = _incident(ctx, cmd.incident) if cmd.incident is not None else None
    problem_id = _problem_id(ctx, cmd.problem) if cmd.problem is not None else None
    number, counter = ctx.next_number("CHG")
    change = Change(
        meta=ctx.meta,
        number=number,
        title=cmd.title,
        description=cmd.description,
        change_type=cmd.change_type,
        risk_level=cmd.risk_level,
        requested_by=ctx.actor_id,
        incident_id=incident.id if incident else None,
        problem_id=problem_id,
        implementation_date=cmd.implementation_date,
    )
    saved: list[Aggregate] = [counter, change]
    extra: dict[str, Any] = {}
    if cmd.approver is not None:
        # SOP 12 steps 5-6 → SOP 20: an emergency change needs an executive's approval; any
        # change that names an approver gets its approval request in the same append.
        reference = Reference(change, change.status.value, change.incident_id, problem_id)
        approval, slot = new_approval(ctx, ReferenceType.CHANGE, reference, cmd.approver)
        saved += [approval, slot]
        extra = {"approval_id": str(approval.id)}
    return outcome(change, **extra), saved


def update_change_status(cmd: UpdateChangeStatus, ctx: Context) -> Decision:
    change = ctx.address(ctx.find(Change, cmd.change, "change"), cmd.expected_version)
    if change.incident_id is not None:
        _incident(ctx, str(change.incident_id))
    if cmd.status == ChangeStatus.IMPLEMENTED and cmd.implementation_date is not None:
        ctx.not_in_future(cmd.implementation_date, "implementation_date")
    change.update_status(ctx.meta, cmd.status, cmd.implementation_date)
    return outcome(change), [change]


def request_rollback(cmd: RequestRollback, ctx: Context) -> Decision:
    # Guarded: the append commits only if the change is still as read (implemented is final,
    # so this holds; the guard keeps the rule honest if the machine ever grows).
    change = ctx.find(Change, cmd.change, "change", guard=True)
    if change.status != ChangeStatus.IMPLEMENTED:
        raise RuleViolation(
            "rollback.change_not_implemented",
            f"Only an implemented change can be rolled back; {change.number} is "
            f"{change.status.value}.",
            current_status=change.status.value,
        )
    saved: list[Aggregate] = []
    extra: dict[str, Any] = {}
    if cmd.new_incident is not None:
        # SOP 13 step 2 → SOP 2: the incident the change caused, opened by the incident
        # handler itself (with all its follow-ups) as part of this decision.
        opening = cmd.new_incident.model_copy(update={"occurred_at": cmd.occurred_at})
        opened, saved = open_incident(opening, ctx)
        incident_id = opened.id
        extra = {"incident_id": str(opened.id), "incident_number": opened.number, **opened.extra}
    else:
        assert cmd.incident is not None  # the command's validator guarantees one of them
        incident_id = _incident(ctx, cmd.incident).id
    number, counter = ctx.next_number("RBK")
    rollback = Rollback(
        meta=ctx.meta,
        number=number,
        change_id=change.id,
        incident_id=incident_id,
        title=cmd.title,
        reason=cmd.reason,
        requested_by=ctx.actor_id,
    )
    return outcome(rollback, **extra), [*saved, counter, rollback]


def update_rollback_status(cmd: UpdateRollbackStatus, ctx: Context) -> Decision:
    rollback = ctx.address(ctx.find(Rollback, cmd.rollback, "rollback"), cmd.expected_version)
    _incident(ctx, str(rollback.incident_id))
    rollback.update_status(ctx.meta, cmd.status)
    return outcome(rollback), [rollback]


HANDLERS = dict(
    [
        entry(RequestChange, request_change),
        entry(UpdateChangeStatus, update_change_status),
        entry(RequestRollback, request_rollback),
        entry(UpdateRollbackStatus, update_rollback_status),
    ]
)
