"""SOP 4 and 5, on the in-memory ledger and on PostgreSQL: open a bridge (with its follow-ups in the
same append), add participants (one work note), leave and rejoin (tenures kept), the host following
the incident's manager, close (the work note names the acting user), and "already closed"."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.base import Role
from domain.bridge import (
    AddBridgeParticipants,
    Bridge,
    BridgeStatus,
    BridgeType,
    CloseBridge,
    OpenBridge,
    RemoveBridgeParticipant,
    RoleInBridge,
)
from domain.errors import RecordedRefusal, RuleViolation
from domain.incident import AssignIncident, ChangeIncidentStatus, Incident, IncidentStatus
from domain.user import DeactivateUser
from domain.work_note import WorkNote
from tests.scenarios.conftest import Driver, Step, qualname


def join(user: UUID, role: str = "technical_support") -> dict[str, Any]:
    return {"user": user, "role_in_bridge": role}


def tenures(bridge: Bridge) -> list[tuple[UUID, RoleInBridge, bool]]:
    """(user, role, still there) of each tenure, in order."""
    return [(t.user, t.role_in_bridge, t.left_at is None) for t in bridge.participants]


def note_text(d: Driver, step: Step) -> str:
    (note,) = step.of(WorkNote.Added)
    return str(note.note_text)


def p1_with_bridge(d: Driver, manager: UUID) -> tuple[str, str]:
    opened = d.open_incident(manager, severity="P1")
    number, bridge = opened.outcome.number, opened.outcome.extra["bridge_number"]
    assert number is not None
    return number, bridge


def test_sop4_1_open_bridge_moves_incident_and_adds_participants_in_one_append(
    driver: Driver,
) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    executive = d.user(Role.EXECUTIVE, "Eve")
    incident = d.open_incident(manager)  # P3, open
    number = incident.outcome.number
    assert number is not None

    opened = d.run(
        OpenBridge(
            incident=number,
            bridge_type="technical",
            participants=[join(support), join(executive, "executive")],
        ),
        manager,
    )

    assert opened.types == [
        "Incident.StatusChanged",
        "Incident.BridgeOpened",
        "Counter.NumberIssued",
        "Bridge.Opened",
        "Bridge.ParticipantsAdded",
        "WorkNote.Added",
    ]
    opened.assert_one_command(manager)
    bridge = d.get(opened.id)
    assert (bridge.bridge_type, bridge.host, bridge.status) == (
        BridgeType.TECHNICAL,
        manager,
        BridgeStatus.ACTIVE,
    )
    assert tenures(bridge) == [
        (manager, RoleInBridge.HOST, True),
        (support, RoleInBridge.TECHNICAL_SUPPORT, True),
        (executive, RoleInBridge.EXECUTIVE, True),
    ]
    state = d.get(incident.id)
    assert (state.status, state.active_bridge_id, state.bridge_ids) == (
        IncidentStatus.IN_PROGRESS,
        bridge.id,
        [bridge.id],
    )
    assert note_text(d, opened) == (
        f"Bridge participant(s) added to bridge {bridge.number} for incident {number}"
    )
    assert opened.outcome.extra["incident_status"] == "in_progress"


def test_sop4_1_refused_participant_records_nothing_of_the_opening(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    leaver = d.user(Role.TECHNICAL_SUPPORT, "Lee")
    incident = d.open_incident(manager)
    d.run(DeactivateUser(user=leaver))
    head = d.ledger.recorder.max_notification_id()

    with pytest.raises(RuleViolation) as refused:
        d.ledger.handle(
            OpenBridge(
                incident=str(incident.outcome.number),
                bridge_type="coordination",
                participants=[join(leaver)],
            ),
            manager,
        )

    assert refused.value.code == "user.inactive"
    assert d.ledger.recorder.max_notification_id() == head
    state = d.get(incident.id)
    assert (state.status, state.active_bridge_id) == (IncidentStatus.OPEN, None)


def test_sop2_1_major_incident_bridge_is_recorded_on_the_incident(driver: Driver) -> None:
    """OpenIncident's P1/P2 follow-up is OpenBridge's code: the incident knows its bridge."""
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    opened = d.open_incident(manager, severity="P2")
    incident = d.get(opened.id)
    bridge_id = UUID(opened.outcome.extra["bridge_id"])
    assert (incident.active_bridge_id, incident.bridge_ids) == (bridge_id, [bridge_id])
    assert tenures(d.get(bridge_id)) == [(manager, RoleInBridge.HOST, True)]


def test_sop4_2_participants_join_once_leave_and_rejoin_with_tenure_kept(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    account = d.user(Role.ACCOUNT_MANAGER, "Ada")
    number, bridge_number = p1_with_bridge(d, manager)

    added = d.run(
        AddBridgeParticipants(
            bridge=bridge_number, participants=[join(support), join(account, "account_manager")]
        ),
        manager,
    )
    assert added.types == ["Bridge.ParticipantsAdded", "WorkNote.Added"]
    added.assert_one_command(manager)
    assert note_text(d, added) == (
        f"Bridge participant(s) added to bridge {bridge_number} for incident {number}"
    )
    (note,) = added.of(WorkNote.Added)
    assert note.incident_id == d.get(added.id).incident_id

    left = d.run(RemoveBridgeParticipant(bridge=bridge_number, user=support), manager)
    assert left.types == ["Bridge.ParticipantLeft"]
    rejoined = d.run(
        AddBridgeParticipants(bridge=bridge_number, participants=[join(support)]), manager
    )
    assert rejoined.types == ["Bridge.ParticipantsAdded", "WorkNote.Added"]

    bridge = d.get(added.id)
    assert tenures(bridge) == [
        (manager, RoleInBridge.HOST, True),
        (support, RoleInBridge.TECHNICAL_SUPPORT, False),
        (account, RoleInBridge.ACCOUNT_MANAGER, True),
        (support, RoleInBridge.TECHNICAL_SUPPORT, True),
    ]
    first = bridge.participants[1]
    assert first.left_at == left.events[0].meta.occurred_at
    assert first.joined_at == added.events[0].meta.occurred_at


def test_host_follows_the_incident_manager(driver: Driver) -> None:
    d = driver
    mia = d.user(Role.INCIDENT_MANAGER, "Mia")
    olu = d.user(Role.INCIDENT_MANAGER, "Olu")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    number, bridge_number = p1_with_bridge(d, mia)

    # Technical support does not host a bridge: the host stays.
    to_support = d.run(AssignIncident(incident=number, assigned_to=support), mia)
    assert to_support.types == ["Incident.Assigned"]
    assert d.get(to_support.id).assigned_to == support

    to_olu = d.run(AssignIncident(incident=number, assigned_to=olu), mia)

    assert to_olu.types == ["Incident.Assigned", "Bridge.HostChanged"]
    to_olu.assert_one_command(mia)
    (changed,) = to_olu.of(Bridge.HostChanged)
    assert (changed.host, changed.previous) == (olu, mia)
    bridge = d.get(changed.originator_id)
    assert bridge.host == olu
    assert tenures(bridge) == [(mia, RoleInBridge.HOST, False), (olu, RoleInBridge.HOST, True)]
    # The new host is the one SOP 5 checks: the old one may be gone.
    d.run(ChangeIncidentStatus(incident=number, status="resolved"), olu)
    d.run(DeactivateUser(user=mia))
    closed = d.run(CloseBridge(bridge=bridge_number), olu)
    assert closed.types[0] == "Bridge.Closed"


def test_sop5_close_bridge_names_the_acting_user_then_already_closed(driver: Driver) -> None:
    d = driver
    mia = d.user(Role.INCIDENT_MANAGER, "Mia")
    olu = d.user(Role.INCIDENT_MANAGER, "Olu")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    number, bridge_number = p1_with_bridge(d, mia)
    d.run(AddBridgeParticipants(bridge=bridge_number, participants=[join(support)]), mia)
    d.run(ChangeIncidentStatus(incident=number, status="monitoring"), mia)

    closed = d.run(CloseBridge(bridge=bridge_number), olu)

    assert closed.types == ["Bridge.Closed", "Incident.BridgeClosed", "WorkNote.Added"]
    closed.assert_one_command(olu)
    assert note_text(d, closed) == (
        f"Bridge closed for the incident {number} by Olu Tester after all activities completed."
    )
    bridge = d.get(closed.id)
    moment = closed.events[0].meta.occurred_at
    assert (bridge.status, bridge.end_time) == (BridgeStatus.CLOSED, moment)
    assert all(t.left_at == moment for t in bridge.participants)
    incident = d.get(bridge.incident_id)
    assert isinstance(incident, Incident)
    assert incident.active_bridge_id is None

    head = d.ledger.recorder.max_notification_id() or 0
    with pytest.raises(RecordedRefusal) as refused:
        d.ledger.handle(CloseBridge(bridge=bridge_number), olu)
    assert refused.value.code == "bridge.already_closed"
    stored = d.ledger.recorder.select_notifications(head + 1, 10)
    events = [d.ledger.mapper.to_domain_event(n) for n in stored]
    assert [qualname(e) for e in events] == ["WorkNote.Added"]
    assert events[0].note_text == "Bridge already closed."
    assert events[0].incident_id == incident.id
    assert d.get(closed.id).version == bridge.version

    # The incident may close now that its bridge is closed; a new bridge may open after a reopen.
    d.run(ChangeIncidentStatus(incident=number, status="resolved"), mia)
    d.run(ChangeIncidentStatus(incident=number, status="in_progress"), mia)
    again = d.run(OpenBridge(incident=number, bridge_type="major_incident"), mia)
    assert d.get(again.id).number != bridge_number
    assert d.get(incident.id).bridge_ids == [bridge.id, again.id]
