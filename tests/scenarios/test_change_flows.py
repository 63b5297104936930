"""SOP 12, 13, 19 and 20, written once and run on the in-memory ledger and on PostgreSQL: an
emergency change approved by an executive, scheduled, implemented and rolled back with a new
incident; the rollback and the incident's closure approved in turn. The records' state after each
step, and the events each command appended (types in order, one command id per append)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.approval import Approval, ApprovalSlot, DecideApproval, RequestApproval
from domain.base import Role
from domain.change import Change, RequestChange, UpdateChangeStatus
from domain.incident import ChangeIncidentStatus, Incident, OpenIncident
from domain.rollback import RequestRollback, Rollback, UpdateRollbackStatus
from tests.scenarios.conftest import Driver


def test_sop12_13_19_20_emergency_change_rolled_back_and_closure_approved(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    executive = d.user(Role.EXECUTIVE, "Eve")
    incident = d.open_incident(manager)

    # SOP 12: the emergency change and its approval request (SOP 20), one append.
    requested = d.run(
        RequestChange(
            title="Failover the primary",
            description="promote the replica",
            change_type="emergency",
            risk_level="critical",
            incident=str(incident.id),
            approver=executive,
        ),
        manager,
    )
    assert requested.types == [
        "Counter.NumberIssued",
        "Change.Requested",
        "Approval.Requested",
        "ApprovalSlot.Claimed",
    ]
    requested.assert_one_command(manager)
    (approval_requested,) = requested.of(Approval.Requested)
    assert approval_requested.incident_id == incident.id
    approval = approval_requested.originator_id

    # SOP 19: the executive grants it; the change knows, one append.
    granted = d.run(DecideApproval(approval=approval, decision="approved"), executive)
    assert granted.types == [
        "Approval.Decided",
        "Change.ApprovalGranted",
        "ApprovalSlot.Released",
    ]
    granted.assert_one_command(executive)
    change = d.get(requested.id)
    assert isinstance(change, Change)
    assert (change.status.value, change.approved_by, change.approval_id) == (
        "approved",
        executive,
        approval,
    )

    for status in ("scheduled", "implemented"):
        moved = d.run(UpdateChangeStatus(change=change.number, status=status), manager)
        assert moved.types == ["Change.StatusChanged"]
    assert d.get(requested.id).status.value == "implemented"

    # SOP 13: the rollback, with the incident the change caused opened in the same append.
    rolled = d.run(
        RequestRollback(
            change=change.number,
            title="Fail back",
            reason="Replica lagging",
            new_incident=OpenIncident(
                title="Replica lag after failover",
                description="reads stale",
                category="database",
                impact="high",
                urgency="high",
                reported_by=manager,
                detection_time=datetime.now(UTC) - timedelta(minutes=2),
                severity="P3",
            ),
        ),
        manager,
    )
    assert rolled.types == [
        "Counter.NumberIssued",
        "Incident.Opened",
        "Counter.NumberIssued",
        "Rollback.Requested",
    ]
    rolled.assert_one_command(manager)
    (opened,) = rolled.of(Incident.Opened)
    rollback = d.get(rolled.id)
    assert isinstance(rollback, Rollback)
    assert (rollback.incident_id, rollback.change_id) == (opened.originator_id, change.id)

    # SOP 20 → 19 on the rollback: the grant approves it; then it is executed.
    asked = d.run(
        RequestApproval(
            reference_type="rollback",
            reference=rollback.number,
            requested_action="create_rollback_request",
            approver=executive,
        ),
        manager,
    )
    assert asked.types == ["Approval.Requested", "ApprovalSlot.Claimed"]
    decided = d.run(DecideApproval(approval=asked.id, decision="approved"), executive)
    assert decided.types == [
        "Approval.Decided",
        "Rollback.ApprovalGranted",
        "ApprovalSlot.Released",
    ]
    executed = d.run(UpdateRollbackStatus(rollback=rollback.number, status="executed"), manager)
    assert executed.types == ["Rollback.StatusChanged"]
    done = d.get(rolled.id)
    assert (done.status.value, done.approved_by) == ("executed", executive)
    assert done.executed_at == executed.events[0].meta.occurred_at

    # SOP 20 → 19 on the first incident's closure.
    d.run(ChangeIncidentStatus(incident=str(incident.id), status="resolved"), manager)
    closure = d.run(
        RequestApproval(
            reference_type="incident_closure",
            reference=str(incident.id),
            requested_action="close_incident",
            approver=executive,
        ),
        manager,
    )
    approved = d.run(
        DecideApproval(approval=closure.id, decision="approved", comment="Close it"), executive
    )
    assert approved.types == [
        "Approval.Decided",
        "Incident.ClosureApproved",
        "ApprovalSlot.Released",
    ]
    closed = d.get(incident.id)
    assert (closed.closure_approved_by, closed.closure_approval_id) == (executive, closure.id)
    slot = d.ledger.get_or_none(ApprovalSlot.create_id("close_incident", incident.id, executive))
    assert isinstance(slot, ApprovalSlot)
    assert slot.approval_id is None
