"""Changes and their approval requests driven by random commands (request normal and emergency
changes, move them, request approvals, decide them as the right or the wrong user), compared after
every step with a small model of SPEC 4.5, 4.6 and the issue's rules written here independently:
every answer (accepted, or refused with its code) is the model's, refused commands append nothing,
and replaying the stored events from scratch gives the model's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from domain.approval import Approval, DecideApproval, RequestApproval
from domain.base import Command, Role
from domain.change import Change, RequestChange, UpdateChangeStatus
from domain.context import Outcome
from domain.errors import LedgerError
from domain.ledger import IncidentLedger
from domain.user import RegisterUser
from tests.conftest import bootstrap

START = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)

# SPEC 4.5, written out independently of domain.change.TRANSITIONS.
MOVES: dict[str, set[str]] = {
    "requested": {"approved", "denied", "cancelled"},
    "approved": {"scheduled", "cancelled"},
    "scheduled": {"implemented", "cancelled"},
    "denied": set(),
    "implemented": set(),
    "cancelled": set(),
}
STATUSES = sorted(MOVES)
# The users: the requesting manager (who acts for every request), another manager, two
# executives, and an auditor (who can neither be named approver nor decide).
USERS: dict[str, Role] = {
    "manager": Role.INCIDENT_MANAGER,
    "other_manager": Role.INCIDENT_MANAGER,
    "exec1": Role.EXECUTIVE,
    "exec2": Role.EXECUTIVE,
    "auditor": Role.AUDITOR,
}
NAMES = sorted(USERS)


class StepClock:
    """Each reading is 90 seconds after the previous one."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=90)
        return self.now


@dataclass
class ChangeModel:
    id: UUID
    emergency: bool
    status: str = "requested"
    approved_by: str | None = None
    approval: int | None = None  # index of the granting approval
    implemented_at: datetime | None = None
    version: int = 1


@dataclass
class ApprovalModel:
    id: UUID
    change: int
    approver: str
    status: str = "pending"
    responded_at: datetime | None = None
    comment: str | None = None


@dataclass
class Model:
    changes: list[ChangeModel] = field(default_factory=list)
    approvals: list[ApprovalModel] = field(default_factory=list)

    def pending(self, change: int, approver: str) -> bool:
        return any(
            a.change == change and a.approver == approver and a.status == "pending"
            for a in self.approvals
        )


def approver_refusal(model: Model, change: int, emergency: bool, approver: str) -> str | None:
    """What the issue says about naming `approver` on a request the manager makes."""
    if approver == "manager":
        return "approval.own_request"
    if USERS[approver] == Role.AUDITOR or (emergency and USERS[approver] != Role.EXECUTIVE):
        return "user.wrong_role"
    if model.pending(change, approver):
        return "approval.duplicate_pending"
    return None


class ChangeApprovalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = StepClock()
        self.ledger = IncidentLedger(clock=self.clock)
        admin = bootstrap(self.ledger)
        self.users = {name: self._register(name, role, admin) for name, role in USERS.items()}
        self.model = Model()

    def _register(self, name: str, role: Role, admin: UUID) -> UUID:
        command = RegisterUser(
            first_name=name.title(),
            last_name="Tester",
            email=f"{name}@machine.test",
            role=role,
            timezone="UTC",
        )
        return self.ledger.handle(command, admin).id

    # --- running a command ------------------------------------------------------------------------

    def answer(self, command: Command, actor: str) -> tuple[Outcome | None, str | None]:
        """Run the command: (its outcome, None) if accepted, (None, code) if refused, in which
        case nothing at all may have been appended."""
        head = self.ledger.recorder.max_notification_id()
        try:
            outcome = self.ledger.handle(command, self.users[actor])
        except LedgerError as refusal:
            assert self.ledger.recorder.max_notification_id() == head
            return None, refusal.code
        return outcome, None

    # --- rules ------------------------------------------------------------------------------------

    @rule(emergency=st.booleans(), approver=st.none() | st.sampled_from(NAMES))
    def request_change(self, emergency: bool, approver: str | None) -> None:
        if emergency and approver is None:
            with pytest.raises(ValueError, match="approver"):
                RequestChange(
                    title="t", description="d", change_type="emergency", risk_level="high"
                )
            return
        command = RequestChange(
            title="Failover",
            description="promote the replica",
            change_type="emergency" if emergency else "normal",
            risk_level="high",
            approver=self.users[approver] if approver else None,
        )
        index = len(self.model.changes)
        expected = approver_refusal(self.model, index, emergency, approver) if approver else None
        outcome, code = self.answer(command, "manager")
        assert code == expected
        if outcome is None:
            return
        self.model.changes.append(ChangeModel(outcome.id, emergency))
        if approver is not None:
            approval = UUID(outcome.extra["approval_id"])
            self.model.approvals.append(ApprovalModel(approval, index, approver))

    @precondition(lambda self: self.model.changes)
    @rule(which=st.integers(0, 1_000), status=st.sampled_from(STATUSES))
    def move_change(self, which: int, status: str) -> None:
        change = self.model.changes[which % len(self.model.changes)]
        command = UpdateChangeStatus(change=str(change.id), status=status)
        if status not in MOVES[change.status]:
            expected: str | None = "change.invalid_transition"
        elif change.emergency and (
            status == "approved"
            or (status in ("scheduled", "implemented") and change.approval is None)
        ):
            expected = "change.approval_required"
        else:
            expected = None
        outcome, code = self.answer(command, "manager")
        assert code == expected
        if outcome is None:
            return
        change.status = status
        change.version += 1
        if status == "approved":
            change.approved_by = "manager"
        if status == "implemented":
            change.implemented_at = self.clock.now

    @precondition(lambda self: self.model.changes)
    @rule(which=st.integers(0, 1_000), approver=st.sampled_from(NAMES))
    def request_approval(self, which: int, approver: str) -> None:
        index = which % len(self.model.changes)
        change = self.model.changes[index]
        command = RequestApproval(
            reference_type="change",
            reference=str(change.id),
            requested_action="create_change_request",
            approver=self.users[approver],
        )
        if change.status not in ("requested", "scheduled"):
            expected: str | None = "approval.reference_not_eligible"
        else:
            expected = approver_refusal(self.model, index, change.emergency, approver)
        outcome, code = self.answer(command, "manager")
        assert code == expected
        if outcome is not None:
            self.model.approvals.append(ApprovalModel(outcome.id, index, approver))

    @precondition(lambda self: self.model.approvals)
    @rule(
        which=st.integers(0, 1_000),
        actor=st.sampled_from(NAMES),
        approve=st.booleans(),
        comment=st.none() | st.sampled_from(["Go ahead", "Too risky"]),
    )
    def decide(self, which: int, actor: str, approve: bool, comment: str | None) -> None:
        approval = self.model.approvals[which % len(self.model.approvals)]
        change = self.model.changes[approval.change]
        command = DecideApproval(
            approval=approval.id, decision="approved" if approve else "denied", comment=comment
        )
        if USERS[actor] == Role.AUDITOR:
            expected: str | None = "role.forbidden"
        elif actor != approval.approver:
            expected = "approval.not_approver"
        elif approval.status != "pending":
            expected = "approval.not_pending"
        elif approve and change.status in ("denied", "implemented", "cancelled"):
            expected = "approval.reference_not_eligible"
        else:
            expected = None
        outcome, code = self.answer(command, actor)
        assert code == expected
        if outcome is None:
            return
        approval.status = "approved" if approve else "denied"
        approval.responded_at = self.clock.now
        approval.comment = comment
        if approve:
            change.approved_by = actor
            change.approval = self.model.approvals.index(approval)
            change.version += 1
            if change.status == "requested":
                change.status = "approved"

    # --- invariant --------------------------------------------------------------------------------

    @invariant()
    def stored_state_matches_model(self) -> None:
        names = {uid: name for name, uid in self.users.items()}
        approval_ids = [a.id for a in self.model.approvals]
        for expected in self.model.changes:
            # Asking for a version bypasses the aggregate cache: a replay of the stored events.
            replayed = self.ledger.repository.get(expected.id, version=expected.version)
            for change in (replayed, self.ledger.repository.get(expected.id)):
                assert isinstance(change, Change)
                granting = approval_ids.index(change.approval_id) if change.approval_id else None
                actual = (
                    change.status.value,
                    names.get(change.approved_by) if change.approved_by else None,
                    granting,
                    change.implementation_date,
                    change.version,
                )
                assert actual == (
                    expected.status,
                    expected.approved_by,
                    expected.approval,
                    expected.implemented_at,
                    expected.version,
                )
        for model in self.model.approvals:
            version = 1 if model.status == "pending" else 2
            replayed = self.ledger.repository.get(model.id, version=version)
            for approval in (replayed, self.ledger.repository.get(model.id)):
                assert isinstance(approval, Approval)
                assert (
                    approval.status.value,
                    names[approval.approver],
                    approval.reference_id,
                    approval.responded_at,
                    approval.comment,
                    approval.version,
                ) == (
                    model.status,
                    model.approver,
                    self.model.changes[model.change].id,
                    model.responded_at,
                    model.comment,
                    version,
                )

    def teardown(self) -> None:
        self.ledger.close()


def test_changes_and_approvals_match_the_model_when_random_commands_run() -> None:
    run_state_machine_as_test(
        ChangeApprovalMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
