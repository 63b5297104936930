"""SPEC 3 and 5: authentication, central role checks, inactive actors, user registration rules,
malformed input (422 with field-level errors), Idempotency-Key and client-contact read scope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor, Refuse


def _register_client(client: TestClient, admin: Actor) -> str:
    response = client.post(
        "/clients",
        json={
            "client_name": f"Client {uuid4().hex[:6]}",
            "registration_number": uuid4().hex[:10],
            "company_type": "enterprise",
            "support_coverage": "24x7",
            "preferred_communication": "email",
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _register_ci(client: TestClient, admin: Actor, client_id: str | None = None) -> str:
    response = client.post(
        "/configuration-items",
        json={
            "ci_name": f"ci-{uuid4().hex[:8]}",
            "ci_type": "database",
            "environment": "production",
            "responsible_owner": admin.id,
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    ci = str(response.json()["id"])
    if client_id is not None:
        assigned = client.post(
            f"/configuration-items/{ci}/clients", json={"client": client_id}, headers=admin.headers
        )
        assert assigned.status_code == 200, assigned.text
    return ci


def _open_body(reporter: Actor, /, **fields: Any) -> dict[str, Any]:
    return {
        "title": "Login broken",
        "description": "SSO returns 500",
        "category": "software",
        "impact": "high",
        "urgency": "medium",
        "reported_by": reporter.id,
        "detection_time": (datetime.now(UTC) - timedelta(minutes=30)).isoformat(),
        "severity": "P3",
        **fields,
    }


def _user_body(**fields: Any) -> dict[str, Any]:
    name = uuid4().hex[:8]
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"ada.{name}@example.test",
        "role": "incident_manager",
        "timezone": "Europe/Paris",
        **fields,
    }


def _note(client: TestClient, actor: Actor, number: str) -> httpx.Response:
    return client.post(
        f"/incidents/{number}/work-notes",
        json={"note_type": "progress_update", "note_text": "customer informed"},
        headers=actor.headers,
    )


def _communication(client: TestClient, actor: Actor, number: str) -> httpx.Response:
    return client.post(
        f"/incidents/{number}/communications",
        json={
            "communication_type": "status_update",
            "recipient_type": "client",
            "delivery_method": "email",
            "message_content": "We are investigating.",
        },
        headers=actor.headers,
    )


# --- authentication ------------------------------------------------------------------------------


def test_open_incident_refused_when_key_missing_even_if_body_malformed(
    client: TestClient, refuse: Refuse
) -> None:
    # identify the caller before anything else: an anonymous caller learns nothing about the schema
    refuse(lambda: client.post("/incidents", json={"title": 5}), 401, "auth.missing_key")


# --- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["auditor", "analyst"])
def test_read_incident_and_timeline_allowed_for_readers(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    role: str,
) -> None:
    reader = make_user(role)
    opened = open_incident()
    number = opened["number"]
    # Another user's write: the reader asks the views to include it.
    seen = {**reader.headers, "Ledger-Min-Position": str(opened["position"])}
    state = client.get(f"/incidents/{number}", headers=reader.headers)
    timeline = client.get(f"/incidents/{number}/timeline", headers=seen)
    listing = client.get("/incidents", params={"number": number}, headers=seen)
    assert state.status_code == timeline.status_code == listing.status_code == 200
    assert [i["number"] for i in listing.json()["items"]] == [number]


def test_account_manager_adds_work_notes_and_communications(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    account = make_user("account_manager")
    number = open_incident()["number"]
    note = _note(client, account, number)
    sent = _communication(client, account, number)
    assert note.status_code == 201, note.text
    assert sent.status_code == 201, sent.text
    assert (note.json()["type"], sent.json()["type"]) == ("WorkNote", "Communication")


def test_technical_support_acknowledges_and_moves_incident_assigned_to_them(
    client: TestClient,
    make_user: Callable[..., Actor],
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    support = make_user("technical_support")
    number = open_incident(assigned_to=support.id)["number"]
    acknowledged = client.post(f"/incidents/{number}/acknowledge", headers=support.headers)
    moved = client.post(
        f"/incidents/{number}/status", json={"status": "in_progress"}, headers=support.headers
    )
    assert acknowledged.status_code == 200, acknowledged.text
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "in_progress"


def test_technical_support_refused_when_incident_not_assigned_to_them(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    support = make_user("technical_support")
    number = open_incident()["number"]  # assigned to the manager
    refuse(
        lambda: client.post(f"/incidents/{number}/acknowledge", headers=support.headers),
        403,
        "incident.not_assigned_to_you",
    )
    refuse(
        lambda: client.post(
            f"/incidents/{number}/status", json={"status": "in_progress"}, headers=support.headers
        ),
        403,
        "incident.not_assigned_to_you",
    )


def test_technical_support_adds_work_note_on_any_incident(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    support = make_user("technical_support")
    number = open_incident()["number"]
    note = _note(client, support, number)
    assert note.status_code == 201, note.text


@pytest.mark.parametrize("action", ["open", "assign", "update"])
def test_technical_support_refused_manager_commands(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
    action: str,
) -> None:
    support = make_user("technical_support")
    number = open_incident(assigned_to=support.id)["number"]
    send = {
        "open": lambda: client.post(
            "/incidents", json=_open_body(support), headers=support.headers
        ),
        "assign": lambda: client.post(
            f"/incidents/{number}/assign", json={"assigned_to": support.id}, headers=support.headers
        ),
        "update": lambda: client.patch(
            f"/incidents/{number}", json={"title": "renamed"}, headers=support.headers
        ),
    }[action]
    refuse(send, 403, "role.forbidden")


# --- inactive actors -----------------------------------------------------------------------------


def test_request_refused_when_actor_inactive(
    client: TestClient,
    admin: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    actor = make_user("incident_manager")
    number = open_incident(actor=actor)["number"]
    deactivated = client.post(f"/users/{actor.id}/deactivate", headers=admin.headers)
    assert deactivated.status_code == 200, deactivated.text

    refuse(
        lambda: client.post(f"/incidents/{number}/acknowledge", headers=actor.headers),
        403,
        "actor.inactive",
    )
    refuse(lambda: client.get(f"/incidents/{number}", headers=actor.headers), 403, "actor.inactive")

    reactivated = client.post(
        f"/users/{actor.id}/reactivate", json={"restore_keys": True}, headers=admin.headers
    )
    assert reactivated.status_code == 200, reactivated.text
    again = client.post(f"/incidents/{number}/acknowledge", headers=actor.headers)
    assert again.status_code == 200, again.text


def test_deactivate_user_refused_for_self(client: TestClient, admin: Actor, refuse: Refuse) -> None:
    refuse(
        lambda: client.post(f"/users/{admin.id}/deactivate", headers=admin.headers),
        409,
        "user.cannot_deactivate_self",
    )


# --- users ---------------------------------------------------------------------------------------


def test_register_user_refused_when_email_taken_in_other_case(
    client: TestClient, admin: Actor, refuse: Refuse
) -> None:
    email = f"Grace.{uuid4().hex[:8]}@Example.Test"
    first = client.post("/users", json=_user_body(email=email), headers=admin.headers)
    assert first.status_code == 201, first.text
    refuse(
        lambda: client.post("/users", json=_user_body(email=email.lower()), headers=admin.headers),
        409,
        "user.email_taken",
    )
    refuse(
        lambda: client.post("/users", json=_user_body(email=email.upper()), headers=admin.headers),
        409,
        "user.email_taken",
    )


def test_update_user_refused_when_email_taken_in_other_case(
    client: TestClient, admin: Actor, refuse: Refuse
) -> None:
    taken = f"taken.{uuid4().hex[:8]}@example.test"
    first = client.post("/users", json=_user_body(email=taken), headers=admin.headers)
    second = client.post("/users", json=_user_body(), headers=admin.headers)
    assert first.status_code == second.status_code == 201
    refuse(
        lambda: client.patch(
            f"/users/{second.json()['id']}", json={"email": taken.upper()}, headers=admin.headers
        ),
        409,
        "user.email_taken",
    )


def test_update_user_changes_case_of_own_email(client: TestClient, admin: Actor) -> None:
    email = f"case.{uuid4().hex[:8]}@example.test"
    created = client.post("/users", json=_user_body(email=email), headers=admin.headers)
    assert created.status_code == 201, created.text
    changed = client.patch(
        f"/users/{created.json()['id']}", json={"email": email.upper()}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text  # still the same address: not "taken"


def test_update_user_refused_when_role_becomes_client_contact_without_client(
    client: TestClient, admin: Actor, refuse: Refuse
) -> None:
    created = client.post("/users", json=_user_body(), headers=admin.headers)
    assert created.status_code == 201, created.text
    refuse(
        lambda: client.patch(
            f"/users/{created.json()['id']}", json={"role": "client_contact"}, headers=admin.headers
        ),
        409,
        "user.client_required",
    )


def test_register_user_refused_when_client_contact_without_client(
    client: TestClient, admin: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            "/users", json=_user_body(role="client_contact"), headers=admin.headers
        ),
        409,
        "user.client_required",
    )


def test_register_user_refused_when_client_unknown(
    client: TestClient, admin: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            "/users",
            json=_user_body(role="client_contact", client_id=str(uuid4())),
            headers=admin.headers,
        ),
        404,
        "client.not_found",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"email": "not-an-email"}, "email"),
        ({"role": "superuser"}, "role"),
        ({"first_name": ""}, "first_name"),
    ],
    ids=["timezone", "email", "role", "first_name"],
)
def test_register_user_refused_when_field_invalid(
    client: TestClient, admin: Actor, refuse: Refuse, fields: dict[str, Any], field: str
) -> None:
    body = refuse(
        lambda: client.post("/users", json=_user_body(**fields), headers=admin.headers),
        422,
        "request.invalid",
    )
    assert [e["field"] for e in body["errors"]] == [field]


# --- malformed input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "error_type"),
    [
        ({"impact": 5}, "impact", "enum"),
        ({"reported_by": 12}, "reported_by", "uuid_type"),
        ({"configuration_items": "ci-1"}, "configuration_items", "list_type"),
        ({"category": "printer"}, "category", "enum"),
        ({"severity": "P5"}, "severity", "enum"),
        ({"status": "open"}, "status", "extra_forbidden"),
        ({"recorded_at": "2024-01-01T00:00:00Z"}, "recorded_at", "extra_forbidden"),
        ({"actor": "someone"}, "actor", "extra_forbidden"),
        ({"number": "INC0000001"}, "number", "extra_forbidden"),
        ({"detection_time": "2024-01-01T00:00:00"}, "detection_time", "timezone_aware"),
        ({"detection_time": "yesterday"}, "detection_time", "value_error"),
        ({"detection_time": "1700000000"}, "detection_time", "value_error"),
        ({"title": None}, "title", "string_type"),
        ({"assessment": {"on_fire": True}}, "assessment.on_fire", "extra_forbidden"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else None,
)
def test_open_incident_refused_when_body_malformed(
    client: TestClient,
    manager: Actor,
    refuse: Refuse,
    change: dict[str, Any],
    field: str,
    error_type: str,
) -> None:
    body = refuse(
        lambda: client.post(
            "/incidents", json=_open_body(manager, **change), headers=manager.headers
        ),
        422,
        "request.invalid",
    )
    assert [(e["field"], e["type"]) for e in body["errors"]] == [(field, error_type)], body
    assert field in body["message"]


@pytest.mark.parametrize("missing", ["title", "description", "category", "detection_time"])
def test_open_incident_refused_when_required_field_missing(
    client: TestClient, manager: Actor, refuse: Refuse, missing: str
) -> None:
    payload = _open_body(manager)
    del payload[missing]
    body = refuse(
        lambda: client.post("/incidents", json=payload, headers=manager.headers),
        422,
        "request.invalid",
    )
    assert [(e["field"], e["type"]) for e in body["errors"]] == [(missing, "missing")]


def test_open_incident_refused_when_body_not_json(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            "/incidents",
            content=b"{not json",
            headers={**manager.headers, "Content-Type": "application/json"},
        ),
        422,
        "request.invalid",
    )


def test_change_status_refused_when_status_unknown(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = open_incident()["number"]
    body = refuse(
        lambda: client.post(
            f"/incidents/{number}/status", json={"status": "investigating"}, headers=manager.headers
        ),
        422,
        "request.invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["status"]


def test_acknowledge_refused_when_expected_version_not_positive(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = open_incident()["number"]
    body = refuse(
        lambda: client.post(
            f"/incidents/{number}/acknowledge",
            json={"expected_version": 0},
            headers=manager.headers,
        ),
        422,
        "request.invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["expected_version"]


# --- idempotency ---------------------------------------------------------------------------------


def test_open_incident_replays_answer_when_idempotency_key_repeated(
    client: TestClient, manager: Actor, event_count: Callable[[], int]
) -> None:
    key = {"Idempotency-Key": f"open-{uuid4()}"}
    body = _open_body(manager)
    first = client.post("/incidents", json=body, headers={**manager.headers, **key})
    assert first.status_code == 201, first.text
    after_first = event_count()

    retry = client.post(
        "/incidents", json=dict(reversed(body.items())), headers={**manager.headers, **key}
    )
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()
    assert event_count() == after_first

    listing = client.get(
        "/incidents", params={"number": first.json()["number"]}, headers=manager.headers
    )
    assert len(listing.json()["items"]) == 1
    timeline = client.get(f"/incidents/{first.json()['number']}/timeline", headers=manager.headers)
    assert timeline.json()["entries"][0]["idempotency_key"].endswith(key["Idempotency-Key"])


def test_acknowledge_replays_answer_when_idempotency_key_repeated(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    event_count: Callable[[], int],
) -> None:
    number = open_incident()["number"]
    headers = {**manager.headers, "Idempotency-Key": f"ack-{uuid4()}"}
    first = client.post(f"/incidents/{number}/acknowledge", headers=headers)
    assert first.status_code == 200, first.text
    before = event_count()
    retry = client.post(f"/incidents/{number}/acknowledge", headers=headers)
    assert retry.status_code == 200, retry.text  # not 409 already_acknowledged
    assert retry.json() == first.json()
    assert event_count() == before


def test_open_incident_refused_when_idempotency_key_reused_with_other_body(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    headers = {**manager.headers, "Idempotency-Key": f"open-{uuid4()}"}
    first = client.post("/incidents", json=_open_body(manager), headers=headers)
    assert first.status_code == 201, first.text
    refuse(
        lambda: client.post(
            "/incidents", json=_open_body(manager, title="Something else"), headers=headers
        ),
        422,
        "idempotency.key_reused",
    )


def test_command_refused_when_idempotency_key_reused_on_other_path(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    one, two = open_incident()["number"], open_incident()["number"]
    headers = {**manager.headers, "Idempotency-Key": f"ack-{uuid4()}"}
    assert client.post(f"/incidents/{one}/acknowledge", headers=headers).status_code == 200
    refuse(
        lambda: client.post(f"/incidents/{two}/acknowledge", headers=headers),
        422,
        "idempotency.key_reused",
    )


def test_idempotency_key_scoped_to_each_user(
    client: TestClient, make_user: Callable[..., Actor], event_count: Callable[[], int]
) -> None:
    one, two = make_user("incident_manager"), make_user("incident_manager")
    key = {"Idempotency-Key": f"shared-{uuid4()}"}
    body = _open_body(one)
    before = event_count()
    first = client.post("/incidents", json=body, headers={**one.headers, **key})
    second = client.post("/incidents", json=body, headers={**two.headers, **key})
    assert first.status_code == second.status_code == 201
    assert first.json()["number"] != second.json()["number"]
    assert event_count() > before


# --- client contacts -----------------------------------------------------------------------------


def test_client_contact_reads_every_past_version_of_own_incident(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    """Version 1 names no CI yet; the incident is the contact's client's now, so it is theirs."""
    own_client = _register_client(client, admin)
    ci = _register_ci(client, admin, own_client)
    contact = make_user("client_contact", client_id=own_client)
    number = open_incident()["number"]
    linked = client.post(
        f"/incidents/{number}/configuration-items",
        json={"configuration_item": ci},
        headers=manager.headers,
    )
    assert linked.status_code == 200, linked.text
    for version in (1, 2):
        got = client.get(
            f"/incidents/{number}", params={"as_of_version": version}, headers=contact.headers
        )
        assert got.status_code == 200, got.text
        assert got.json()["version"] == version
        assert len(got.json()["configuration_items"]) == version - 1


def test_client_contact_reads_only_incidents_of_own_client(
    client: TestClient,
    admin: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    own_client, other_client = _register_client(client, admin), _register_client(client, admin)
    own_ci = _register_ci(client, admin, own_client)
    other_ci = _register_ci(client, admin, other_client)
    contact = make_user("client_contact", client_id=own_client)

    mine = open_incident(configuration_items=[own_ci])["number"]
    theirs = open_incident(configuration_items=[other_ci])["number"]
    last = open_incident()
    unlinked = last["number"]
    seen = {**contact.headers, "Ledger-Min-Position": str(last["position"])}

    assert client.get(f"/incidents/{mine}", headers=contact.headers).status_code == 200
    assert client.get(f"/incidents/{mine}/timeline", headers=seen).status_code == 200
    missing = client.get("/incidents/INC9999999", headers=contact.headers)
    assert missing.status_code == 404
    for number in (theirs, unlinked):
        for path in (f"/incidents/{number}", f"/incidents/{number}/timeline"):
            refused = client.get(path, headers=contact.headers)
            # The same answer as for an incident that does not exist: nothing leaks.
            assert refused.status_code == 404, (path, refused.text)
            assert refused.json()["code"] == missing.json()["code"] == "incident.not_found"

    listed = client.get("/incidents", params={"limit": 500}, headers=seen).json()
    assert [i["number"] for i in listed["items"]] == [mine]


def test_client_contact_sees_incident_once_ci_assigned_to_client(
    client: TestClient,
    admin: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    own_client = _register_client(client, admin)
    ci = _register_ci(client, admin)
    contact = make_user("client_contact", client_id=own_client)
    number = open_incident(configuration_items=[ci])["number"]
    assert client.get(f"/incidents/{number}", headers=contact.headers).status_code == 404

    assigned = client.post(
        f"/configuration-items/{ci}/clients", json={"client": own_client}, headers=admin.headers
    )
    assert assigned.status_code == 200, assigned.text
    assert client.get(f"/incidents/{number}", headers=contact.headers).status_code == 200
    listed = client.get(
        "/incidents", params={"min_position": assigned.json()["position"]}, headers=contact.headers
    ).json()
    assert [i["number"] for i in listed["items"]] == [number]

    removed = client.delete(
        f"/configuration-items/{ci}/clients/{own_client}", headers=admin.headers
    )
    assert removed.status_code == 200, removed.text
    assert client.get(f"/incidents/{number}", headers=contact.headers).status_code == 404
    seen = {**contact.headers, "Ledger-Min-Position": removed.headers["Ledger-Position"]}
    assert client.get("/incidents", headers=seen).json()["items"] == []
