"""The pure projection folds: one stored event in, the expected row changes out (no database)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.base import DomainEvent, Role
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    Incident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.ledger import IncidentLedger
from domain.severity import SeverityAssessment
from domain.user import RegisterUser, User
from projections.folds import Increment, Row, incident_rows, timeline_rows, user_rows
from tests.conftest import bootstrap

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DETECTED = START - timedelta(minutes=30)


class StepClock:
    """Each reading is one minute after the previous one."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@dataclass
class World:
    ledger: IncidentLedger
    clock: StepClock
    manager: UUID
    other_manager: UUID
    incident: UUID
    number: str

    def run(self, command: Any) -> list[DomainEvent]:
        """Run a command as the manager; the incident's events it appended."""
        before = self.ledger.repository.get(self.incident).version
        self.ledger.handle(command, self.manager)
        return list(self.ledger.events.get(self.incident, gt=before))


@pytest.fixture
def world() -> Iterator[World]:
    clock = StepClock()
    ledger = IncidentLedger(clock=clock)

    def register(first: str, role: Role, actor: UUID | None) -> UUID:
        return ledger.handle(
            RegisterUser(
                first_name=first,
                last_name="Tester",
                email=f"{first.lower()}@example.test",
                role=role,
                timezone="UTC",
            ),
            actor,
        ).id

    admin = bootstrap(ledger)
    manager = register("Mia", Role.INCIDENT_MANAGER, admin)
    other = register("Olu", Role.INCIDENT_MANAGER, admin)
    opened = ledger.handle(
        OpenIncident(
            title="Checkout latency",
            description="p99 above 3s",
            category="software",
            impact="medium",
            urgency="medium",
            reported_by=manager,
            detection_time=DETECTED,
            severity="P3",
            assigned_to=manager,
        ),
        manager,
    )
    assert opened.number is not None
    yield World(ledger, clock, manager, other, opened.id, opened.number)
    ledger.close()


def only(rows: list[Row], table: str) -> Row:
    matching = [row for row in rows if row.table == table]
    assert len(matching) == 1, rows
    return matching[0]


def opened_event(world: World) -> DomainEvent:
    first = next(iter(world.ledger.events.get(world.incident)))
    assert isinstance(first, Incident.Opened)
    return first


def test_incident_rows_insert_view_row_when_opened(world: World) -> None:
    event = opened_event(world)

    row = only(incident_rows(event), "incident_view")

    assert row.op == "insert"
    assert row.key == {"id": world.incident}
    expected = {
        "number": world.number,
        "title": "Checkout latency",
        "description": "p99 above 3s",
        "category": "software",
        "severity": "P3",
        "impact": "medium",
        "urgency": "medium",
        "reported_by": world.manager,
        "assigned_to": world.manager,
        "detection_time": DETECTED,
        "status": "open",
        "reopen_count": 0,
        "version": 1,
        "created_at": event.timestamp,
        "updated_at": event.timestamp,
    }
    assert row.values == expected


def test_incident_rows_stamp_resolved_at_when_status_becomes_resolved(world: World) -> None:
    (event,) = world.run(ChangeIncidentStatus(incident=world.number, status="resolved"))

    row = only(incident_rows(event), "incident_view")

    assert row.op == "update"
    assert row.key == {"id": world.incident}
    assert row.values == {
        "status": "resolved",
        "resolved_at": event.meta.occurred_at,
        "version": 2,
        "updated_at": event.timestamp,
    }


def test_incident_rows_stamp_closed_at_when_status_becomes_closed(world: World) -> None:
    world.run(ChangeIncidentStatus(incident=world.number, status="resolved"))
    (event,) = world.run(ChangeIncidentStatus(incident=world.number, status="closed"))

    row = only(incident_rows(event), "incident_view")

    assert row.values["status"] == "closed"
    assert row.values["closed_at"] == event.meta.occurred_at
    assert "resolved_at" not in row.values
    assert "reopen_count" not in row.values


def test_incident_rows_increment_reopen_count_when_resolved_goes_in_progress(
    world: World,
) -> None:
    world.run(ChangeIncidentStatus(incident=world.number, status="resolved"))
    (event,) = world.run(ChangeIncidentStatus(incident=world.number, status="in_progress"))

    row = only(incident_rows(event), "incident_view")

    assert row.values["status"] == "in_progress"
    assert row.values["reopen_count"] == Increment(1)
    assert "resolved_at" not in row.values


def test_incident_rows_leave_reopen_count_when_monitoring_goes_in_progress(
    world: World,
) -> None:
    world.run(ChangeIncidentStatus(incident=world.number, status="monitoring"))
    (event,) = world.run(ChangeIncidentStatus(incident=world.number, status="in_progress"))

    row = only(incident_rows(event), "incident_view")

    assert row.values == {"status": "in_progress", "version": 3, "updated_at": event.timestamp}


def test_incident_rows_update_changed_fields_when_details_and_severity_change(
    world: World,
) -> None:
    details, reprioritised = world.run(
        UpdateIncidentDetails(incident=world.number, title="Checkout down", severity="P2")
    )

    assert isinstance(details, Incident.DetailsUpdated)
    assert isinstance(reprioritised, Incident.Reprioritised)
    assert only(incident_rows(details), "incident_view").values == {
        "title": "Checkout down",
        "version": 2,
        "updated_at": details.timestamp,
    }
    assert only(incident_rows(reprioritised), "incident_view").values == {
        "severity": "P2",
        "version": 3,
        "updated_at": reprioritised.timestamp,
    }


def test_timeline_rows_insert_entry_and_link_when_opened(world: World) -> None:
    event = opened_event(world)

    rows = timeline_rows(event, 41)

    entry = only(rows, "timeline_entry")
    assert entry.op == "insert"
    assert entry.key == {"notification_id": 41}
    assert entry.values["record_id"] == world.incident
    assert entry.values["record_type"] == "Incident"
    assert entry.values["record_version"] == 1
    assert entry.values["event_type"] == "Incident.Opened"
    assert entry.values["actor_id"] == world.manager
    assert entry.values["command"] == "OpenIncident"
    assert entry.values["occurred_at"] == event.meta.occurred_at
    assert entry.values["recorded_at"] == event.timestamp
    changes = entry.values["changes"]
    assert changes["title"] == [None, "Checkout latency"]
    assert changes["severity"] == [None, "P3"]
    assert "assessment" not in changes  # absent values are not shown as changes
    link = only(rows, "timeline_links")
    assert (link.key, link.values, link.op) == (
        {"record_id": world.incident, "root_id": world.incident},
        {},
        "upsert",
    )


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            {"kind": "status", "status": "in_progress"},
            {"status": ["open", "in_progress"]},
        ),
        (
            {"kind": "details", "title": "Checkout down", "urgency": "high"},
            {"title": ["Checkout latency", "Checkout down"], "urgency": ["medium", "high"]},
        ),
        ({"kind": "severity", "severity": "P1"}, {"severity": ["P3", "P1"]}),
    ],
    ids=["status", "details", "severity"],
)
def test_timeline_rows_show_before_and_after_when_a_field_changes(
    world: World, command: dict[str, Any], expected: dict[str, list[Any]]
) -> None:
    kind = command.pop("kind")
    if kind == "status":
        (event,) = world.run(ChangeIncidentStatus(incident=world.number, **command))
    else:
        (event,) = world.run(UpdateIncidentDetails(incident=world.number, **command))

    entry = only(timeline_rows(event, 99), "timeline_entry")

    assert entry.values["changes"] == expected
    assert [row.table for row in timeline_rows(event, 99)] == ["timeline_entry"]


def test_timeline_rows_show_previous_assignee_when_reassigned(world: World) -> None:
    (event,) = world.run(AssignIncident(incident=world.number, assigned_to=world.other_manager))

    entry = only(timeline_rows(event, 5), "timeline_entry")

    assert entry.values["changes"] == {
        "assigned_to": [str(world.manager), str(world.other_manager)]
    }


def test_timeline_rows_stamp_time_when_event_is_a_bare_fact(world: World) -> None:
    (event,) = world.run(AcknowledgeIncident(incident=world.number))

    entry = only(timeline_rows(event, 6), "timeline_entry")

    assert entry.values["changes"] == {
        "acknowledged_at": [None, event.meta.occurred_at.isoformat()]
    }


def test_timeline_rows_add_assessment_as_context_when_reprioritised_by_assessment(
    world: World,
) -> None:
    assessment = SeverityAssessment(regulatory_implications=True)
    (event,) = world.run(UpdateIncidentDetails(incident=world.number, assessment=assessment))

    changes = only(timeline_rows(event, 8), "timeline_entry").values["changes"]

    assert changes["severity"] == ["P3", "P1"]
    assert changes["assessment"] == [None, assessment.model_dump(mode="json")]
    assert changes["decision"][0] is None
    assert changes["decision"][1]["rule"] == 3


def test_user_rows_upsert_profile_when_user_registered(world: World) -> None:
    (registered,) = list(world.ledger.events.get(world.manager))
    assert isinstance(registered, User.Registered)

    row = only(user_rows(registered), "user_view")

    assert row.op == "upsert"
    assert row.key == {"id": world.manager}
    assert row.values == {
        "first_name": "Mia",
        "last_name": "Tester",
        "email": "mia@example.test",
        "role": "incident_manager",
        "timezone": "UTC",
        "status": "active",
        "client_id": None,
    }
    actor = only(timeline_rows(registered, 2), "timeline_actor")
    assert actor.values == {"first_name": "Mia", "last_name": "Tester", "role": "incident_manager"}


def test_incident_rows_ignore_event_when_it_is_not_an_incident_event(world: World) -> None:
    (registered,) = list(world.ledger.events.get(world.manager))

    assert incident_rows(registered) == []
