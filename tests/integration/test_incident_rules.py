"""SPEC 4.2 and 5: every incident rule the ledger implements refuses with the right HTTP status
and `code`, and a refused command appends nothing (real PostgreSQL, real HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from api.service import Service
from domain.errors import NotFound
from domain.incident import Category, ChangeIncidentStatus, IncidentStatus, Level, OpenIncident
from domain.severity import Severity
from domain.work_note import AddWorkNote, NoteType
from tests.conftest import Actor, Refuse


@pytest.fixture
def incident(open_incident: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return open_incident()


def _post_status(client: TestClient, actor: Actor, number: str, status: str) -> httpx.Response:
    return client.post(
        f"/incidents/{number}/status", json={"status": status}, headers=actor.headers
    )


def _walk(client: TestClient, actor: Actor, number: str, *statuses: str) -> None:
    for status in statuses:
        response = _post_status(client, actor, number, status)
        assert response.status_code == 200, response.text


def _closed(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> str:
    number = str(open_incident()["number"])
    _walk(client, manager, number, "resolved", "closed")
    return number


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def _register_ci(client: TestClient, admin: Actor) -> str:
    response = client.post(
        "/configuration-items",
        json={
            "ci_name": f"ci-{uuid4().hex[:8]}",
            "ci_type": "application",
            "environment": "production",
            "responsible_owner": admin.id,
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _deactivate(client: TestClient, admin: Actor, user: Actor) -> None:
    response = client.post(f"/users/{user.id}/deactivate", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "inactive"


def _open_body(actor: Actor, **fields: Any) -> dict[str, Any]:
    return {
        "title": "Payments failing",
        "description": "5xx on /pay",
        "category": "software",
        "impact": "high",
        "urgency": "high",
        "reported_by": actor.id,
        "detection_time": _ago(minutes=30),
        "severity": "P3",
        **fields,
    }


# --- acknowledgment ------------------------------------------------------------------------------


def test_acknowledge_incident_refused_when_already_acknowledged(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    first = client.post(f"/incidents/{incident['number']}/acknowledge", headers=manager.headers)
    assert first.status_code == 200, first.text
    stamped = client.get(f"/incidents/{incident['number']}", headers=manager.headers).json()
    assert stamped["acknowledged_at"] is not None

    refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/acknowledge", headers=manager.headers
        ),
        409,
        "incident.already_acknowledged",
    )
    again = client.get(f"/incidents/{incident['number']}", headers=manager.headers).json()
    assert again["acknowledged_at"] == stamped["acknowledged_at"]


def test_acknowledge_incident_refused_when_closed(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = _closed(client, manager, open_incident)
    refuse(
        lambda: client.post(f"/incidents/{number}/acknowledge", headers=manager.headers),
        409,
        "incident.closed",
    )


# --- status machine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ((), "closed"),
        ((), "open"),
        (("in_progress",), "open"),
        (("in_progress",), "closed"),
        (("monitoring",), "closed"),
        (("resolved",), "monitoring"),
        (("resolved",), "open"),
        (("resolved", "closed"), "in_progress"),
        (("resolved", "closed"), "resolved"),
        (("resolved", "closed"), "open"),
        (("resolved", "closed"), "closed"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else value,
)
def test_change_status_refused_when_transition_invalid(
    client: TestClient,
    manager: Actor,
    incident: dict[str, Any],
    refuse: Refuse,
    path: tuple[str, ...],
    target: str,
) -> None:
    number = incident["number"]
    _walk(client, manager, number, *path)
    current = path[-1] if path else "open"
    body = refuse(
        lambda: _post_status(client, manager, number, target), 409, "incident.invalid_transition"
    )
    assert body["current_status"] == current
    assert target not in body["allowed"]
    state = client.get(f"/incidents/{number}", headers=manager.headers).json()
    assert state["status"] == current


def test_change_status_reopens_resolved_incident_and_counts_it(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    number = incident["number"]
    _walk(client, manager, number, "in_progress", "monitoring", "in_progress", "resolved")
    resolved = client.get(f"/incidents/{number}", headers=manager.headers).json()
    assert resolved["resolved_at"] is not None
    assert resolved["reopen_count"] == 0

    _walk(client, manager, number, "in_progress")
    reopened = client.get(f"/incidents/{number}", headers=manager.headers).json()
    assert reopened["status"] == "in_progress"
    assert reopened["reopen_count"] == 1
    assert reopened["resolved_at"] == resolved["resolved_at"]  # reopening keeps the history


def test_close_incident_stamps_closed_at_and_drafts_report(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    number = incident["number"]
    _walk(client, manager, number, "resolved")
    closed = _post_status(client, manager, number, "closed")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["extra"]["report_number"].startswith("RPT")
    state = client.get(f"/incidents/{number}", headers=manager.headers).json()
    assert state["closed_at"] is not None


# --- closed incidents do not change -------------------------------------------------------------


def test_assign_incident_refused_when_closed(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = _closed(client, manager, open_incident)
    other = make_user("incident_manager")
    refuse(
        lambda: client.post(
            f"/incidents/{number}/assign", json={"assigned_to": other.id}, headers=manager.headers
        ),
        409,
        "incident.closed",
    )


def test_update_details_refused_when_closed(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = _closed(client, manager, open_incident)
    refuse(
        lambda: client.patch(
            f"/incidents/{number}", json={"title": "Renamed"}, headers=manager.headers
        ),
        409,
        "incident.closed",
    )


def test_link_ci_refused_when_incident_closed(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    number = _closed(client, manager, open_incident)
    ci = _register_ci(client, admin)
    refuse(
        lambda: client.post(
            f"/incidents/{number}/configuration-items",
            json={"configuration_item": ci},
            headers=manager.headers,
        ),
        409,
        "incident.closed",
    )


# --- assignment ----------------------------------------------------------------------------------


def test_assign_incident_refused_when_assignee_inactive(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
    refuse: Refuse,
) -> None:
    other = make_user("incident_manager")
    _deactivate(client, admin, other)
    body = refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/assign",
            json={"assigned_to": other.id},
            headers=manager.headers,
        ),
        409,
        "user.inactive",
    )
    assert body["user"] == other.id


def test_assign_incident_refused_when_assignee_unknown(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/assign",
            json={"assigned_to": str(uuid4())},
            headers=manager.headers,
        ),
        404,
        "user.not_found",
    )


def test_assign_incident_refused_when_already_assigned_to_that_user(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/assign",
            json={"assigned_to": manager.id},
            headers=manager.headers,
        ),
        409,
        "incident.already_assigned",
    )


def test_assign_incident_moves_to_active_manager(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
) -> None:
    other = make_user("incident_manager")
    response = client.post(
        f"/incidents/{incident['number']}/assign",
        json={"assigned_to": other.id},
        headers=manager.headers,
    )
    assert response.status_code == 200, response.text
    state = client.get(f"/incidents/{incident['number']}", headers=manager.headers).json()
    assert state["assigned_to"] == other.id


# --- opening -------------------------------------------------------------------------------------


def test_open_incident_refused_when_reporter_inactive(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    refuse: Refuse,
) -> None:
    reporter = make_user("technical_support")
    _deactivate(client, admin, reporter)
    refuse(
        lambda: client.post(
            "/incidents", json=_open_body(manager, reported_by=reporter.id), headers=manager.headers
        ),
        409,
        "user.inactive",
    )


def test_open_incident_refused_when_reporter_unknown(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            "/incidents",
            json=_open_body(manager, reported_by=str(uuid4())),
            headers=manager.headers,
        ),
        404,
        "user.not_found",
    )


def test_open_incident_refused_when_assignee_inactive(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    refuse: Refuse,
) -> None:
    other = make_user("incident_manager")
    _deactivate(client, admin, other)
    refuse(
        lambda: client.post(
            "/incidents", json=_open_body(manager, assigned_to=other.id), headers=manager.headers
        ),
        409,
        "user.inactive",
    )


def test_open_incident_refused_when_ci_unknown(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            "/incidents",
            json=_open_body(manager, configuration_items=[str(uuid4())]),
            headers=manager.headers,
        ),
        404,
        "configuration_item.not_found",
    )


def test_open_incident_refused_when_ci_listed_twice(
    client: TestClient, admin: Actor, manager: Actor, refuse: Refuse
) -> None:
    ci = _register_ci(client, admin)
    refuse(
        lambda: client.post(
            "/incidents",
            json=_open_body(manager, configuration_items=[ci, ci]),
            headers=manager.headers,
        ),
        422,
        "request.invalid",
    )


def test_open_incident_refused_without_severity_or_assessment(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    body = _open_body(manager)
    del body["severity"]
    refused = refuse(
        lambda: client.post("/incidents", json=body, headers=manager.headers),
        422,
        "request.invalid",
    )
    assert refused["errors"]
    assert "severity" in refused["message"]


def test_open_incident_derives_severity_from_assessment(client: TestClient, manager: Actor) -> None:
    body = _open_body(manager, assessment={"multiple_departments": True})
    del body["severity"]
    response = client.post("/incidents", json=body, headers=manager.headers)
    assert response.status_code == 201, response.text
    assert response.json()["severity"] == "P2"


def test_open_incident_links_given_cis_in_same_command(
    client: TestClient, admin: Actor, manager: Actor
) -> None:
    cis = [_register_ci(client, admin), _register_ci(client, admin)]
    response = client.post(
        "/incidents", json=_open_body(manager, configuration_items=cis), headers=manager.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 3  # opened + two CI links, one append
    state = client.get(f"/incidents/{response.json()['number']}", headers=manager.headers).json()
    assert state["configuration_items"] == cis


# --- time ----------------------------------------------------------------------------------------


def test_acknowledge_incident_keeps_backdated_occurred_at(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    backdated = datetime.now(UTC) - timedelta(minutes=20)
    response = client.post(
        f"/incidents/{incident['number']}/acknowledge",
        json={"occurred_at": backdated.isoformat()},
        headers=manager.headers,
    )
    assert response.status_code == 200, response.text
    state = client.get(f"/incidents/{incident['number']}", headers=manager.headers).json()
    assert datetime.fromisoformat(state["acknowledged_at"]) == backdated


# --- optimistic locking --------------------------------------------------------------------------


def test_acknowledge_incident_refused_when_expected_version_mismatch(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    current = incident["version"]
    body = refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/acknowledge",
            json={"expected_version": current + 5},
            headers=manager.headers,
        ),
        409,
        "concurrency.version_mismatch",
    )
    assert body["current_version"] == current

    accepted = client.post(
        f"/incidents/{incident['number']}/acknowledge",
        json={"expected_version": current},
        headers=manager.headers,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["version"] == current + 1


def test_change_status_refuses_loser_when_concurrent(
    service: Service, manager: Actor, incident: dict[str, Any], event_count: Callable[[], int]
) -> None:
    before = event_count()
    manager_uuid = UUID(manager.id)
    barrier = threading.Barrier(4)
    results: list[str] = []

    def move() -> None:
        barrier.wait()
        try:
            service.execute(
                ChangeIncidentStatus(
                    incident=incident["number"],
                    status=IncidentStatus.IN_PROGRESS,
                    expected_version=incident["version"],
                ),
                manager_uuid,
            )
            results.append("ok")
        except Exception as exc:  # the losers: a 409 of some kind
            results.append(getattr(exc, "code", repr(exc)))

    threads = [threading.Thread(target=move) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count("ok") == 1, results
    assert all(
        r in ("ok", "concurrency.conflict", "concurrency.version_mismatch") for r in results
    ), results
    assert event_count() == before + 1


def test_open_incident_issues_distinct_consecutive_numbers_when_concurrent(
    client: TestClient, service: Service, manager: Actor
) -> None:
    barrier = threading.Barrier(5)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            outcome = service.execute(
                OpenIncident(
                    title="Concurrent",
                    description="race",
                    category=Category.NETWORK,
                    impact=Level.LOW,
                    urgency=Level.LOW,
                    reported_by=UUID(manager.id),
                    detection_time=datetime.now(UTC) - timedelta(minutes=1),
                    severity=Severity.P4,
                ),
                UUID(manager.id),
            )
            numbers.append(str(outcome.number))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    values = sorted(int(n[3:]) for n in numbers)
    assert len(set(values)) == 5
    assert values == list(range(values[0], values[0] + 5))  # gapless, none reused


# --- unknown records -----------------------------------------------------------------------------


def test_get_incident_refused_when_number_unknown(client: TestClient, manager: Actor) -> None:
    response = client.get("/incidents/INC9999999", headers=manager.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "incident.not_found"


@pytest.mark.parametrize("ref", ["random-uuid", "other-record-uuid", "not-a-reference"])
def test_get_incident_refused_when_reference_unknown(
    client: TestClient, manager: Actor, ref: str
) -> None:
    value = {
        "random-uuid": str(uuid4()),
        "other-record-uuid": manager.id,  # a user's UUID is not an incident
        "not-a-reference": "hello",
    }[ref]
    response = client.get(f"/incidents/{value}", headers=manager.headers)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "incident.not_found"


@pytest.mark.parametrize("ref", ["INC9999999", "uuid"])
def test_acknowledge_incident_refused_when_incident_unknown(
    client: TestClient, manager: Actor, refuse: Refuse, ref: str
) -> None:
    value = str(uuid4()) if ref == "uuid" else ref
    refuse(
        lambda: client.post(f"/incidents/{value}/acknowledge", headers=manager.headers),
        404,
        "incident.not_found",
    )


def test_get_incident_accepts_uuid_and_lowercase_number(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    by_id = client.get(f"/incidents/{incident['id']}", headers=manager.headers)
    by_number = client.get(f"/incidents/{incident['number'].lower()}", headers=manager.headers)
    assert by_id.status_code == by_number.status_code == 200
    assert by_id.json()["number"] == by_number.json()["number"] == incident["number"]


# --- details -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch",
    [{"title": "Checkout latency"}, {"severity": "P3"}, {"impact": "medium", "urgency": "medium"}],
    ids=["same-title", "same-severity", "same-levels"],
)
def test_update_details_refused_when_nothing_changes(
    client: TestClient,
    manager: Actor,
    incident: dict[str, Any],
    refuse: Refuse,
    patch: dict[str, Any],
) -> None:
    refuse(
        lambda: client.patch(
            f"/incidents/{incident['number']}", json=patch, headers=manager.headers
        ),
        409,
        "incident.no_change",
    )


def test_update_details_reprioritises_keeping_old_severity(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    response = client.patch(
        f"/incidents/{incident['number']}",
        json={"severity": "P1", "title": "Checkout down"},
        headers=manager.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["severity"] == "P1"
    timeline = client.get(f"/incidents/{incident['number']}/timeline", headers=manager.headers)
    entries = {e["event_type"]: e for e in timeline.json()["entries"]}
    assert entries["Incident.Reprioritised"]["changes"]["severity"] == ["P3", "P1"]
    assert entries["Incident.DetailsUpdated"]["changes"]["title"] == [
        "Checkout latency",
        "Checkout down",
    ]


# --- configuration items -------------------------------------------------------------------------


def test_link_ci_refused_when_already_linked(
    client: TestClient, admin: Actor, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    ci = _register_ci(client, admin)
    path = f"/incidents/{incident['number']}/configuration-items"
    first = client.post(path, json={"configuration_item": ci}, headers=manager.headers)
    assert first.status_code == 200, first.text
    refuse(
        lambda: client.post(path, json={"configuration_item": ci}, headers=manager.headers),
        409,
        "incident.ci_already_linked",
    )


def test_link_ci_refused_when_ci_unknown(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/configuration-items",
            json={"configuration_item": str(uuid4())},
            headers=manager.headers,
        ),
        404,
        "configuration_item.not_found",
    )


# --- escalations ---------------------------------------------------------------------------------


def _escalate(
    client: TestClient, actor: Actor, number: str, target: str, reason: str = "needs budget"
) -> httpx.Response:
    return client.post(
        f"/incidents/{number}/escalations",
        json={"escalated_to": target, "reason": reason},
        headers=actor.headers,
    )


@pytest.mark.parametrize("path", [("resolved",), ("monitoring",), ("resolved", "closed")])
def test_escalate_refused_when_incident_not_open(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
    refuse: Refuse,
    path: tuple[str, ...],
) -> None:
    _walk(client, manager, incident["number"], *path)
    target = make_user("executive")
    refuse(
        lambda: _escalate(client, manager, incident["number"], target.id),
        409,
        "incident.not_open",
    )


def test_escalate_refused_when_target_inactive(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
    refuse: Refuse,
) -> None:
    target = make_user("executive")
    _deactivate(client, admin, target)
    refuse(lambda: _escalate(client, manager, incident["number"], target.id), 409, "user.inactive")


def test_escalate_refused_when_target_unknown(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: _escalate(client, manager, incident["number"], str(uuid4())),
        404,
        "user.not_found",
    )


def test_escalate_refused_when_reason_blank(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
    refuse: Refuse,
) -> None:
    target = make_user("executive")
    body = refuse(
        lambda: _escalate(client, manager, incident["number"], target.id, reason="   "),
        422,
        "request.invalid",
    )
    assert any(e["field"] == "reason" for e in body["errors"]), body


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("denied", "approved"),
        ("cancelled", "pending"),
        ("approved", "denied"),
        ("approved", "approved"),
    ],
)
def test_update_escalation_status_refused_when_transition_invalid(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
    refuse: Refuse,
    first: str,
    second: str,
) -> None:
    created = _escalate(client, manager, incident["number"], make_user("executive").id)
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    path = f"/escalations/{created.json()['id']}/status"
    moved = client.post(path, json={"status": first}, headers=manager.headers)
    assert moved.status_code == 200, moved.text
    body = refuse(
        lambda: client.post(path, json={"status": second}, headers=manager.headers),
        409,
        "escalation.invalid_transition",
    )
    assert body["current_status"] == first


def test_update_escalation_status_records_work_note_on_incident(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
) -> None:
    created = _escalate(client, manager, incident["number"], make_user("executive").id)
    moved = client.post(
        f"/escalations/{created.json()['id']}/status",
        json={"status": "approved"},
        headers=manager.headers,
    )
    assert moved.status_code == 200, moved.text
    timeline = client.get(f"/incidents/{incident['number']}/timeline", headers=manager.headers)
    notes = [e for e in timeline.json()["entries"] if e["event_type"] == "WorkNote.Added"]
    assert [n["changes"]["note_text"][1] for n in notes] == [
        "Escalation status updated to approved."
    ]


def test_update_escalation_status_refused_when_escalation_unknown(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            f"/escalations/{uuid4()}/status", json={"status": "approved"}, headers=manager.headers
        ),
        404,
        "escalation.not_found",
    )


# --- work notes ----------------------------------------------------------------------------------


def _note(client: TestClient, actor: Actor, number: str, **fields: Any) -> httpx.Response:
    body = {"note_type": "troubleshooting", "note_text": "restarted the pool", **fields}
    return client.post(f"/incidents/{number}/work-notes", json=body, headers=actor.headers)


def test_add_work_note_refused_when_both_incident_and_problem(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: _note(client, manager, incident["number"], problem="PRB0000001"),
        422,
        "request.invalid",
    )


def test_add_work_note_refused_when_problem_unknown(
    service: Service, manager: Actor, event_count: Callable[[], int]
) -> None:
    # No HTTP route adds a work note to a problem yet (problems are not built); ask the ledger.
    before = event_count()
    command = AddWorkNote(
        problem="PRB9999999", note_type=NoteType.PROGRESS_UPDATE, note_text="looking"
    )
    with pytest.raises(NotFound) as refused:
        service.execute(command, UUID(manager.id))
    assert refused.value.code == "problem.not_found"
    assert event_count() == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"note_text": "   "}, "note_text"),
        ({"note_text": ""}, "note_text"),
        ({"note_type": "gossip"}, "note_type"),
    ],
    ids=["blank", "empty", "unknown-type"],
)
def test_add_work_note_refused_when_input_invalid(
    client: TestClient,
    manager: Actor,
    incident: dict[str, Any],
    refuse: Refuse,
    fields: dict[str, Any],
    field: str,
) -> None:
    body = refuse(
        lambda: _note(client, manager, incident["number"], **fields), 422, "request.invalid"
    )
    assert any(e["field"] == field for e in body["errors"]), body


def test_update_work_note_refused_when_text_unchanged(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    note = _note(client, manager, incident["number"], note_text="first finding")
    assert note.status_code == 201, note.text
    path = f"/work-notes/{note.json()['id']}"
    refuse(
        lambda: client.patch(path, json={"note_text": "first finding"}, headers=manager.headers),
        409,
        "work_note.no_change",
    )


def test_update_work_note_keeps_old_text_in_history(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    note = _note(client, manager, incident["number"], note_text="first finding")
    updated = client.patch(
        f"/work-notes/{note.json()['id']}",
        json={"note_text": "corrected finding"},
        headers=manager.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    timeline = client.get(f"/incidents/{incident['number']}/timeline", headers=manager.headers)
    changes = [
        e["changes"] for e in timeline.json()["entries"] if e["event_type"] == "WorkNote.Updated"
    ]
    assert changes == [{"note_text": ["first finding", "corrected finding"]}]


def test_update_work_note_refused_when_note_unknown(
    client: TestClient, manager: Actor, refuse: Refuse
) -> None:
    refuse(
        lambda: client.patch(
            f"/work-notes/{uuid4()}", json={"note_text": "x"}, headers=manager.headers
        ),
        404,
        "work_note.not_found",
    )


# --- communications ------------------------------------------------------------------------------


def _communication(client: TestClient, actor: Actor, number: str, **fields: Any) -> httpx.Response:
    body = {
        "communication_type": "status_update",
        "recipient_type": "internal",
        "delivery_method": "email",
        "message_content": "We are on it.",
        **fields,
    }
    return client.post(f"/incidents/{number}/communications", json=body, headers=actor.headers)


def test_send_communication_refused_when_recipient_inactive(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    make_user: Callable[..., Actor],
    incident: dict[str, Any],
    refuse: Refuse,
) -> None:
    recipient = make_user("executive")
    _deactivate(client, admin, recipient)
    refuse(
        lambda: _communication(client, manager, incident["number"], recipient=recipient.id),
        409,
        "user.inactive",
    )


def test_send_communication_refused_when_both_incident_and_problem(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: _communication(client, manager, incident["number"], problem="PRB0000001"),
        422,
        "request.invalid",
    )


@pytest.mark.parametrize(
    "fields",
    [{"delivery_method": "pigeon"}, {"recipient_type": "press"}, {"delivery_status": "lost"}],
    ids=["delivery_method", "recipient_type", "delivery_status"],
)
def test_send_communication_refused_when_enum_unknown(
    client: TestClient,
    manager: Actor,
    incident: dict[str, Any],
    refuse: Refuse,
    fields: dict[str, Any],
) -> None:
    body = refuse(
        lambda: _communication(client, manager, incident["number"], **fields),
        422,
        "request.invalid",
    )
    assert [e["field"] for e in body["errors"]] == list(fields)


# --- attachments ---------------------------------------------------------------------------------


def _attachment(**fields: Any) -> dict[str, Any]:
    return {
        "file_name": "dump.txt",
        "file_url": "https://files.example.test/dump.txt",
        "file_type": "text/plain",
        "file_size_bytes": 10,
        **fields,
    }


def test_add_attachment_refused_when_size_negative(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    body = refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/attachments",
            json=_attachment(file_size_bytes=-1),
            headers=manager.headers,
        ),
        422,
        "request.invalid",
    )
    assert [e["field"] for e in body["errors"]] == ["file_size_bytes"]


def test_add_attachment_refused_when_sha256_malformed(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    refuse(
        lambda: client.post(
            f"/incidents/{incident['number']}/attachments",
            json=_attachment(sha256="not-a-digest"),
            headers=manager.headers,
        ),
        422,
        "request.invalid",
    )


@pytest.mark.parametrize(
    ("reference_type", "reference"),
    [
        ("incident", "INC9999999"),
        ("change", "CHG9999999"),
        ("rca", "RCA9999999"),
        ("pir", str(uuid4())),
        ("problem", "PRB9999999"),
        ("communication", str(uuid4())),
        ("report", "RPT9999999"),
    ],
)
def test_add_attachment_refused_when_reference_unknown(
    client: TestClient, manager: Actor, refuse: Refuse, reference_type: str, reference: str
) -> None:
    refuse(
        lambda: client.post(
            "/attachments",
            json=_attachment(reference_type=reference_type, reference=reference),
            headers=manager.headers,
        ),
        404,
        f"{reference_type}.not_found",
    )


def test_add_attachment_refused_when_reference_is_other_record_type(
    client: TestClient, manager: Actor, incident: dict[str, Any], refuse: Refuse
) -> None:
    # an incident's id named as a communication is not a communication
    refuse(
        lambda: client.post(
            "/attachments",
            json=_attachment(reference_type="communication", reference=incident["id"]),
            headers=manager.headers,
        ),
        404,
        "communication.not_found",
    )


def test_add_attachment_accepted_on_existing_records(
    client: TestClient, manager: Actor, incident: dict[str, Any]
) -> None:
    number = incident["number"]
    sent = _communication(client, manager, number)
    assert sent.status_code == 201, sent.text
    on_incident = client.post(
        f"/incidents/{number}/attachments",
        json=_attachment(file_size_bytes=0, sha256="a" * 64),
        headers=manager.headers,
    )
    on_communication = client.post(
        "/attachments",
        json=_attachment(reference_type="communication", reference=sent.json()["id"]),
        headers=manager.headers,
    )
    assert on_incident.status_code == on_communication.status_code == 201
    timeline = client.get(f"/incidents/{number}/timeline", headers=manager.headers).json()
    attached = [e for e in timeline["entries"] if e["event_type"] == "Attachment.Added"]
    assert len(attached) == 2  # both belong to the incident's history
