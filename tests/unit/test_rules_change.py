"""Changes, rollbacks and approvals (SOP 12, 13, 19, 20) on the in-memory ledger: every rule refused
with its error type and code and nothing appended; each follow-up in the same append as its main
action (one command id), and a refused follow-up records nothing of the main action."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.approval import Approval, ApprovalSlot, DecideApproval, RequestApproval
from domain.base import Command, DomainEvent, Role
from domain.bridge import Bridge
from domain.change import Change, RequestChange, UpdateChangeStatus
from domain.errors import Forbidden, LedgerError, NotFound, RuleViolation
from domain.escalation import UpdateEscalationStatus
from domain.incident import ChangeIncidentStatus, Incident
from domain.numbering import Counter
from domain.rollback import RequestRollback, Rollback, UpdateRollbackStatus
from domain.user import UpdateUser
from tests.unit.test_rules import (
    BEFORE_DETECTION,
    DETECTED,
    NOW,
    Attempt,
    World,
    assert_refused,
    build_world,
    open_incident,
    register,
)


@dataclass
class ChangeWorld:
    w: World
    executive: UUID  # Eve
    other_executive: UUID  # Ezra

    @property
    def manager(self) -> UUID:
        return self.w.manager

    def run(self, command: Command, actor: UUID | None = None) -> Any:
        return self.w.run(command, actor)

    def change(self, change_type: str = "normal", **fields: Any) -> str:
        """A requested change (an emergency one names Eve as approver); its number."""
        if change_type == "emergency":
            fields.setdefault("approver", self.executive)
        command = RequestChange(
            title="Raise the pool size",
            description="max_connections 200 → 400",
            change_type=change_type,
            risk_level="high",
            **fields,
        )
        number = self.run(command).number
        assert number is not None
        return str(number)

    def move(self, change: str, *statuses: str) -> None:
        for status in statuses:
            self.run(UpdateChangeStatus(change=change, status=status))

    def implemented(self) -> str:
        change = self.change(incident=self.w.incident)
        self.move(change, "approved", "scheduled", "implemented")
        return change

    def rollback(self) -> str:
        command = RequestRollback(
            change=self.implemented(), title="Undo", reason="Errors", incident=self.w.incident
        )
        return str(self.run(command).number)

    def approval(self, reference_type: str, reference: str, approver: UUID | None = None) -> UUID:
        action = {
            "change": "create_change_request",
            "rollback": "create_rollback_request",
            "incident_closure": "close_incident",
            "escalation": "create_escalation",
            "bridge": "initiate_bridge",
        }[reference_type]
        command = RequestApproval(
            reference_type=reference_type,
            reference=reference,
            requested_action=action,
            approver=approver or self.executive,
        )
        return UUID(str(self.run(command).id))

    def emergency_approval(self, change: str) -> UUID:
        """The pending approval request an emergency change was made with (its slot's)."""
        found = self.w.ledger.find(Change, change, "change")
        slot = self.w.ledger.get_or_none(
            ApprovalSlot.create_id("create_change_request", found.id, self.executive)
        )
        assert isinstance(slot, ApprovalSlot)
        assert slot.approval_id is not None
        return slot.approval_id

    def decide(self, approval: UUID, decision: str = "approved", actor: UUID | None = None) -> Any:
        command = DecideApproval(approval=approval, decision=decision, comment="ok")
        return self.run(command, actor or self.executive)

    def resolved_incident(self) -> str:
        self.run(ChangeIncidentStatus(incident=self.w.incident, status="resolved"))
        return self.w.incident

    def appended(self, head: int) -> list[DomainEvent]:
        """The events stored after position `head`, leaving out counters' first event."""
        stored = self.w.ledger.recorder.select_notifications(head + 1, 1_000)
        events = [self.w.ledger.mapper.to_domain_event(n) for n in stored]
        return [
            e for e in events if isinstance(e, DomainEvent) and not isinstance(e, Counter.Started)
        ]


def build_change_world() -> ChangeWorld:
    w = build_world()
    return ChangeWorld(
        w,
        executive=register(w.ledger, w.admin, "Eve", Role.EXECUTIVE),
        other_executive=register(w.ledger, w.admin, "Ezra", Role.EXECUTIVE),
    )


@pytest.fixture
def cw() -> Iterator[ChangeWorld]:
    built = build_change_world()
    yield built
    built.w.ledger.close()


Case = Callable[[ChangeWorld], Attempt]
CASES: list[Any] = []


def case(code: str, error: type[LedgerError] = RuleViolation, *, how: str = "") -> Any:
    def add(build: Case) -> Case:
        case_id = f"{code}-{how.replace(' ', '_')}" if how else code
        CASES.append(pytest.param(build, code, error, id=case_id))
        return build

    return add


def _change(**fields: Any) -> RequestChange:
    return RequestChange(
        **{
            "title": "Raise the pool size",
            "description": "max_connections 200 → 400",
            "change_type": "normal",
            "risk_level": "medium",
            **fields,
        }
    )


# --- SOP 12: requesting a change --------------------------------------------------------------


@case("incident.not_found", NotFound, how="change")
def _change_for_unknown_incident(c: ChangeWorld) -> Attempt:
    return Attempt(_change(incident="INC0009999"), c.manager)


@case("problem.not_found", NotFound, how="change")
def _change_for_unknown_problem(c: ChangeWorld) -> Attempt:
    return Attempt(_change(problem="PRB0000001"), c.manager)


@case("occurred_at.before_detection", how="change")
def _change_dated_before_detection(c: ChangeWorld) -> Attempt:
    return Attempt(_change(incident=c.w.incident, occurred_at=BEFORE_DETECTION), c.manager)


@case("user.wrong_role", how="emergency approver not an executive")
def _emergency_approved_by_manager(c: ChangeWorld) -> Attempt:
    command = _change(change_type="emergency", approver=c.w.other_manager)
    return Attempt(command, c.manager)


@case("user.inactive", how="emergency approver inactive")
def _emergency_approver_inactive(c: ChangeWorld) -> Attempt:
    c.w.deactivate(c.executive)
    return Attempt(_change(change_type="emergency", approver=c.executive), c.manager)


@case("user.not_found", NotFound, how="change approver")
def _change_approver_unknown(c: ChangeWorld) -> Attempt:
    return Attempt(_change(change_type="emergency", approver=uuid4()), c.manager)


@case("user.wrong_role", how="normal change approver an auditor")
def _normal_change_approved_by_auditor(c: ChangeWorld) -> Attempt:
    return Attempt(_change(approver=c.w.auditor), c.manager)


@case("role.forbidden", Forbidden, how="support requests a change")
def _support_requests_change(c: ChangeWorld) -> Attempt:
    return Attempt(_change(), c.w.support)


# --- the change's status machine --------------------------------------------------------------


@case("change.invalid_transition", how="requested to scheduled")
def _schedule_requested_change(c: ChangeWorld) -> Attempt:
    return Attempt(UpdateChangeStatus(change=c.change(), status="scheduled"), c.manager)


@case("change.invalid_transition", how="implemented is final")
def _cancel_implemented_change(c: ChangeWorld) -> Attempt:
    return Attempt(UpdateChangeStatus(change=c.implemented(), status="cancelled"), c.manager)


@case("change.approval_required", how="emergency approved by hand")
def _approve_emergency_by_hand(c: ChangeWorld) -> Attempt:
    command = UpdateChangeStatus(change=c.change("emergency"), status="approved")
    return Attempt(command, c.manager)


@case("implementation_date.in_future")
def _implemented_in_the_future(c: ChangeWorld) -> Attempt:
    change = c.change()
    c.move(change, "approved", "scheduled")
    command = UpdateChangeStatus(
        change=change, status="implemented", implementation_date=NOW + timedelta(days=1)
    )
    return Attempt(command, c.manager)


@case("change.not_found", NotFound, how="status")
def _move_unknown_change(c: ChangeWorld) -> Attempt:
    return Attempt(UpdateChangeStatus(change="CHG0009999", status="approved"), c.manager)


@case("occurred_at.before_detection", how="change status")
def _move_change_before_detection(c: ChangeWorld) -> Attempt:
    change = c.change(incident=c.w.incident)
    command = UpdateChangeStatus(change=change, status="approved", occurred_at=BEFORE_DETECTION)
    return Attempt(command, c.manager)


# --- SOP 13: rollbacks ---------------------------------------------------------------------------


def _rollback(change: str, **fields: Any) -> RequestRollback:
    return RequestRollback(change=change, title="Undo the pool change", reason="Errors", **fields)


@case("rollback.change_not_implemented", how="requested")
def _rollback_requested_change(c: ChangeWorld) -> Attempt:
    return Attempt(_rollback(c.change(), incident=c.w.incident), c.manager)


@case("rollback.change_not_implemented", how="scheduled")
def _rollback_scheduled_change(c: ChangeWorld) -> Attempt:
    change = c.change()
    c.move(change, "approved", "scheduled")
    return Attempt(_rollback(change, incident=c.w.incident), c.manager)


@case("change.not_found", NotFound, how="rollback")
def _rollback_unknown_change(c: ChangeWorld) -> Attempt:
    return Attempt(_rollback("CHG0009999", incident=c.w.incident), c.manager)


@case("incident.not_found", NotFound, how="rollback")
def _rollback_for_unknown_incident(c: ChangeWorld) -> Attempt:
    return Attempt(_rollback(c.implemented(), incident="INC0009999"), c.manager)


@case("user.inactive", how="rollback's new incident reporter")
def _rollback_new_incident_inactive_reporter(c: ChangeWorld) -> Attempt:
    change = c.implemented()
    c.w.deactivate(c.w.other_manager)
    new = open_incident(reported_by=c.w.other_manager)
    return Attempt(_rollback(change, new_incident=new), c.manager)


@case("detection_time.in_future", how="rollback's new incident")
def _rollback_new_incident_detected_later(c: ChangeWorld) -> Attempt:
    new = open_incident(reported_by=c.manager, detection_time=NOW + timedelta(hours=1))
    return Attempt(_rollback(c.implemented(), new_incident=new), c.manager)


@case("rollback.invalid_transition", how="requested to executed")
def _execute_requested_rollback(c: ChangeWorld) -> Attempt:
    return Attempt(UpdateRollbackStatus(rollback=c.rollback(), status="executed"), c.manager)


@case("rollback.invalid_transition", how="executed is final")
def _fail_executed_rollback(c: ChangeWorld) -> Attempt:
    rollback = c.rollback()
    for status in ("approved", "executed"):
        c.run(UpdateRollbackStatus(rollback=rollback, status=status))
    return Attempt(UpdateRollbackStatus(rollback=rollback, status="failed"), c.manager)


@case("rollback.not_found", NotFound)
def _move_unknown_rollback(c: ChangeWorld) -> Attempt:
    return Attempt(UpdateRollbackStatus(rollback="RBK0009999", status="approved"), c.manager)


# --- SOP 20: requesting approvals -----------------------------------------------------------------


def _request(reference_type: str, reference: str, action: str, approver: UUID) -> RequestApproval:
    return RequestApproval(
        reference_type=reference_type,
        reference=reference,
        requested_action=action,
        approver=approver,
    )


@case("approval.reference_not_eligible", how="change approved")
def _approval_for_approved_change(c: ChangeWorld) -> Attempt:
    change = c.change()
    c.move(change, "approved")
    return Attempt(_request("change", change, "create_change_request", c.executive), c.manager)


@case("approval.reference_not_eligible", how="rollback approved")
def _approval_for_approved_rollback(c: ChangeWorld) -> Attempt:
    rollback = c.rollback()
    c.run(UpdateRollbackStatus(rollback=rollback, status="approved"))
    command = _request("rollback", rollback, "create_rollback_request", c.executive)
    return Attempt(command, c.manager)


@case("approval.reference_not_eligible", how="closure of an open incident")
def _closure_of_open_incident(c: ChangeWorld) -> Attempt:
    command = _request("incident_closure", c.w.incident, "close_incident", c.executive)
    return Attempt(command, c.manager)


@case("approval.reference_not_eligible", how="escalation denied")
def _approval_for_denied_escalation(c: ChangeWorld) -> Attempt:
    escalation = c.w.escalate()
    c.run(UpdateEscalationStatus(escalation=escalation, status="denied"))
    command = _request("escalation", str(escalation), "create_escalation", c.executive)
    return Attempt(command, c.manager)


@case("escalation.not_found", NotFound, how="approval")
def _approval_for_unknown_escalation(c: ChangeWorld) -> Attempt:
    command = _request("escalation", str(uuid4()), "create_escalation", c.executive)
    return Attempt(command, c.manager)


@case("bridge.not_found", NotFound, how="approval")
def _approval_for_unknown_bridge(c: ChangeWorld) -> Attempt:
    return Attempt(_request("bridge", "BRG0009999", "initiate_bridge", c.executive), c.manager)


@case("rollback.not_found", NotFound, how="approval")
def _approval_for_unknown_rollback(c: ChangeWorld) -> Attempt:
    command = _request("rollback", "RBK0009999", "create_rollback_request", c.executive)
    return Attempt(command, c.manager)


@case("rca.not_found", NotFound, how="approval")
def _approval_for_unknown_rca(c: ChangeWorld) -> Attempt:
    return Attempt(_request("rca", "RCA0000001", "conduct_rca", c.executive), c.manager)


@case("approval.own_request", how="approver is the requester")
def _approval_to_oneself(c: ChangeWorld) -> Attempt:
    return Attempt(_request("change", c.change(), "create_change_request", c.manager), c.manager)


@case("approval.duplicate_pending")
def _same_request_twice(c: ChangeWorld) -> Attempt:
    change = c.change()
    c.approval("change", change)
    return Attempt(_request("change", change, "create_change_request", c.executive), c.manager)


@case("approval.duplicate_pending", how="emergency change's own request")
def _emergency_request_again(c: ChangeWorld) -> Attempt:
    change = c.change("emergency")
    return Attempt(_request("change", change, "create_change_request", c.executive), c.manager)


@case("user.wrong_role", how="emergency change approval to a manager")
def _emergency_approval_to_manager(c: ChangeWorld) -> Attempt:
    change = c.change("emergency")
    command = _request("change", change, "create_change_request", c.w.other_manager)
    return Attempt(command, c.manager)


@case("user.inactive", how="approver")
def _approval_to_inactive_user(c: ChangeWorld) -> Attempt:
    change = c.change()
    c.w.deactivate(c.other_executive)
    return Attempt(
        _request("change", change, "create_change_request", c.other_executive), c.manager
    )


@case("role.forbidden", Forbidden, how="account manager requests approval")
def _account_manager_requests_approval(c: ChangeWorld) -> Attempt:
    command = _request("change", c.change(), "create_change_request", c.executive)
    return Attempt(command, c.w.account_manager)


@case("occurred_at.before_detection", how="approval")
def _approval_dated_before_detection(c: ChangeWorld) -> Attempt:
    command = RequestApproval(
        reference_type="incident_closure",
        reference=c.resolved_incident(),
        requested_action="close_incident",
        approver=c.executive,
        occurred_at=BEFORE_DETECTION,
    )
    return Attempt(command, c.manager)


# --- SOP 19: deciding approvals -------------------------------------------------------------------


@case("approval.not_found", NotFound)
def _decide_unknown_approval(c: ChangeWorld) -> Attempt:
    return Attempt(DecideApproval(approval=uuid4(), decision="approved"), c.executive)


@case("approval.not_approver", Forbidden, how="another executive")
def _decided_by_someone_else(c: ChangeWorld) -> Attempt:
    approval = c.approval("change", c.change())
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.other_executive)


@case("approval.not_approver", Forbidden, how="the requester")
def _decided_by_requester(c: ChangeWorld) -> Attempt:
    approval = c.approval("change", c.change())
    return Attempt(DecideApproval(approval=approval, decision="denied"), c.manager)


@case("approval.not_pending")
def _decided_twice(c: ChangeWorld) -> Attempt:
    approval = c.approval("change", c.change())
    c.decide(approval, "denied")
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.executive)


@case("approval.executive_required", Forbidden)
def _emergency_decided_by_demoted_executive(c: ChangeWorld) -> Attempt:
    approval = c.emergency_approval(c.change("emergency"))
    c.run(UpdateUser(user=c.executive, role=Role.INCIDENT_MANAGER), c.w.admin)
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.executive)


@case("approval.reference_not_eligible", how="grant for a cancelled change")
def _grant_for_cancelled_change(c: ChangeWorld) -> Attempt:
    change = c.change("emergency")
    approval = c.emergency_approval(change)
    c.move(change, "cancelled")
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.executive)


@case("approval.reference_not_eligible", how="grant for an executed rollback")
def _grant_for_executed_rollback(c: ChangeWorld) -> Attempt:
    rollback = c.rollback()
    approval = c.approval("rollback", rollback)
    for status in ("approved", "executed"):
        c.run(UpdateRollbackStatus(rollback=rollback, status=status))
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.executive)


@case("approval.reference_not_eligible", how="closure grant after reopening")
def _grant_closure_of_reopened_incident(c: ChangeWorld) -> Attempt:
    approval = c.approval("incident_closure", c.resolved_incident())
    c.run(ChangeIncidentStatus(incident=c.w.incident, status="in_progress"))
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.executive)


@case("role.forbidden", Forbidden, how="auditor decides")
def _auditor_decides(c: ChangeWorld) -> Attempt:
    approval = c.approval("change", c.change())
    return Attempt(DecideApproval(approval=approval, decision="approved"), c.w.auditor)


@pytest.mark.parametrize(("build", "code", "error"), CASES)
def test_change_command_is_refused_with_its_code_and_appends_nothing(
    cw: ChangeWorld, build: Case, code: str, error: type[LedgerError]
) -> None:
    attempt = build(cw)
    assert_refused(cw.w, attempt.command, attempt.actor, error, code)


# --- follow-ups: one append, one command id -------------------------------------------------------


def _one_command(events: list[DomainEvent], actor: UUID) -> None:
    assert events
    assert {e.meta.command_id for e in events} == {events[0].meta.command_id}
    assert {e.meta.actor for e in events} == {actor}


def _types(events: list[DomainEvent]) -> list[str]:
    return [type(e).__qualname__ for e in events]


def test_emergency_change_and_its_approval_request_are_one_append(cw: ChangeWorld) -> None:
    head = cw.w.head()
    outcome = cw.run(
        _change(change_type="emergency", approver=cw.executive, incident=cw.w.incident)
    )
    events = cw.appended(head)
    _one_command(events, cw.manager)
    assert _types(events) == [
        "Counter.NumberIssued",
        "Change.Requested",
        "Approval.Requested",
        "ApprovalSlot.Claimed",
    ]
    change = cw.w.ledger.find(Change, str(outcome.id), "change")
    approval = cw.w.ledger.find(Approval, outcome.extra["approval_id"], "approval")
    assert (change.status.value, change.approved_by, change.requested_by) == (
        "requested",
        None,
        cw.manager,
    )
    assert (approval.reference_type.value, approval.requested_action.value) == (
        "change",
        "create_change_request",
    )
    assert (approval.reference_id, approval.approver, approval.requested_by) == (
        change.id,
        cw.executive,
        cw.manager,
    )
    assert (approval.incident_id, approval.status.value) == (change.incident_id, "pending")
    assert approval.requested_at == NOW


def test_normal_change_naming_an_approver_gets_a_request_too(cw: ChangeWorld) -> None:
    outcome = cw.run(_change(approver=cw.w.other_manager))
    approval = cw.w.ledger.find(Approval, outcome.extra["approval_id"], "approval")
    assert approval.approver == cw.w.other_manager
    # ... and a normal change may still be approved by hand.
    cw.move(str(outcome.number), "approved")
    assert cw.w.ledger.find(Change, str(outcome.id), "change").approved_by == cw.manager


def test_granting_an_emergency_change_approves_it_in_the_same_append(cw: ChangeWorld) -> None:
    change = cw.change("emergency")
    approval = cw.emergency_approval(change)
    head = cw.w.head()
    cw.decide(approval)
    events = cw.appended(head)
    _one_command(events, cw.executive)
    assert _types(events) == ["Approval.Decided", "Change.ApprovalGranted", "ApprovalSlot.Released"]
    decided = cw.w.ledger.find(Approval, approval, "approval")
    assert (decided.status.value, decided.responded_at, decided.comment) == ("approved", NOW, "ok")
    found = cw.w.ledger.find(Change, change, "change")
    assert (found.status.value, found.approved_by, found.approval_id) == (
        "approved",
        cw.executive,
        approval,
    )
    cw.move(change, "scheduled", "implemented")
    done = cw.w.ledger.find(Change, change, "change")
    assert (done.status.value, done.implementation_date) == ("implemented", NOW)


def test_denying_leaves_the_change_requested_and_frees_the_slot(cw: ChangeWorld) -> None:
    change = cw.change("emergency")
    cw.decide(cw.emergency_approval(change), "denied")
    assert cw.w.ledger.find(Change, change, "change").status.value == "requested"
    again = cw.approval("change", change)  # the same request may be made again
    cw.decide(again)
    assert cw.w.ledger.find(Change, change, "change").status.value == "approved"


def test_scheduled_date_is_kept_and_implementation_date_can_be_given(cw: ChangeWorld) -> None:
    change = cw.change(implementation_date=NOW + timedelta(days=3))
    cw.move(change, "approved")
    planned = NOW + timedelta(days=2)
    cw.run(UpdateChangeStatus(change=change, status="scheduled", implementation_date=planned))
    assert cw.w.ledger.find(Change, change, "change").implementation_date == planned
    done = NOW - timedelta(minutes=5)
    cw.run(UpdateChangeStatus(change=change, status="implemented", implementation_date=done))
    assert cw.w.ledger.find(Change, change, "change").implementation_date == done


def test_granting_a_closure_records_it_on_the_incident(cw: ChangeWorld) -> None:
    approval = cw.approval("incident_closure", cw.resolved_incident())
    head = cw.w.head()
    cw.decide(approval)
    events = cw.appended(head)
    _one_command(events, cw.executive)
    assert _types(events) == [
        "Approval.Decided",
        "Incident.ClosureApproved",
        "ApprovalSlot.Released",
    ]
    incident = cw.w.ledger.find(Incident, cw.w.incident, "incident")
    assert (incident.closure_approved_by, incident.closure_approval_id) == (cw.executive, approval)


def test_granting_a_rollback_approval_approves_the_rollback(cw: ChangeWorld) -> None:
    rollback = cw.rollback()
    cw.decide(cw.approval("rollback", rollback))
    found = cw.w.ledger.find(Rollback, rollback, "rollback")
    assert (found.status.value, found.approved_by) == ("approved", cw.executive)
    cw.run(UpdateRollbackStatus(rollback=rollback, status="executed"))
    assert cw.w.ledger.find(Rollback, rollback, "rollback").executed_at == NOW


def test_escalation_and_bridge_approvals_record_nothing_on_the_record(cw: ChangeWorld) -> None:
    escalation = cw.w.escalate()
    approval = cw.approval("escalation", str(escalation))
    head = cw.w.head()
    cw.decide(approval)
    assert _types(cw.appended(head)) == ["Approval.Decided", "ApprovalSlot.Released"]
    found = cw.w.ledger.find(Approval, approval, "approval")
    assert found.incident_id == cw.w.ledger.find(Incident, cw.w.incident, "incident").id


def test_bridge_approval_is_linked_to_the_bridges_incident(cw: ChangeWorld) -> None:
    opened = cw.run(open_incident(reported_by=cw.manager, assigned_to=cw.manager, severity="P1"))
    bridge = opened.extra["bridge_number"]
    approval = cw.approval("bridge", bridge)
    found = cw.w.ledger.find(Approval, approval, "approval")
    assert found.reference_id == cw.w.ledger.find(Bridge, bridge, "bridge").id
    assert found.incident_id == opened.id


def test_rollback_with_a_new_incident_is_one_append_with_its_follow_ups(cw: ChangeWorld) -> None:
    change = cw.implemented()
    new = open_incident(
        reported_by=cw.manager, assigned_to=cw.manager, severity="P1", title="Pool exhausted"
    )
    head = cw.w.head()
    outcome = cw.run(_rollback(change, new_incident=new))
    events = cw.appended(head)
    _one_command(events, cw.manager)
    assert _types(events) == [
        "Counter.NumberIssued",
        "Incident.Opened",
        "Incident.StatusChanged",  # P1 with an incident manager: SOP 4.1 follow-up
        "Incident.BridgeOpened",
        "Counter.NumberIssued",
        "Bridge.Opened",
        "Counter.NumberIssued",
        "Rollback.Requested",
    ]
    rollback = cw.w.ledger.find(Rollback, str(outcome.id), "rollback")
    incident = cw.w.ledger.find(Incident, outcome.extra["incident_number"], "incident")
    assert (rollback.incident_id, rollback.change_id, rollback.status.value) == (
        incident.id,
        cw.w.ledger.find(Change, change, "change").id,
        "requested",
    )
    assert (incident.title, incident.status.value, incident.detection_time) == (
        "Pool exhausted",
        "in_progress",
        DETECTED,
    )
    assert outcome.extra["bridge_number"].startswith("BRG")


def test_rollback_new_incident_refuses_its_own_occurred_at() -> None:
    with pytest.raises(ValueError, match="occurred_at"):
        RequestRollback(
            change="CHG0000001",
            title="Undo",
            reason="Errors",
            new_incident=open_incident(reported_by=uuid4(), occurred_at=NOW),
        )


def test_emergency_change_without_approver_is_refused_by_validation() -> None:
    with pytest.raises(ValueError, match="approver"):
        _change(change_type="emergency")


def test_rollback_names_exactly_one_incident() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RequestRollback(change="CHG0000001", title="Undo", reason="Errors")


def test_requested_action_must_match_the_reference_type() -> None:
    with pytest.raises(ValueError, match="create_change_request"):
        RequestApproval(
            reference_type="change",
            reference="CHG0000001",
            requested_action="close_incident",
            approver=uuid4(),
        )


def test_implementation_date_only_with_scheduled_or_implemented() -> None:
    with pytest.raises(ValueError, match="implementation_date"):
        UpdateChangeStatus(change="CHG0000001", status="approved", implementation_date=NOW)
