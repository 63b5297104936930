"""SOP 2.1 step 4: a P1/P2 incident with an assigned manager gets a major-incident bridge in the
same append, and moves to in_progress; without an assignee it is still recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Actor


def test_open_p1_with_manager_opens_major_incident_bridge(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    opened = open_incident(
        severity=None, assessment={"complete_outage": True, "no_workaround": True}
    )

    assert opened["severity"] == "P1"
    assert opened["status"] == "in_progress"
    assert opened["extra"]["bridge_number"].startswith("BRG")
    timeline = client.get(f"/incidents/{opened['number']}/timeline", headers=manager.headers)
    entries = timeline.json()["entries"]
    bridge = [e for e in entries if e["event_type"] == "Bridge.Opened"]
    assert len(bridge) == 1
    assert bridge[0]["changes"]["bridge_type"] == [None, "major_incident"]
    assert bridge[0]["changes"]["host"] == [None, manager.id]
    moved = [e for e in entries if e["event_type"] == "Incident.StatusChanged"]
    assert moved[0]["changes"]["status"] == ["open", "in_progress"]
    # One command, one append: every event carries the same command id.
    opening = {e["command_id"] for e in entries if e["command"] == "OpenIncident"}
    assert len(opening) == 1


def test_open_p2_without_assignee_records_incident_without_bridge(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    opened = open_incident(severity="P2", assigned_to=None)

    assert opened["status"] == "open"
    assert "bridge_number" not in opened["extra"]
    entries = client.get(f"/incidents/{opened['number']}/timeline", headers=manager.headers).json()[
        "entries"
    ]
    assert [e["event_type"] for e in entries] == ["Incident.Opened"]


def test_open_p3_with_manager_opens_no_bridge(
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    opened = open_incident(severity="P3")

    assert opened["status"] == "open"
    assert "bridge_number" not in opened["extra"]


def test_open_p1_assigned_to_technical_support_opens_no_bridge(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    """Only an incident manager hosts a bridge: a P1 assigned to technical support is recorded,
    stays open, and its missing bridge is an obligation, not a refusal."""
    support = make_user("technical_support")
    opened = open_incident(severity="P1", assigned_to=support.id)

    assert opened["status"] == "open"
    assert "bridge_number" not in opened["extra"]
    got = client.get(f"/incidents/{opened['number']}", headers=manager.headers).json()
    assert got["assigned_to"] == support.id


def test_open_incident_refused_when_assignee_may_not_work_incidents(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Callable[..., dict[str, Any]],
) -> None:
    analyst = make_user("analyst")
    body = {
        "title": "Assigned to an analyst",
        "description": "x",
        "category": "software",
        "impact": "low",
        "urgency": "low",
        "reported_by": manager.id,
        "detection_time": "2026-01-01T00:00:00Z",
        "severity": "P2",
        "assigned_to": analyst.id,
    }
    refused = refuse(
        lambda: client.post("/incidents", json=body, headers=manager.headers),
        409,
        "user.wrong_role",
    )
    assert "incident_manager" in refused["message"]
    number = open_incident()["number"]
    refuse(
        lambda: client.post(
            f"/incidents/{number}/assign", json={"assigned_to": analyst.id}, headers=manager.headers
        ),
        409,
        "user.wrong_role",
    )
