"""SOP 17 and 18 over HTTP against PostgreSQL: root-cause analyses, post-incident reviews and
incident reports created (201) and updated (200); refusals with their status and code and nothing
appended; malformed bodies are 422."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor, Refuse

Opener = Callable[..., dict[str, Any]]
DUE = (datetime.now(UTC) + timedelta(days=7)).isoformat()


def _status(client: TestClient, actor: Actor, number: str, *statuses: str) -> None:
    for status in statuses:
        moved = client.post(
            f"/incidents/{number}/status", json={"status": status}, headers=actor.headers
        )
        assert moved.status_code == 200, moved.text


@pytest.fixture
def resolved_p1(client: TestClient, manager: Actor, open_incident: Opener) -> str:
    """A resolved P1 incident (its bridge closed), by number."""
    opened = open_incident(severity="P1")
    _status(client, manager, opened["number"], "resolved")
    closed = client.post(
        f"/bridges/{opened['extra']['bridge_number']}/close", headers=manager.headers
    )
    assert closed.status_code == 200, closed.text
    return str(opened["number"])


def _rca_body(incident: str, assignee: str, **fields: Any) -> dict[str, Any]:
    return {
        "incident": incident,
        "rca_title": "Why checkout fell over",
        "assigned_to": assignee,
        "due_date": DUE,
        "analysis_method": "fault_tree",
        **fields,
    }


def test_rca_started_and_carried_to_approved(
    client: TestClient, manager: Actor, make_user: Callable[..., Actor], resolved_p1: str
) -> None:
    analyst, executive = make_user("technical_support"), make_user("executive")

    started = client.post(
        "/root-cause-analyses", json=_rca_body(resolved_p1, analyst.id), headers=manager.headers
    )

    assert started.status_code == 201, started.text
    body = started.json()
    assert (body["type"], body["status"]) == ("RootCauseAnalysis", "assigned")
    assert body["number"].startswith("RCA")
    rca = body["number"]
    for status, actor in (
        ("in_progress", analyst),
        ("completed", analyst),
        ("approved", executive),
    ):
        moved = client.patch(
            f"/root-cause-analyses/{rca}", json={"status": status}, headers=actor.headers
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status


def test_pir_scheduled_and_completed(
    client: TestClient, manager: Actor, make_user: Callable[..., Actor], resolved_p1: str
) -> None:
    facilitator = make_user("incident_manager")
    _status(client, manager, resolved_p1, "closed")

    scheduled = client.post(
        "/post-incident-reviews",
        json={"incident": resolved_p1, "scheduled_date": DUE, "facilitator": facilitator.id},
        headers=manager.headers,
    )

    assert scheduled.status_code == 201, scheduled.text
    assert (scheduled.json()["type"], scheduled.json()["status"]) == (
        "PostIncidentReview",
        "scheduled",
    )
    assert scheduled.json()["number"] is None
    completed = client.patch(
        f"/post-incident-reviews/{scheduled.json()['id']}",
        json={"status": "completed", "lessons_learned": "Alert on saturation"},
        headers=facilitator.headers,
    )
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"


def test_report_generated_as_draft_and_approved(
    client: TestClient, manager: Actor, resolved_p1: str
) -> None:
    generated = client.post(
        "/incident-reports",
        json={
            "incident": resolved_p1,
            "report_type": "compliance",
            "report_title": "Regulator summary",
            "report_content": "Checkout unavailable 40 minutes.",
        },
        headers=manager.headers,
    )

    assert generated.status_code == 201, generated.text
    assert (generated.json()["status"], generated.json()["number"][:3]) == ("draft", "RPT")
    report = generated.json()["number"]
    for status in ("completed", "approved"):
        moved = client.patch(
            f"/incident-reports/{report}", json={"status": status}, headers=manager.headers
        )
        assert moved.status_code == 200, moved.text
    attached = client.post(
        "/attachments",
        json={
            "reference_type": "report",
            "reference": report,
            "file_name": "summary.pdf",
            "file_url": "https://files.example.test/summary.pdf",
            "file_type": "application/pdf",
            "file_size_bytes": 2048,
        },
        headers=manager.headers,
    )
    assert attached.status_code == 201, attached.text


def test_improvement_refusals_append_nothing(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Opener,
    resolved_p1: str,
    refuse: Refuse,
) -> None:
    analyst = make_user("technical_support")
    p3 = open_incident()["number"]
    _status(client, manager, p3, "resolved")

    def send(method: str, path: str, body: Any, actor: Actor = manager) -> Callable[[], Any]:
        return lambda: client.request(method, path, json=body, headers=actor.headers)

    refuse(
        send("POST", "/root-cause-analyses", _rca_body(p3, analyst.id)),
        409,
        "rca.not_major_incident",
    )
    rca = client.post(
        "/root-cause-analyses", json=_rca_body(resolved_p1, manager.id), headers=manager.headers
    ).json()["number"]
    refuse(
        send("PATCH", f"/root-cause-analyses/{rca}", {"status": "approved"}),
        409,
        "rca.invalid_transition",
    )
    refuse(
        send("PATCH", f"/root-cause-analyses/{rca}", {"findings": "x"}, analyst),
        403,
        "rca.not_assigned_to_you",
    )
    refuse(
        send(
            "POST",
            "/post-incident-reviews",
            {"incident": resolved_p1, "scheduled_date": DUE, "facilitator": manager.id},
        ),
        409,
        "pir.incident_not_closed",
    )
    refuse(
        send(
            "POST",
            "/incident-reports",
            {
                "incident": open_incident()["number"],
                "report_type": "client_impact",
                "report_title": "T",
                "report_content": "C",
            },
        ),
        409,
        "report.incident_not_resolved",
    )
    refuse(
        send("PATCH", "/incident-reports/RPT9999999", {"report_title": "x"}),
        404,
        "report.not_found",
    )
    refuse(
        send("POST", "/root-cause-analyses", _rca_body(resolved_p1, analyst.id), analyst),
        403,
        "role.forbidden",
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/root-cause-analyses",
            {
                "rca_title": "x",
                "assigned_to": "{user}",
                "due_date": DUE,
                "analysis_method": "5_whys",
            },
        ),
        (
            "POST",
            "/root-cause-analyses",
            {
                "incident": "INC0000001",
                "problem": "PRB0000001",
                "rca_title": "x",
                "assigned_to": "{user}",
                "due_date": DUE,
                "analysis_method": "5_whys",
            },
        ),
        (
            "POST",
            "/root-cause-analyses",
            {
                "incident": "INC0000001",
                "rca_title": "x",
                "assigned_to": "{user}",
                "due_date": DUE,
                "analysis_method": "guess",
            },
        ),
        (
            "PATCH",
            "/root-cause-analyses/RCA0000001",
            {"status": "approved", "approved_by": "{user}"},
        ),
        (
            "POST",
            "/post-incident-reviews",
            {"incident": "INC0000001", "scheduled_date": "tomorrow", "facilitator": "{user}"},
        ),
        ("PATCH", "/post-incident-reviews/not-a-uuid", {"status": "completed"}),
        ("PATCH", "/post-incident-reviews/{user}", {"status": "done"}),
        (
            "POST",
            "/incident-reports",
            {
                "incident": "INC0000001",
                "report_type": "memo",
                "report_title": "T",
                "report_content": "C",
            },
        ),
        ("PATCH", "/incident-reports/RPT0000001", {"status": "draft", "number": "RPT0000009"}),
    ],
    ids=[
        "rca without parent",
        "rca with two parents",
        "rca unknown method",
        "rca approved_by is server-owned",
        "pir date not ISO",
        "pir id not a uuid",
        "pir unknown status",
        "report unknown type",
        "report number is server-owned",
    ],
)
def test_malformed_improvement_requests_are_422(
    client: TestClient, manager: Actor, refuse: Refuse, method: str, path: str, body: Any
) -> None:
    refuse(
        lambda: client.request(
            method,
            path.replace("{user}", manager.id),
            content=json.dumps(body).replace("{user}", manager.id),
            headers={**manager.headers, "Content-Type": "application/json"},
        ),
        422,
        "request.invalid",
    )
