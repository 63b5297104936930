"""SOP 4 and 5 over HTTP against PostgreSQL: open a bridge (201), add participants, leave, close;
refusals with their status and code and nothing appended; "already closed" answers 409 and records
exactly its work note; malformed bodies are 422."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor, Refuse

Opener = Callable[..., dict[str, Any]]


def _status(client: TestClient, actor: Actor, number: str, *statuses: str) -> None:
    for status in statuses:
        moved = client.post(
            f"/incidents/{number}/status", json={"status": status}, headers=actor.headers
        )
        assert moved.status_code == 200, moved.text


def _join(user: str, role: str = "technical_support") -> dict[str, str]:
    return {"user": user, "role_in_bridge": role}


@pytest.fixture
def p1(open_incident: Opener) -> dict[str, Any]:
    """A P1 incident with its major-incident bridge (hosted by the `manager` fixture)."""
    opened = open_incident(severity="P1")
    assert opened["extra"]["bridge_number"].startswith("BRG")
    return opened


def test_open_bridge_with_participants_answers_201(
    client: TestClient, manager: Actor, make_user: Callable[..., Actor], open_incident: Opener
) -> None:
    support = make_user("technical_support")
    number = open_incident()["number"]  # P3, open

    opened = client.post(
        f"/incidents/{number}/bridges",
        json={"bridge_type": "coordination", "participants": [_join(support.id)]},
        headers=manager.headers,
    )

    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert (body["type"], body["status"]) == ("Bridge", "active")
    assert body["number"].startswith("BRG")
    assert body["extra"]["incident_status"] == "in_progress"
    assert "work_note_id" in body["extra"]
    state = client.get(f"/incidents/{number}", headers=manager.headers).json()
    assert state["status"] == "in_progress"


def test_participants_join_leave_and_the_bridge_closes(
    client: TestClient, manager: Actor, make_user: Callable[..., Actor], p1: dict[str, Any]
) -> None:
    support, executive = make_user("technical_support"), make_user("executive")
    bridge, number = p1["extra"]["bridge_number"], p1["number"]

    added = client.post(
        f"/bridges/{bridge}/participants",
        json={"participants": [_join(support.id), _join(executive.id, "executive")]},
        headers=manager.headers,
    )
    assert added.status_code == 200, added.text
    assert added.json()["extra"]["work_note_id"]
    left = client.post(
        f"/bridges/{bridge}/participants/{support.id}/leave", headers=manager.headers
    )
    assert left.status_code == 200, left.text
    assert left.json()["version"] == added.json()["version"] + 1

    _status(client, manager, number, "resolved")
    closed = client.post(f"/bridges/{bridge}/close", headers=manager.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"

    timeline = client.get(f"/incidents/{number}/timeline", headers=manager.headers).json()
    kinds = [e["event_type"] for e in timeline["entries"]]
    for kind in ("Bridge.ParticipantsAdded", "Bridge.ParticipantLeft", "Bridge.Closed"):
        assert kind in kinds
    notes = [
        e["changes"]["note_text"][1]
        for e in timeline["entries"]
        if e["event_type"] == "WorkNote.Added"
    ]
    assert f"Bridge participant(s) added to bridge {bridge} for incident {number}" in notes
    assert any(n.startswith(f"Bridge closed for the incident {number} by ") for n in notes)


def test_close_already_closed_bridge_is_409_and_records_its_work_note(
    client: TestClient,
    manager: Actor,
    p1: dict[str, Any],
    event_count: Callable[[], int],
) -> None:
    bridge, number = p1["extra"]["bridge_number"], p1["number"]
    _status(client, manager, number, "resolved")
    assert client.post(f"/bridges/{bridge}/close", headers=manager.headers).status_code == 200
    headers = {**manager.headers, "Idempotency-Key": f"close-{bridge}"}

    before = event_count()
    again = client.post(f"/bridges/{bridge}/close", headers=headers)

    assert again.status_code == 409, again.text
    assert again.json()["code"] == "bridge.already_closed"
    assert "Idempotent-Replayed" not in again.headers
    assert event_count() == before + 1  # the work note, and nothing else
    note = client.get(f"/work-notes/{again.json()['work_note_id']}", headers=manager.headers)
    assert note.status_code == 200, note.text
    assert note.json()["note_text"] == "Bridge already closed."
    # The refusal says where its note is, and the refused client's next read waits for it.
    timeline = client.get(f"/incidents/{number}/timeline", headers=manager.headers).json()
    assert timeline["entries"][-1]["position"] == again.json()["position"]
    assert timeline["entries"][-1]["record_id"] == again.json()["work_note_id"]

    replayed = client.post(f"/bridges/{bridge}/close", headers=headers)
    assert replayed.status_code == 409
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["work_note_id"] == again.json()["work_note_id"]
    assert event_count() == before + 1


def test_bridge_refusals_append_nothing(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Opener,
    p1: dict[str, Any],
    refuse: Refuse,
) -> None:
    bridge, number = p1["extra"]["bridge_number"], p1["number"]
    support = make_user("technical_support")

    def post(path: str, body: Any = None, actor: Actor = manager) -> Callable[[], Any]:
        return lambda: client.post(path, json=body, headers=actor.headers)

    refuse(
        post(f"/incidents/{number}/bridges", {"bridge_type": "major_incident"}),
        409,
        "bridge.already_active",
    )
    p3 = open_incident()["number"]
    refuse(
        post(f"/incidents/{p3}/bridges", {"bridge_type": "major_incident"}),
        409,
        "bridge.wrong_type",
    )
    unassigned = open_incident(assigned_to=None)["number"]
    refuse(
        post(f"/incidents/{unassigned}/bridges", {"bridge_type": "technical"}),
        409,
        "bridge.no_incident_manager",
    )
    refuse(
        post(f"/bridges/{bridge}/participants", {"participants": [_join(manager.id)]}),
        409,
        "bridge.already_participant",
    )
    refuse(
        post(f"/bridges/{bridge}/participants", {"participants": [_join(support.id, "host")]}),
        409,
        "bridge.host_reserved",
    )
    refuse(
        post(f"/bridges/{bridge}/participants/{manager.id}/leave"), 409, "bridge.host_cannot_leave"
    )
    refuse(
        post(f"/bridges/{bridge}/participants/{support.id}/leave"), 409, "bridge.not_participant"
    )
    refuse(post(f"/bridges/{bridge}/close"), 409, "bridge.incident_not_resolved")
    refuse(post("/bridges/BRG9999999/close"), 404, "bridge.not_found")
    refuse(
        post(f"/incidents/{p3}/bridges", {"bridge_type": "technical"}, support),
        403,
        "role.forbidden",
    )
    _status(client, manager, number, "resolved")
    refuse(post(f"/incidents/{number}/status", {"status": "closed"}), 409, "incident.bridge_active")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/bridges/{bridge}/participants", {"participants": []}),
        ("/bridges/{bridge}/participants", {"participants": [{"user": "{user}"}]}),
        (
            "/bridges/{bridge}/participants",
            {"participants": [{"user": "{user}", "role_in_bridge": "observer"}]},
        ),
        (
            "/bridges/{bridge}/participants",
            {
                "participants": [
                    {"user": "{user}", "role_in_bridge": "executive"},
                    {"user": "{user}", "role_in_bridge": "technical_support"},
                ]
            },
        ),
        ("/incidents/{incident}/bridges", {"bridge_type": "war_room"}),
        ("/incidents/{incident}/bridges", {"bridge_type": "technical", "host": "{user}"}),
        ("/bridges/{bridge}/participants/not-a-uuid/leave", None),
    ],
    ids=[
        "nobody",
        "no role",
        "unknown role",
        "user twice",
        "unknown type",
        "host given",
        "bad user",
    ],
)
def test_malformed_bridge_requests_are_422(
    client: TestClient, manager: Actor, p1: dict[str, Any], refuse: Refuse, path: str, body: Any
) -> None:
    import json

    filled = path.format(bridge=p1["extra"]["bridge_number"], incident=p1["number"])
    text = json.dumps(body).replace("{user}", manager.id) if body is not None else None
    refuse(
        lambda: client.post(
            filled, content=text, headers={**manager.headers, "Content-Type": "application/json"}
        ),
        422,
        "request.invalid",
    )
