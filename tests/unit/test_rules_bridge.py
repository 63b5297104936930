"""Every rule of the bridge (SPEC 4.3, SOP 4, 5) on the in-memory ledger: refused with its error
type and code, and nothing appended. Also SOP 5's "already closed": a refusal that records its
work note (and only that), remembered under its idempotency key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from domain.base import Role
from domain.bridge import (
    AddBridgeParticipants,
    Bridge,
    BridgeStatus,
    CloseBridge,
    OpenBridge,
    RemoveBridgeParticipant,
)
from domain.errors import Forbidden, LedgerError, NotFound, RecordedRefusal, RuleViolation
from domain.incident import AssignIncident, ChangeIncidentStatus, Incident
from domain.work_note import WorkNote
from tests.unit.test_rules import (
    Attempt,
    World,
    assert_refused,
    build_world,
    open_incident,
    register,
)


@dataclass
class BridgeWorld:
    w: World
    executive: UUID
    p1: str  # a P1 incident opened with its major-incident bridge, hosted by the manager
    bridge: str  # that bridge's number

    def run(self, command: Any, actor: UUID | None = None) -> Any:
        return self.w.run(command, actor)

    def status(self, incident: str, *statuses: str) -> None:
        for status in statuses:
            self.run(ChangeIncidentStatus(incident=incident, status=status))

    def get(self, ref: str) -> Any:
        return self.w.ledger.find(Bridge, ref, "bridge")


@pytest.fixture
def bw() -> Iterator[BridgeWorld]:
    w = build_world()
    opened = w.run(open_incident(reported_by=w.manager, assigned_to=w.manager, severity="P1"))
    yield BridgeWorld(
        w=w,
        executive=register(w.ledger, w.admin, "Eve", Role.EXECUTIVE),
        p1=opened.number,
        bridge=opened.extra["bridge_number"],
    )
    w.ledger.close()


def join(user: UUID, role: str = "technical_support") -> dict[str, Any]:
    return {"user": user, "role_in_bridge": role}


Case = Callable[[BridgeWorld], Attempt]
CASES: list[Any] = []


def case(code: str, error: type[LedgerError] = RuleViolation, *, how: str = "") -> Any:
    def add(build: Case) -> Case:
        CASES.append(pytest.param(build, code, error, id=f"{code}-{how}" if how else code))
        return build

    return add


# --- OpenBridge (SOP 4.1) -------------------------------------------------------------------------


@case("incident.not_open", how="open bridge on resolved incident")
def _open_on_resolved(b: BridgeWorld) -> Attempt:
    b.status(b.w.incident, "resolved")
    return Attempt(OpenBridge(incident=b.w.incident, bridge_type="technical"), b.w.manager)


@case("bridge.no_incident_manager", how="unassigned")
def _open_unassigned(b: BridgeWorld) -> Attempt:
    number = b.run(open_incident(reported_by=b.w.manager, severity="P3")).number
    return Attempt(OpenBridge(incident=number, bridge_type="technical"), b.w.manager)


@case("bridge.no_incident_manager", how="assigned to technical support")
def _open_assigned_to_support(b: BridgeWorld) -> Attempt:
    b.run(AssignIncident(incident=b.w.incident, assigned_to=b.w.support))
    return Attempt(OpenBridge(incident=b.w.incident, bridge_type="technical"), b.w.manager)


@case("user.inactive", how="host")
def _open_with_inactive_manager(b: BridgeWorld) -> Attempt:
    b.run(AssignIncident(incident=b.w.incident, assigned_to=b.w.other_manager))
    b.w.deactivate(b.w.other_manager)
    return Attempt(OpenBridge(incident=b.w.incident, bridge_type="technical"), b.w.manager)


@case("bridge.wrong_type", how="P3 major_incident")
def _open_major_on_p3(b: BridgeWorld) -> Attempt:
    return Attempt(OpenBridge(incident=b.w.incident, bridge_type="major_incident"), b.w.manager)


@case("bridge.wrong_type", how="P1 coordination")
def _open_coordination_on_p1(b: BridgeWorld) -> Attempt:
    # A P1 assigned to technical support has no bridge; then a manager takes it.
    opened = open_incident(reported_by=b.w.manager, assigned_to=b.w.support, severity="P1")
    number = b.run(opened).number
    b.run(AssignIncident(incident=number, assigned_to=b.w.manager))
    return Attempt(OpenBridge(incident=number, bridge_type="coordination"), b.w.manager)


@case("bridge.already_active")
def _open_second_bridge(b: BridgeWorld) -> Attempt:
    return Attempt(OpenBridge(incident=b.p1, bridge_type="major_incident"), b.w.manager)


@case("user.inactive", how="initial participant")
def _open_with_inactive_participant(b: BridgeWorld) -> Attempt:
    b.w.deactivate(b.w.support)
    command = OpenBridge(
        incident=b.w.incident, bridge_type="technical", participants=[join(b.w.support)]
    )
    return Attempt(command, b.w.manager)


@case("bridge.already_participant", how="initial participant is the host")
def _open_with_host_as_participant(b: BridgeWorld) -> Attempt:
    command = OpenBridge(
        incident=b.w.incident, bridge_type="technical", participants=[join(b.w.manager)]
    )
    return Attempt(command, b.w.manager)


@case("incident.not_found", NotFound, how="open bridge")
def _open_on_unknown_incident(b: BridgeWorld) -> Attempt:
    return Attempt(OpenBridge(incident="INC9999999", bridge_type="technical"), b.w.manager)


@case("occurred_at.before_detection", how="open bridge")
def _open_before_detection(b: BridgeWorld) -> Attempt:
    from tests.unit.test_rules import BEFORE_DETECTION

    command = OpenBridge(
        incident=b.w.incident, bridge_type="technical", occurred_at=BEFORE_DETECTION
    )
    return Attempt(command, b.w.manager)


@case("role.forbidden", Forbidden, how="technical support opens a bridge")
def _support_opens_bridge(b: BridgeWorld) -> Attempt:
    return Attempt(OpenBridge(incident=b.w.incident, bridge_type="technical"), b.w.support)


# --- AddBridgeParticipants (SOP 4.2) --------------------------------------------------------------


@case("bridge.host_reserved")
def _add_as_host(b: BridgeWorld) -> Attempt:
    command = AddBridgeParticipants(bridge=b.bridge, participants=[join(b.executive, "host")])
    return Attempt(command, b.w.manager)


@case("bridge.already_participant", how="added twice")
def _add_twice(b: BridgeWorld) -> Attempt:
    b.run(AddBridgeParticipants(bridge=b.bridge, participants=[join(b.w.support)]))
    command = AddBridgeParticipants(
        bridge=b.bridge, participants=[join(b.executive, "executive"), join(b.w.support)]
    )
    return Attempt(command, b.w.manager)


@case("user.inactive", how="participant")
def _add_inactive(b: BridgeWorld) -> Attempt:
    b.w.deactivate(b.executive)
    command = AddBridgeParticipants(bridge=b.bridge, participants=[join(b.executive, "executive")])
    return Attempt(command, b.w.manager)


@case("user.not_found", NotFound, how="participant")
def _add_unknown_user(b: BridgeWorld) -> Attempt:
    command = AddBridgeParticipants(bridge=b.bridge, participants=[join(uuid4())])
    return Attempt(command, b.w.manager)


@case("bridge.closed", how="add participants")
def _add_to_closed(b: BridgeWorld) -> Attempt:
    b.status(b.p1, "resolved")
    b.run(CloseBridge(bridge=b.bridge))
    command = AddBridgeParticipants(bridge=b.bridge, participants=[join(b.w.support)])
    return Attempt(command, b.w.manager)


@case("bridge.not_found", NotFound)
def _add_to_unknown_bridge(b: BridgeWorld) -> Attempt:
    command = AddBridgeParticipants(bridge="BRG9999999", participants=[join(b.w.support)])
    return Attempt(command, b.w.manager)


# --- RemoveBridgeParticipant ----------------------------------------------------------------------


@case("bridge.not_participant", how="never joined")
def _leave_never_joined(b: BridgeWorld) -> Attempt:
    return Attempt(RemoveBridgeParticipant(bridge=b.bridge, user=b.w.support), b.w.manager)


@case("bridge.not_participant", how="left already")
def _leave_twice(b: BridgeWorld) -> Attempt:
    b.run(AddBridgeParticipants(bridge=b.bridge, participants=[join(b.w.support)]))
    b.run(RemoveBridgeParticipant(bridge=b.bridge, user=b.w.support))
    return Attempt(RemoveBridgeParticipant(bridge=b.bridge, user=b.w.support), b.w.manager)


@case("bridge.host_cannot_leave")
def _host_leaves(b: BridgeWorld) -> Attempt:
    return Attempt(RemoveBridgeParticipant(bridge=b.bridge, user=b.w.manager), b.w.manager)


@case("bridge.closed", how="leave")
def _leave_closed(b: BridgeWorld) -> Attempt:
    b.run(AddBridgeParticipants(bridge=b.bridge, participants=[join(b.w.support)]))
    b.status(b.p1, "resolved")
    b.run(CloseBridge(bridge=b.bridge))
    return Attempt(RemoveBridgeParticipant(bridge=b.bridge, user=b.w.support), b.w.manager)


# --- CloseBridge (SOP 5) --------------------------------------------------------------------------


@case("bridge.incident_not_resolved", how="in progress")
def _close_while_in_progress(b: BridgeWorld) -> Attempt:
    return Attempt(CloseBridge(bridge=b.bridge), b.w.manager)


@case("bridge.incident_not_resolved", how="reopened")
def _close_after_reopen(b: BridgeWorld) -> Attempt:
    b.status(b.p1, "resolved", "in_progress")
    return Attempt(CloseBridge(bridge=b.bridge), b.w.manager)


@case("bridge.host_inactive")
def _close_with_inactive_host(b: BridgeWorld) -> Attempt:
    b.status(b.p1, "monitoring")
    b.w.deactivate(b.w.manager)
    return Attempt(CloseBridge(bridge=b.bridge), b.w.other_manager)


@case("role.forbidden", Forbidden, how="account manager closes a bridge")
def _account_manager_closes(b: BridgeWorld) -> Attempt:
    b.status(b.p1, "resolved")
    return Attempt(CloseBridge(bridge=b.bridge), b.w.account_manager)


# --- the incident side ----------------------------------------------------------------------------


@case("incident.bridge_active")
def _close_incident_with_active_bridge(b: BridgeWorld) -> Attempt:
    b.status(b.p1, "resolved")
    return Attempt(ChangeIncidentStatus(incident=b.p1, status="closed"), b.w.manager)


@pytest.mark.parametrize(("build", "code", "error"), CASES)
def test_bridge_command_is_refused_with_its_code_and_appends_nothing(
    bw: BridgeWorld, build: Case, code: str, error: type[LedgerError]
) -> None:
    attempt = build(bw)
    assert_refused(bw.w, attempt.command, attempt.actor, error, code)


# --- malformed commands (422 at the boundary) -----------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda u: AddBridgeParticipants(bridge="BRG0000001", participants=[join(u), join(u)]),
        lambda u: AddBridgeParticipants(bridge="BRG0000001", participants=[]),
        lambda u: OpenBridge(
            incident="INC0000001", bridge_type="technical", participants=[join(u)] * 2
        ),
        lambda u: AddBridgeParticipants(
            bridge="BRG0000001", participants=[{"user": u, "role_in_bridge": "observer"}]
        ),
    ],
    ids=["user twice", "nobody", "open with user twice", "unknown role"],
)
def test_malformed_participants_are_invalid_input(build: Callable[[UUID], Any]) -> None:
    with pytest.raises(ValidationError):
        build(uuid4())


# --- SOP 5 step 2: "already closed" records its work note and answers 409 -------------------------


def _closed_bridge(b: BridgeWorld) -> None:
    b.status(b.p1, "resolved")
    b.run(CloseBridge(bridge=b.bridge))


def _stored(b: BridgeWorld, since: int) -> list[Any]:
    ledger = b.w.ledger
    return [
        ledger.mapper.to_domain_event(n)
        for n in ledger.recorder.select_notifications(since + 1, 100)
    ]


def test_close_closed_bridge_records_the_work_note_and_is_refused(bw: BridgeWorld) -> None:
    _closed_bridge(bw)
    bridge_version = bw.get(bw.bridge).version
    head = bw.w.head()

    with pytest.raises(RecordedRefusal) as refused:
        bw.w.ledger.handle(CloseBridge(bridge=bw.bridge), bw.w.other_manager)

    assert refused.value.code == "bridge.already_closed"
    assert isinstance(refused.value, RuleViolation)  # a 409
    (event,) = _stored(bw, head)
    assert isinstance(event, WorkNote.Added)
    assert event.note_text == "Bridge already closed."
    assert event.incident_id == bw.w.ledger.find(Incident, bw.p1, "incident").id
    assert event.meta.actor == bw.w.other_manager
    assert refused.value.details["work_note_id"] == str(event.originator_id)
    assert bw.get(bw.bridge).version == bridge_version  # the bridge itself is unchanged


def test_already_closed_retried_with_its_key_answers_the_same_and_records_nothing(
    bw: BridgeWorld,
) -> None:
    _closed_bridge(bw)
    command = CloseBridge(bridge=bw.bridge)
    head = bw.w.head()
    with pytest.raises(RecordedRefusal) as first:
        bw.w.ledger.handle(command, bw.w.manager, idempotency_key="close-1", request_hash="h")
    assert not first.value.details.get("replayed")
    after_first = bw.w.head()
    assert after_first == head + 1

    with pytest.raises(RecordedRefusal) as again:
        bw.w.ledger.handle(command, bw.w.manager, idempotency_key="close-1", request_hash="h")

    assert again.value.code == "bridge.already_closed"
    assert again.value.details["replayed"] is True
    assert again.value.details["work_note_id"] == first.value.details["work_note_id"]
    assert bw.w.head() == after_first
    # Without the key, each attempt is a new step of the SOP: a new work note each time.
    with pytest.raises(RecordedRefusal):
        bw.w.ledger.handle(command, bw.w.manager)
    assert bw.w.head() == after_first + 1


def test_bridge_closes_once_and_leaves_the_incident(bw: BridgeWorld) -> None:
    _closed_bridge(bw)
    bridge = bw.get(bw.bridge)
    incident = bw.w.ledger.find(Incident, bw.p1, "incident")
    assert bridge.status == BridgeStatus.CLOSED
    assert incident.active_bridge_id is None
    assert incident.bridge_ids == [bridge.id]
    bw.run(ChangeIncidentStatus(incident=bw.p1, status="closed"))  # now the incident may close
