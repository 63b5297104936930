"""Changes and approvals under concurrency (real PostgreSQL, racing threads): an emergency change is
never scheduled before its approval is granted, and two identical pending approval requests never
both succeed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

from api.service import Service
from domain.approval import DecideApproval, RequestApproval
from domain.base import Role
from domain.change import Change, ChangeStatus, RequestChange, UpdateChangeStatus
from domain.context import Outcome
from domain.errors import LedgerError
from tests.integration.test_cross_record_races import positions, race, refusal_codes, user


def _change(service: Service, manager: UUID, approver: UUID, change_type: str) -> Outcome:
    command = RequestChange(
        title="Failover the primary",
        description="promote the replica",
        change_type=change_type,
        risk_level="critical",
        approver=approver,
    )
    return service.ledger.handle(command, manager)


def _change_history(service: Service, change_id: UUID) -> list[tuple[str, str | None]]:
    """The change's stored events in order: (event type, status it moved to)."""
    return [
        (type(e).__qualname__, getattr(getattr(e, "status", None), "value", None))
        for e in service.ledger.events.get(change_id)
    ]


ALLOWED = {
    "change.invalid_transition",
    "change.approval_required",
    "concurrency.conflict",
    "concurrency.busy",
}


def _race_the_decision(
    service: Service, manager: UUID, executive: UUID, grant: bool
) -> list[tuple[str, str | None]]:
    """An executive decides an emergency change's approval while 6 threads keep trying to
    schedule the change (until one lands or 0.3 s pass) and 2 try to approve it by hand.
    Answers the change's stored history."""
    created = _change(service, manager, executive, "emergency")
    approval = UUID(created.extra["approval_id"])
    decision = DecideApproval(approval=approval, decision="approved" if grant else "denied")
    schedule = UpdateChangeStatus(change=str(created.id), status=ChangeStatus.SCHEDULED)
    by_hand = UpdateChangeStatus(change=str(created.id), status=ChangeStatus.APPROVED)
    start = threading.Barrier(9)

    def scheduler() -> list[Outcome | LedgerError]:
        tried: list[Outcome | LedgerError] = []
        start.wait(timeout=30)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            try:
                tried.append(service.ledger.handle(schedule, manager))
                break
            except LedgerError as refusal:
                tried.append(refusal)
                time.sleep(0.005)
        return tried

    def once(command: DecideApproval | UpdateChangeStatus, actor: UUID) -> Outcome | LedgerError:
        start.wait(timeout=30)
        try:
            return service.ledger.handle(command, actor)
        except LedgerError as refusal:
            return refusal

    with ThreadPoolExecutor(max_workers=9) as pool:
        decided = pool.submit(once, decision, executive)
        hands = [pool.submit(once, by_hand, manager) for _ in range(2)]
        schedulers = [pool.submit(scheduler) for _ in range(6)]
        outcome = decided.result()
        tried = [r for s in schedulers for r in s.result()] + [h.result() for h in hands]
    assert isinstance(outcome, Outcome), outcome
    assert refusal_codes(tried) <= ALLOWED, refusal_codes(tried)
    change = service.ledger.find(Change, str(created.id), "change")
    if change.status == ChangeStatus.SCHEDULED:
        assert change.approval_id == approval
    return _change_history(service, created.id)


def test_emergency_change_is_never_scheduled_before_its_approval(service: Service) -> None:
    """Grants on even trials, denials on odd ones: in the stored order, a schedule only ever
    follows the grant, and nobody approves the change by hand."""
    manager, executive = user(service), user(service, Role.EXECUTIVE)
    scheduled = 0
    for trial in range(24):
        grant = trial % 2 == 0
        history = _race_the_decision(service, manager, executive, grant)
        assert ("Change.StatusChanged", "approved") not in history  # never by hand
        moves = [status for kind, status in history if kind == "Change.StatusChanged"]
        if grant:
            granted = history.index(("Change.ApprovalGranted", "approved"))
            assert all(i > granted for i, h in enumerate(history) if h[1] == "scheduled")
            assert moves in ([], ["scheduled"])
            scheduled += len(moves)
        else:
            assert ("Change.ApprovalGranted", "approved") not in history
            assert moves == []
    assert scheduled > 0, "no scheduler ever got through: the race tested nothing"


def test_two_identical_pending_approval_requests_never_both_succeed(service: Service) -> None:
    """Each trial: 10 threads send the same approval request for a fresh change: one lands."""
    manager, executive = user(service), user(service, Role.EXECUTIVE)
    for _trial in range(15):
        change = _change(service, manager, executive, "normal")
        # The change already has a pending request to the executive; ask another approver.
        other = user(service, Role.EXECUTIVE)
        request = RequestApproval(
            reference_type="change",
            reference=str(change.number),
            requested_action="create_change_request",
            approver=other,
        )
        results = race(service, *[(request, manager)] * 10)
        assert len(positions(results)) == 1, results
        assert refusal_codes(results) <= {"approval.duplicate_pending", "concurrency.busy"}


def test_a_new_request_lands_only_after_the_pending_one_is_decided(service: Service) -> None:
    """The decision releases the slot: identical requests racing it are either refused as
    duplicates or recorded after the decision, at most one of them."""
    manager, executive = user(service), user(service, Role.EXECUTIVE)
    for _trial in range(15):
        change = _change(service, manager, executive, "normal")
        approval = UUID(change.extra["approval_id"])
        request = RequestApproval(
            reference_type="change",
            reference=str(change.id),
            requested_action="create_change_request",
            approver=executive,
        )
        deny = DecideApproval(approval=approval, decision="denied")
        results = race(service, (deny, executive), *[(request, manager)] * 6)
        decided = results[0]
        assert isinstance(decided, Outcome), decided
        assert decided.position is not None
        landed = positions(results[1:])
        assert len(landed) <= 1
        assert all(p > decided.position for p in landed)
        assert refusal_codes(results[1:]) <= {"approval.duplicate_pending", "concurrency.busy"}
