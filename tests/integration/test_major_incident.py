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
