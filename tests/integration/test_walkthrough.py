"""The scripted walk through HTTP: an incident from opening to closing, then its audit timeline
(JSON and CSV) and the incident list's filters and keyset pagination."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def register(client: TestClient, admin: Actor) -> Callable[..., Actor]:
    """Register a named user through the API and give them an API key."""

    def make(role: str, first_name: str, last_name: str) -> Actor:
        created = client.post(
            "/users",
            json={
                "first_name": first_name,
                "last_name": last_name,
                "email": f"{first_name}.{uuid4().hex[:8]}@example.test",
                "role": role,
                "timezone": "America/New_York",
            },
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
        assert created.json()["type"] == "User"
        user_id = created.json()["id"]
        key = client.post(
            f"/users/{user_id}/api-keys", json={"label": "walk"}, headers=admin.headers
        )
        assert key.status_code == 201, key.text
        assert key.json()["key"]
        return Actor(user_id, {"Authorization": f"Bearer {key.json()['key']}"})

    return make


def test_walk_incident_from_open_to_closed_records_every_step(
    client: TestClient, register: Callable[..., Actor]
) -> None:
    started = datetime.now(UTC)
    alice = register("incident_manager", "Alice", "Opener")
    bob = register("incident_manager", "Bob", "Owner")
    erin = register("executive", "Erin", "Boss")
    detected = started - timedelta(hours=2)

    # SOP 2.1: open with an assessment; rule 6 (multiple departments) gives P2
    opened = client.post(
        "/incidents",
        json={
            "title": "Orders API returns 503",
            "description": "Finance and sales cannot book orders",
            "category": "software",
            "impact": "high",
            "urgency": "high",
            "reported_by": alice.id,
            "detection_time": detected.isoformat(),
            "assessment": {"multiple_departments": True},
        },
        headers=alice.headers,
    )
    assert opened.status_code == 201, opened.text
    assert (opened.json()["severity"], opened.json()["status"]) == ("P2", "open")
    number = opened.json()["number"]
    assert number.startswith("INC")
    assert len(number) == 10

    # acknowledged, backdated to when it really happened
    acknowledged_at = detected + timedelta(minutes=10)
    steps = [
        (alice, "acknowledge", {"occurred_at": acknowledged_at.isoformat()}),
        (alice, "assign", {"assigned_to": bob.id}),
        (bob, "work-notes", {"note_type": "troubleshooting", "note_text": "Pool exhausted"}),
        (bob, "escalations", {"escalated_to": erin.id, "reason": "Needs a vendor call"}),
    ]
    for actor, path, body in steps:
        response = client.post(f"/incidents/{number}/{path}", json=body, headers=actor.headers)
        assert response.status_code in (200, 201), (path, response.text)
        if path == "escalations":
            escalation = response.json()
            assert escalation["status"] == "pending"
    approved = client.post(
        f"/escalations/{escalation['id']}/status",
        json={"status": "approved"},
        headers=alice.headers,
    )
    assert approved.status_code == 200, approved.text

    for status in ("in_progress", "monitoring", "resolved", "closed"):
        moved = client.post(
            f"/incidents/{number}/status", json={"status": status}, headers=bob.headers
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status
    report_number = moved.json()["extra"]["report_number"]
    assert report_number.startswith("RPT")

    state = client.get(f"/incidents/{number}", headers=alice.headers).json()
    assert state["status"] == "closed"
    assert state["assigned_to"] == bob.id
    assert _when(state["acknowledged_at"]) == acknowledged_at
    assert _when(state["resolved_at"]) <= _when(state["closed_at"])
    assert _when(state["closed_at"]) >= started

    # Bob's writes came last: Alice asks the timeline to include them.
    timeline = client.get(
        f"/incidents/{number}/timeline",
        headers={**alice.headers, "Ledger-Min-Position": moved.headers["Ledger-Position"]},
    )
    assert timeline.status_code == 200, timeline.text
    assert timeline.json()["incident"] == number
    entries = timeline.json()["entries"]
    assert [e["event_type"] for e in entries] == [
        "Incident.Opened",
        "Incident.Acknowledged",
        "Incident.Assigned",
        "WorkNote.Added",
        "Escalation.Created",
        "Escalation.StatusUpdated",
        "WorkNote.Added",
        "Incident.StatusChanged",
        "Incident.StatusChanged",
        "Incident.StatusChanged",
        "Incident.StatusChanged",
        "IncidentReport.Generated",
    ]
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    assert [e["actor_name"] for e in entries] == [
        "Alice Opener", "Alice Opener", "Alice Opener", "Bob Owner", "Bob Owner",
        "Alice Opener", "Alice Opener", "Bob Owner", "Bob Owner", "Bob Owner", "Bob Owner",
        "Bob Owner",
    ]  # fmt: skip
    assert {e["actor_role"] for e in entries} == {"incident_manager"}
    assert [e["actor_id"] for e in entries[:3]] == [alice.id] * 3
    for entry in entries:
        assert _when(entry["occurred_at"]) >= detected
        assert _when(entry["recorded_at"]) >= started
        assert entry["changes"], entry

    opened_entry = entries[0]["changes"]
    assert opened_entry["severity"] == [None, "P2"]
    assert opened_entry["decision"][1]["rule"] == 6
    assert opened_entry["title"] == [None, "Orders API returns 503"]

    # a backdated step keeps when it happened; recorded_at is when the ledger stored it
    ack = entries[1]
    assert _when(ack["occurred_at"]) == acknowledged_at
    assert _when(ack["recorded_at"]) >= started > acknowledged_at
    assert _when(ack["changes"]["acknowledged_at"][1]) == acknowledged_at

    assert entries[2]["changes"]["assigned_to"] == [None, bob.id]
    assert entries[3]["changes"]["note_text"] == [None, "Pool exhausted"]
    assert entries[4]["changes"]["escalated_to"] == [None, erin.id]
    assert entries[5]["changes"]["status"] == ["pending", "approved"]
    assert entries[6]["changes"]["note_text"] == [None, "Escalation status updated to approved."]
    assert entries[5]["command_id"] == entries[6]["command_id"]  # one command, one append
    assert [e["changes"]["status"] for e in entries[7:11]] == [
        ["open", "in_progress"],
        ["in_progress", "monitoring"],
        ["monitoring", "resolved"],
        ["resolved", "closed"],
    ]
    report = entries[11]
    assert report["changes"]["report_content"] == [None, f"Incident {number} has been closed."]
    assert report["changes"]["number"] == [None, report_number]
    assert report["record_type"] == "IncidentReport"
    assert report["command_id"] == entries[10]["command_id"]
    assert report["command"] == "ChangeIncidentStatus"

    exported = client.get(
        f"/incidents/{number}/timeline", params={"format": "csv"}, headers=alice.headers
    )
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert f"{number}-timeline.csv" in exported.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(exported.text))
    assert reader.fieldnames is not None
    assert reader.fieldnames[0] == "position"
    assert {
        "occurred_at",
        "recorded_at",
        "event_type",
        "actor_name",
        "actor_role",
        "changes",
    } <= set(reader.fieldnames)
    rows = list(reader)
    assert len(rows) == len(entries)
    assert [r["event_type"] for r in rows] == [e["event_type"] for e in entries]
    assert [r["actor_name"] for r in rows] == [e["actor_name"] for e in entries]
    assert [json.loads(r["changes"]) for r in rows] == [e["changes"] for e in entries]
    assert _when(rows[1]["occurred_at"].replace(" ", "T")) == acknowledged_at


def test_list_incidents_filters_and_pages(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    token = uuid4().hex[:12]
    now = datetime.now(UTC)

    def open_one(name: str, severity: str, days: int) -> str:
        created = open_incident(
            title=f"{token} {name}",
            severity=severity,
            assigned_to=None,
            detection_time=(now - timedelta(days=days)).isoformat(),
        )
        return str(created["number"])

    alpha, beta, gamma = (
        open_one("alpha", "P1", 3),
        open_one("beta", "P2", 2),
        open_one("gamma", "P3", 1),
    )
    resolved = client.post(
        f"/incidents/{beta}/status", json={"status": "resolved"}, headers=manager.headers
    )
    assert resolved.status_code == 200, resolved.text

    def numbers(**params: Any) -> list[str]:
        response = client.get("/incidents", params={"q": token, **params}, headers=manager.headers)
        assert response.status_code == 200, response.text
        return [item["number"] for item in response.json()["items"]]

    assert numbers() == [gamma, beta, alpha]  # newest detection first
    assert numbers(order="asc") == [alpha, beta, gamma]
    assert numbers(q=token.upper()) == [gamma, beta, alpha]  # free text ignores case
    assert numbers(q=f"{token} be") == [beta]
    assert numbers(severity="P2") == [beta]
    assert numbers(status="resolved") == [beta]
    assert numbers(status="open") == [gamma, alpha]
    assert numbers(status="open", severity="P1") == [alpha]
    assert numbers(
        detection_from=(now - timedelta(days=2, hours=12)).isoformat(),
        detection_to=(now - timedelta(days=1, hours=12)).isoformat(),
    ) == [beta]
    assert numbers(detection_from=(now - timedelta(days=1, hours=12)).isoformat()) == [gamma]
    assert numbers(detection_to=(now - timedelta(days=2, hours=12)).isoformat()) == [alpha]
    # LIKE wildcards in the free text are literal characters
    assert numbers(q=f"{token}%") == []
    assert numbers(q=f"{token[:-1]}_") == []

    one = client.get("/incidents", params={"number": beta}, headers=manager.headers).json()
    assert [(i["number"], i["severity"], i["status"]) for i in one["items"]] == [
        (beta, "P2", "resolved")
    ]


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("detection_time", "desc"),
        ("detection_time", "asc"),
        ("number", "asc"),
        ("created_at", "desc"),
    ],
)
def test_list_incidents_pages_with_cursor(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    sort: str,
    order: str,
) -> None:
    token = uuid4().hex[:12]
    now = datetime.now(UTC)
    opened = [
        open_incident(
            title=f"{token} page {i}",
            detection_time=(now - timedelta(hours=10 - i, microseconds=i * 7)).isoformat(),
        )["number"]
        for i in range(4)
    ]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"q": token, "limit": 1, "sort": sort, "order": order}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/incidents", params=params, headers=manager.headers)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) <= 1
        seen += [i["number"] for i in items]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    expected = opened if order == "asc" else list(reversed(opened))
    assert seen == expected


def test_list_incidents_refused_when_cursor_foreign(client: TestClient, manager: Actor) -> None:
    response = client.get(
        "/incidents", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=manager.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "query.invalid"


@pytest.mark.parametrize(
    "params",
    [
        {"assigned_to": "not-a-uuid"},
        {"reported_by": "someone"},
        {"problem_id": "PRB0000001"},
        {"cursor": base64.urlsafe_b64encode(json.dumps(["x", "y"]).encode()).decode()},
    ],
    ids=["assigned_to", "reported_by", "problem_id", "cursor-values"],
)
def test_list_incidents_refused_when_query_value_malformed(
    client: TestClient, manager: Actor, params: dict[str, str]
) -> None:
    quiet = TestClient(client.app, raise_server_exceptions=False)
    response = quiet.get("/incidents", params=params, headers=manager.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("request.invalid", "query.invalid")


def test_list_incidents_refused_when_sort_unknown(client: TestClient, manager: Actor) -> None:
    response = client.get("/incidents", params={"sort": "title"}, headers=manager.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "request.invalid"
    assert [e["field"] for e in response.json()["errors"]] == ["query.sort"]


def test_get_incident_as_of_version_shows_past_state(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    number = open_incident()["number"]
    for status in ("in_progress", "resolved"):
        moved = client.post(
            f"/incidents/{number}/status", json={"status": status}, headers=manager.headers
        )
        assert moved.status_code == 200, moved.text
    first = client.get(f"/incidents/{number}", params={"as_of_version": 1}, headers=manager.headers)
    second = client.get(
        f"/incidents/{number}", params={"as_of_version": 2}, headers=manager.headers
    )
    now = client.get(f"/incidents/{number}", headers=manager.headers)
    assert [r.json()["status"] for r in (first, second, now)] == ["open", "in_progress", "resolved"]
    assert [r.json()["version"] for r in (first, second, now)] == [1, 2, 3]
    assert now.headers["etag"] == '"3"'
