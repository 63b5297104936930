"""Problem tickets over HTTP against the real PostgreSQL service (SPEC 4.4, SOP 6-9): the routes
answer 201/200 with the record, refusals carry their status and `code` and append nothing, and a
malformed body is 422."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from api.service import Service
from domain.communication import Communication
from domain.incident import Incident
from domain.problem import Problem
from domain.work_note import WorkNote
from tests.conftest import Actor, Refuse

OpenIncidentFixture = Callable[..., dict[str, Any]]


def _open(client: TestClient, actor: Actor, **fields: Any) -> httpx.Response:
    body = {
        "title": "Connection pool exhaustion",
        "description": "Checkout pods run out of DB connections",
        "category": "database",
        "assigned_to": actor.id,
        "detected_at": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
        **fields,
    }
    return client.post("/problems", json=body, headers=actor.headers)


def _opened(client: TestClient, actor: Actor, **fields: Any) -> dict[str, Any]:
    response = _open(client, actor, **fields)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _patch(client: TestClient, actor: Actor, problem: str, **body: Any) -> httpx.Response:
    return client.patch(f"/problems/{problem}", json=body, headers=actor.headers)


def _link(client: TestClient, actor: Actor, problem: str, incident: str) -> httpx.Response:
    return client.post(
        f"/problems/{problem}/incidents", json={"incident": incident}, headers=actor.headers
    )


@pytest.fixture
def problem(client: TestClient, manager: Actor) -> dict[str, Any]:
    return _opened(client, manager)


def test_problem_routes_answer_with_the_record(
    client: TestClient,
    service: Service,
    manager: Actor,
    make_user: Callable[..., Actor],
    admin: Actor,
    open_incident: OpenIncidentFixture,
) -> None:
    first, second = open_incident(), open_incident()

    opened = _opened(client, manager, incidents=[first["number"], second["id"]])

    assert opened["type"] == "Problem"
    assert opened["number"].startswith("PRB")
    assert (opened["status"], opened["version"]) == ("open", 3)  # opened, two links
    number = opened["number"]
    note = service.ledger.find(WorkNote, opened["extra"]["work_note_id"], "work_note")
    assert note.note_text == f"Incident(s) linked to Problem Ticket {number}"
    assert service.ledger.find(Incident, first["number"], "incident").problem_id == UUID(
        opened["id"]
    )

    moved = _patch(client, manager, number, status="investigating", title="Pool leak")
    assert moved.status_code == 200, moved.text
    assert (moved.json()["status"], moved.json()["version"]) == ("investigating", 5)

    third = open_incident()
    linked = _link(client, manager, number, third["number"])
    assert linked.status_code == 200, linked.text
    assert linked.json()["id"] == opened["id"]
    extra = linked.json()["extra"]
    assert extra["incident_id"] == third["id"]
    sent = service.ledger.find(Communication, extra["communication_id"], "communication")
    assert str(sent.recipient) == manager.id

    ci = client.post(
        "/configuration-items",
        json={
            "ci_name": f"db-{uuid4().hex[:8]}",
            "ci_type": "database",
            "environment": "production",
            "responsible_owner": admin.id,
        },
        headers=admin.headers,
    ).json()["id"]
    ci_linked = client.post(
        f"/problems/{number}/configuration-items",
        json={"configuration_item": ci},
        headers=manager.headers,
    )
    assert ci_linked.status_code == 200, ci_linked.text

    support = make_user("technical_support")
    noted = client.post(
        f"/problems/{opened['id']}/work-notes",
        json={"note_type": "troubleshooting", "note_text": "Heap dump taken"},
        headers=support.headers,
    )
    assert noted.status_code == 201, noted.text
    told = client.post(
        f"/problems/{number}/communications",
        json={
            "communication_type": "status_update",
            "recipient_type": "internal",
            "delivery_method": "email",
            "recipient": support.id,
            "message_content": "Root cause found",
        },
        headers=manager.headers,
    )
    assert told.status_code == 201, told.text
    attached = client.post(
        f"/problems/{number}/attachments",
        json={
            "file_name": "heap.txt",
            "file_url": "https://files.example.test/heap.txt",
            "file_type": "text/plain",
            "file_size_bytes": 10,
        },
        headers=support.headers,
    )
    assert attached.status_code == 201, attached.text
    for record in (noted, told):
        found = service.ledger.get_or_none(UUID(record.json()["id"]))
        assert found is not None
        assert str(found.problem_id) == opened["id"]

    resolved = _patch(client, manager, number, status="resolved")
    closed = _patch(client, manager, number, status="closed")
    assert (resolved.status_code, closed.status_code) == (200, 200), closed.text
    final = service.ledger.find(Problem, number, "problem")
    assert len(final.incident_ids) == 3
    assert final.ci_ids == [UUID(ci)]
    assert final.closed_at is not None


# --- refusals: status, code, nothing appended ----------------------------------------------------


def test_link_refused_when_problem_closed(
    client: TestClient,
    manager: Actor,
    problem: dict[str, Any],
    open_incident: OpenIncidentFixture,
    refuse: Refuse,
) -> None:
    for status in ("resolved", "closed"):
        assert _patch(client, manager, problem["number"], status=status).status_code == 200
    number = open_incident()["number"]
    refuse(lambda: _link(client, manager, problem["number"], number), 409, "problem.closed")


def test_link_refused_when_incident_already_linked(
    client: TestClient, manager: Actor, open_incident: OpenIncidentFixture, refuse: Refuse
) -> None:
    incident = open_incident()["number"]
    _opened(client, manager, incidents=[incident])
    other = _opened(client, manager)["number"]
    refuse(lambda: _link(client, manager, other, incident), 409, "incident.already_linked")
    refuse(lambda: _open(client, manager, incidents=[incident]), 409, "incident.already_linked")


def test_problem_commands_refused_when_problem_or_incident_unknown(
    client: TestClient, manager: Actor, problem: dict[str, Any], refuse: Refuse
) -> None:
    refuse(lambda: _patch(client, manager, "PRB9999999", title="x"), 404, "problem.not_found")
    refuse(
        lambda: _link(client, manager, problem["number"], "INC9999999"), 404, "incident.not_found"
    )
    refuse(
        lambda: client.post(
            "/problems/PRB9999999/work-notes",
            json={"note_type": "troubleshooting", "note_text": "x"},
            headers=manager.headers,
        ),
        404,
        "problem.not_found",
    )


def test_update_refused_when_transition_not_allowed(
    client: TestClient, manager: Actor, problem: dict[str, Any], refuse: Refuse
) -> None:
    body = refuse(
        lambda: _patch(client, manager, problem["number"], status="closed"),
        409,
        "problem.invalid_transition",
    )
    assert body["current_status"] == "open"
    assert sorted(body["allowed"]) == ["investigating", "resolved"]


def test_technical_support_updates_only_problems_assigned_to_them(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    problem: dict[str, Any],
    refuse: Refuse,
) -> None:
    support = make_user("technical_support")
    refuse(
        lambda: _patch(client, support, problem["number"], status="investigating"),
        403,
        "problem.not_assigned_to_you",
    )
    refuse(lambda: _open(client, support), 403, "role.forbidden")
    mine = _opened(client, manager, assigned_to=support.id)["number"]
    moved = _patch(client, support, mine, status="investigating")
    assert moved.status_code == 200, moved.text


def test_link_configuration_item_refused_when_twice_or_unknown(
    client: TestClient, manager: Actor, admin: Actor, problem: dict[str, Any], refuse: Refuse
) -> None:
    url = f"/problems/{problem['number']}/configuration-items"
    refuse(
        lambda: client.post(
            url, json={"configuration_item": str(uuid4())}, headers=manager.headers
        ),
        404,
        "configuration_item.not_found",
    )
    ci = client.post(
        "/configuration-items",
        json={
            "ci_name": f"lb-{uuid4().hex[:8]}",
            "ci_type": "network",
            "environment": "production",
            "responsible_owner": admin.id,
        },
        headers=admin.headers,
    ).json()["id"]
    first = client.post(url, json={"configuration_item": ci}, headers=manager.headers)
    assert first.status_code == 200, first.text
    refuse(
        lambda: client.post(url, json={"configuration_item": ci}, headers=manager.headers),
        409,
        "problem.ci_already_linked",
    )


# --- malformed bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": "inquiry/help"}, "category"),
        ({"incidents": ["INC0000001", "INC0000001"]}, "incidents"),
        ({"assigned_to": None}, "assigned_to"),
        ({"status": "open"}, "status"),
    ],
    ids=["unknown-category", "incident-twice", "no-assignee", "server-owned-status"],
)
def test_open_problem_refused_when_body_malformed(
    client: TestClient, manager: Actor, refuse: Refuse, fields: dict[str, Any], field: str
) -> None:
    body = refuse(lambda: _open(client, manager, **fields), 422, "request.invalid")
    assert field in body["message"], body


def test_link_incident_refused_when_body_malformed(
    client: TestClient, manager: Actor, problem: dict[str, Any], refuse: Refuse
) -> None:
    url = f"/problems/{problem['number']}/incidents"
    refuse(lambda: client.post(url, json={}, headers=manager.headers), 422, "request.invalid")
    refuse(
        lambda: client.post(url, json={"incident": 7}, headers=manager.headers),
        422,
        "request.invalid",
    )
