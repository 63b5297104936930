"""The bridge's rules hold under concurrency (real PostgreSQL, racing threads): a bridge never
closes after the incident it serves was reopened; a user never joins a bridge twice; an incident
never gets two active bridges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from api.service import Service
from domain.base import Role
from domain.bridge import AddBridgeParticipants, Bridge, BridgeStatus, CloseBridge, OpenBridge
from domain.context import Outcome
from domain.errors import LedgerError
from domain.incident import ChangeIncidentStatus, Incident, IncidentStatus, OpenIncident
from tests.integration.test_cross_record_races import positions, race, refusal_codes, user


def p1_with_bridge(service: Service, manager: UUID) -> tuple[str, str]:
    opened = service.ledger.handle(
        OpenIncident(
            title="Racing the bridge",
            description="close and reopen at once",
            category="network",
            impact="critical",
            urgency="critical",
            reported_by=manager,
            detection_time=datetime.now(UTC) - timedelta(hours=1),
            severity="P1",
            assigned_to=manager,
        ),
        manager,
    )
    assert opened.number is not None
    return opened.number, opened.extra["bridge_number"]


def test_bridge_never_closes_after_the_incident_is_reopened(service: Service) -> None:
    """Each trial: a resolved P1; one thread reopens it while 4 close its bridge. A close that
    succeeds was recorded before the reopen; every other close is refused."""
    manager = user(service)
    late = []
    for _trial in range(30):
        number, bridge = p1_with_bridge(service, manager)
        service.ledger.handle(ChangeIncidentStatus(incident=number, status="resolved"), manager)
        reopen = ChangeIncidentStatus(incident=number, status=IncidentStatus.IN_PROGRESS)
        results = race(service, (reopen, manager), *[(CloseBridge(bridge=bridge), manager)] * 4)
        reopened = results[0]
        if isinstance(reopened, LedgerError):
            # A close committed first (it saves the incident: the bridge leaves it), so the
            # reopen, which names the incident, is a 409 like any concurrent change. Again:
            assert reopened.code == "concurrency.conflict", reopened
            reopened = service.ledger.handle(reopen, manager)
        assert isinstance(reopened, Outcome)
        assert reopened.position is not None
        closes = positions(results[1:])
        assert len(closes) <= 1
        late += [p for p in closes if p > reopened.position]
        assert refusal_codes(results[1:]) <= {
            "bridge.incident_not_resolved",  # decided (again) after the reopen
            "bridge.already_closed",  # after another thread's close (its note is recorded)
            "concurrency.conflict",  # the bridge moved under a close that named it
            "concurrency.busy",
        }
        state = service.ledger.find(Bridge, bridge, "bridge")
        incident = service.ledger.find(Incident, number, "incident")
        assert incident.status == IncidentStatus.IN_PROGRESS
        if closes:
            assert (state.status, incident.active_bridge_id) == (BridgeStatus.CLOSED, None)
        else:
            assert (state.status, incident.active_bridge_id) == (BridgeStatus.ACTIVE, state.id)
    assert late == [], f"{len(late)} bridges closed after their incident was reopened"


def test_a_user_joins_a_bridge_once_when_threads_add_them_at_once(service: Service) -> None:
    manager = user(service)
    for _trial in range(10):
        _number, bridge = p1_with_bridge(service, manager)
        joiner = user(service, Role.TECHNICAL_SUPPORT)
        add = AddBridgeParticipants(
            bridge=bridge, participants=[{"user": joiner, "role_in_bridge": "technical_support"}]
        )
        results = race(service, *[(add, manager)] * 8)
        assert len(positions(results)) == 1, results
        assert refusal_codes(results) <= {
            "bridge.already_participant",
            "concurrency.conflict",
            "concurrency.busy",
        }
        state = service.ledger.find(Bridge, bridge, "bridge")
        assert [t.user for t in state.participants].count(joiner) == 1


def test_an_incident_gets_one_active_bridge_when_threads_open_them_at_once(
    service: Service,
) -> None:
    manager = user(service)
    for _trial in range(10):
        opened = service.ledger.handle(
            OpenIncident(
                title="Two bridges?",
                description="race",
                category="software",
                impact="medium",
                urgency="medium",
                reported_by=manager,
                detection_time=datetime.now(UTC) - timedelta(minutes=30),
                severity="P3",
                assigned_to=manager,
            ),
            manager,
        )
        number = str(opened.number)
        results = race(
            service, *[(OpenBridge(incident=number, bridge_type="technical"), manager)] * 6
        )
        assert len(positions(results)) == 1, results
        assert refusal_codes(results) <= {"bridge.already_active", "concurrency.busy"}
        incident = service.ledger.find(Incident, number, "incident")
        assert len(incident.bridge_ids) == 1
