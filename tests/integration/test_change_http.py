"""Changes, rollbacks and approvals over HTTP against the real PostgreSQL service: the issue's
paths answer 201/200, refusals carry their status and `code` and append nothing, a malformed body
is 422."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from api.service import Service
from domain.base import DomainEvent
from domain.numbering import Counter
from tests.conftest import Actor, Refuse

MakeUser = Callable[..., Actor]
OpenIncident = Callable[..., dict[str, Any]]


def _change_body(**fields: Any) -> dict[str, Any]:
    return {
        "title": "Raise the pool size",
        "description": "max_connections 200 → 400",
        "change_type": "normal",
        "risk_level": "high",
        **fields,
    }


def _post(client: TestClient, actor: Actor, path: str, body: Any, status: int = 200) -> Any:
    response = client.post(path, json=body, headers=actor.headers)
    assert response.status_code == status, response.text
    return response.json()


def appended_since(service: Service, head: int) -> list[str]:
    """Event types stored after position `head` (a counter's first event left out), checking
    they all came from one command."""
    ledger = service.ledger
    stored = ledger.recorder.select_notifications(head + 1, 1_000)
    events = [ledger.mapper.to_domain_event(n) for n in stored]
    assert all(isinstance(e, DomainEvent) for e in events)
    assert len({e.meta.command_id for e in events if isinstance(e, DomainEvent)}) == 1
    return [type(e).__qualname__ for e in events if not isinstance(e, Counter.Started)]


def head(service: Service) -> int:
    return service.ledger.recorder.max_notification_id() or 0


@pytest.fixture
def executive(make_user: MakeUser) -> Actor:
    return make_user("executive")


def test_emergency_change_approved_scheduled_implemented_and_rolled_back(
    client: TestClient,
    manager: Actor,
    executive: Actor,
    open_incident: OpenIncident,
    service: Service,
) -> None:
    incident = open_incident()
    before = head(service)
    change = _post(
        client,
        manager,
        "/changes",
        _change_body(change_type="emergency", approver=executive.id, incident=incident["number"]),
        201,
    )
    assert appended_since(service, before) == [
        "Counter.NumberIssued",
        "Change.Requested",
        "Approval.Requested",
        "ApprovalSlot.Claimed",
    ]
    assert (change["type"], change["status"], change["number"][:3]) == (
        "Change",
        "requested",
        "CHG",
    )
    approval = change["extra"]["approval_id"]

    # Scheduling before the grant is refused; so is approving it by hand.
    for status, code in (
        ("scheduled", "change.invalid_transition"),
        ("approved", "change.approval_required"),
    ):
        response = client.post(
            f"/changes/{change['number']}/status", json={"status": status}, headers=manager.headers
        )
        assert (response.status_code, response.json()["code"]) == (409, code)

    decided = _post(
        client,
        executive,
        f"/approvals/{approval}/decision",
        {"decision": "approved", "comment": "Go ahead"},
    )
    assert (decided["type"], decided["status"]) == ("Approval", "approved")
    for status in ("scheduled", "implemented"):
        moved = _post(client, manager, f"/changes/{change['id']}/status", {"status": status})
        assert moved["status"] == status

    rollback = _post(
        client,
        manager,
        f"/changes/{change['number']}/rollbacks",
        {"title": "Undo", "reason": "Errors rose", "incident": incident["id"]},
        201,
    )
    assert (rollback["type"], rollback["status"], rollback["number"][:3]) == (
        "Rollback",
        "requested",
        "RBK",
    )
    for status in ("approved", "executed"):
        moved = _post(
            client, manager, f"/rollbacks/{rollback['number']}/status", {"status": status}
        )
        assert moved["status"] == status


def test_rollback_opens_a_new_incident_in_the_same_append(
    client: TestClient, manager: Actor, service: Service
) -> None:
    change = _post(client, manager, "/changes", _change_body(), 201)
    for status in ("approved", "scheduled", "implemented"):
        _post(client, manager, f"/changes/{change['number']}/status", {"status": status})
    new_incident = {
        "title": "Pool exhausted after the change",
        "description": "connection errors",
        "category": "database",
        "impact": "high",
        "urgency": "high",
        "reported_by": manager.id,
        "detection_time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "severity": "P3",
        "assigned_to": manager.id,
    }
    before = head(service)
    rollback = _post(
        client,
        manager,
        f"/changes/{change['id']}/rollbacks",
        {"title": "Undo", "reason": "It broke", "new_incident": new_incident},
        201,
    )
    assert rollback["extra"]["incident_number"].startswith("INC")
    assert appended_since(service, before) == [
        "Counter.NumberIssued",
        "Incident.Opened",
        "Counter.NumberIssued",
        "Rollback.Requested",
    ]


def test_approval_requested_and_decided_over_http(
    client: TestClient,
    manager: Actor,
    executive: Actor,
    open_incident: OpenIncident,
    refuse: Refuse,
) -> None:
    incident = open_incident()
    _post(client, manager, f"/incidents/{incident['number']}/status", {"status": "resolved"})
    body = {
        "reference_type": "incident_closure",
        "reference": incident["number"],
        "requested_action": "close_incident",
        "approver": executive.id,
    }
    approval = _post(client, manager, "/approvals", body, 201)
    assert (approval["type"], approval["status"]) == ("Approval", "pending")
    refuse(
        lambda: client.post("/approvals", json=body, headers=manager.headers),
        409,
        "approval.duplicate_pending",
    )
    refuse(
        lambda: client.post(
            f"/approvals/{approval['id']}/decision",
            json={"decision": "approved"},
            headers=manager.headers,
        ),
        403,
        "approval.not_approver",
    )
    decided = _post(
        client, executive, f"/approvals/{approval['id']}/decision", {"decision": "denied"}
    )
    assert decided["status"] == "denied"
    refuse(
        lambda: client.post(
            f"/approvals/{approval['id']}/decision",
            json={"decision": "approved"},
            headers=executive.headers,
        ),
        409,
        "approval.not_pending",
    )


def test_change_refusals_append_nothing(
    client: TestClient, manager: Actor, make_user: MakeUser, refuse: Refuse
) -> None:
    not_executive = make_user("incident_manager")
    refuse(
        lambda: client.post(
            "/changes",
            json=_change_body(change_type="emergency", approver=not_executive.id),
            headers=manager.headers,
        ),
        409,
        "user.wrong_role",
    )
    refuse(
        lambda: client.post(
            "/changes", json=_change_body(incident="INC9999999"), headers=manager.headers
        ),
        404,
        "incident.not_found",
    )
    change = _post(client, manager, "/changes", _change_body(), 201)
    refuse(
        lambda: client.post(
            f"/changes/{change['number']}/rollbacks",
            json={"title": "Undo", "reason": "x", "incident": "INC9999999"},
            headers=manager.headers,
        ),
        409,
        "rollback.change_not_implemented",
    )
    refuse(
        lambda: client.post(
            "/rollbacks/RBK9999999/status", json={"status": "approved"}, headers=manager.headers
        ),
        404,
        "rollback.not_found",
    )
    support = make_user("technical_support")
    refuse(
        lambda: client.post("/changes", json=_change_body(), headers=support.headers),
        403,
        "role.forbidden",
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/changes",
            {"title": "x", "description": "y", "change_type": "emergency", "risk_level": "low"},
        ),
        (
            "/changes",
            {"title": "x", "description": "y", "change_type": "urgent", "risk_level": "low"},
        ),
        ("/changes/CHG0000001/status", {"status": "approved", "implementation_date": "soon"}),
        ("/changes/CHG0000001/rollbacks", {"title": "x", "reason": "y"}),
        ("/rollbacks/RBK0000001/status", {"status": "undone"}),
        (
            "/approvals",
            {
                "reference_type": "change",
                "reference": "CHG0000001",
                "requested_action": "close_incident",
                "approver": str(uuid4()),
            },
        ),
        ("/approvals/" + str(uuid4()) + "/decision", {"decision": "maybe"}),
    ],
)
def test_malformed_bodies_are_422(
    client: TestClient,
    manager: Actor,
    event_count: Callable[[], int],
    path: str,
    body: dict[str, Any],
) -> None:
    before = event_count()
    response = client.post(path, json=body, headers=manager.headers)
    assert response.status_code == 422, response.text
    assert event_count() == before
