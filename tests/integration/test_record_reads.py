"""Reads of every record type over HTTP: `GET /<collection>/{id}` shows what the command answered,
lists filter by exact match and time, page with a cursor, and the records view's fields agree
with each record's own state (the view only finds ids; a wrong field would hide a record)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from api.collections import COLLECTIONS
from api.database import Database
from api.service import Service
from tests.conftest import Actor, Refuse

COMMAND_ONLY = {"type", "position", "extra", "key", "severity", "number", "status"}
"""Command answer keys that are not the record's state (when the record has no such field)."""


def state_of(answer: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The command's answer less what only a command answers."""
    return {k: v for k, v in answer.items() if k not in COMMAND_ONLY or k in record}


@pytest.fixture
def records(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """One record of each type, created through the API, with the command's answer."""
    incident = open_incident()
    iid = incident["id"]
    other = make_user("incident_manager")

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body, headers=manager.headers)
        assert response.status_code == 201, response.text
        assert response.headers["Location"].endswith(response.json()["id"])
        return dict(response.json())

    communication = post(
        f"/incidents/{iid}/communications",
        {
            "communication_type": "status_update",
            "recipient_type": "internal",
            "delivery_method": "email",
            "delivery_status": "sent",
            "message_content": "We are on it",
            "recipient": other.id,
        },
    )
    return {
        "incident": incident,
        "escalations": post(
            f"/incidents/{iid}/escalations", {"escalated_to": other.id, "reason": "DB locks"}
        ),
        "work-notes": post(
            f"/incidents/{iid}/work-notes",
            {"note_type": "troubleshooting", "note_text": "Restarted the pool"},
        ),
        "communications": communication,
        "attachments": post(
            "/attachments",
            {
                "reference_type": "communication",
                "reference": communication["id"],
                "file_name": "mail.eml",
                "file_url": "https://files.example.test/mail.eml",
                "file_type": "message/rfc822",
                "file_size_bytes": 2048,
            },
        ),
    }


@pytest.mark.parametrize("path", ["escalations", "work-notes", "communications", "attachments"])
def test_a_record_reads_back_as_its_command_answered_and_lists_by_its_fields(
    client: TestClient, manager: Actor, records: dict[str, dict[str, Any]], path: str
) -> None:
    answer = records[path]
    one = client.get(f"/{path}/{answer['id']}", headers=manager.headers)
    assert one.status_code == 200, one.text
    record = one.json()
    assert record == state_of(answer, record)
    assert one.headers["ETag"] == f'"{record["version"]}"'
    collection = next(c for c in COLLECTIONS if c.path == f"/{path}")
    position = {"Ledger-Min-Position": str(answer["position"])}
    for name in collection.filters:
        if record.get(name) is None:
            continue
        found = client.get(
            f"/{path}", params={name: record[name]}, headers=manager.headers | position
        )
        assert found.status_code == 200, found.text
        assert record["id"] in [r["id"] for r in found.json()["items"]], name
        for item in found.json()["items"]:
            assert item[name] == record[name]
    everything = {n: record[n] for n in collection.filters if record.get(n) is not None}
    found = client.get(f"/{path}", params=everything, headers=manager.headers | position)
    assert [r["id"] for r in found.json()["items"]] == [record["id"]]
    later = client.get(
        f"/{path}",
        params={"created_from": record["updated_at"].replace("Z", "+00:00")} | everything,
        headers=manager.headers | position,
    )
    assert [r["id"] for r in later.json()["items"]] == [record["id"]]
    none = client.get(
        f"/{path}",
        params={"created_to": "2001-01-01T00:00:00Z"},
        headers=manager.headers | position,
    )
    assert none.json()["items"] == []


def test_an_approvers_view_of_their_records_uses_me(
    client: TestClient, make_user: Callable[..., Actor], open_incident: Callable[..., Any]
) -> None:
    target = make_user("incident_manager")
    asker = make_user("incident_manager")
    incident = open_incident(actor=asker)
    escalated = client.post(
        f"/incidents/{incident['id']}/escalations",
        json={"escalated_to": target.id, "reason": "needs a DBA"},
        headers=asker.headers,
    ).json()
    mine = client.get(
        "/escalations",
        params={"escalated_to": "me", "status": "pending", "min_position": escalated["position"]},
        headers=target.headers,
    )
    assert [e["id"] for e in mine.json()["items"]] == [escalated["id"]]
    theirs = client.get(
        "/escalations",
        params={"escalated_to": "me", "min_position": escalated["position"]},
        headers=asker.headers,
    )
    assert escalated["id"] not in [e["id"] for e in theirs.json()["items"]]


def test_pages_walk_every_record_once_in_creation_order(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    incident = open_incident()
    made = [
        client.post(
            f"/incidents/{incident['id']}/work-notes",
            json={"note_type": "progress_update", "note_text": f"step {i}"},
            headers=manager.headers,
        ).json()
        for i in range(5)
    ]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {
            "incident_id": incident["id"],
            "limit": 2,
            "order": "asc",
            "min_position": made[-1]["position"],
        }
        if cursor:
            params["cursor"] = cursor
        page = client.get("/work-notes", params=params, headers=manager.headers).json()
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [n["id"] for n in made]


def test_an_earlier_version_and_the_refusals(
    client: TestClient, manager: Actor, records: dict[str, dict[str, Any]], refuse: Refuse
) -> None:
    note = records["work-notes"]
    client.patch(f"/work-notes/{note['id']}", json={"note_text": "Fixed"}, headers=manager.headers)
    first = client.get(f"/work-notes/{note['id']}?as_of_version=1", headers=manager.headers)
    assert first.json()["note_text"] == "Restarted the pool"
    assert client.get(f"/work-notes/{note['id']}", headers=manager.headers).json()["version"] == 2
    refuse(
        lambda: client.get(f"/work-notes/{note['id']}?as_of_version=3", headers=manager.headers),
        404,
        "work_note.version_not_found",
    )
    refuse(
        lambda: client.get(f"/work-notes/{records['incident']['id']}", headers=manager.headers),
        404,
        "work_note.not_found",
    )
    refuse(
        lambda: client.get("/escalations?escalated_to=nobody", headers=manager.headers),
        422,
        "query.invalid",
    )
    refuse(
        lambda: client.get("/work-notes?cursor=abc", headers=manager.headers),
        422,
        "query.invalid",
    )
    forged = base64.urlsafe_b64encode(b'["2024-01-01T00:00:00+00:00", 1]').decode()
    refuse(
        lambda: client.get("/work-notes", params={"cursor": forged}, headers=manager.headers),
        422,
        "query.invalid",
    )
    refuse(
        lambda: client.get("/work-notes?created_from=2024-01-01T00:00:00", headers=manager.headers),
        422,
        "request.invalid",
    )


def test_a_client_contact_reads_no_other_collection(
    client: TestClient, admin: Actor, make_user: Callable[..., Actor], refuse: Refuse
) -> None:
    registered = client.post(
        "/clients",
        json={
            "client_name": "Contoso",
            "registration_number": "C-1",
            "company_type": "smb",
            "support_coverage": "business_hours",
            "preferred_communication": "email",
        },
        headers=admin.headers,
    ).json()
    contact = make_user("client_contact", client_id=registered["id"])
    refuse(lambda: client.get("/work-notes", headers=contact.headers), 403, "role.forbidden")
    refuse(
        lambda: client.get(f"/clients/{registered['id']}", headers=contact.headers),
        403,
        "role.forbidden",
    )
    assert client.get(f"/users/{contact.id}", headers=contact.headers).status_code == 200


def test_the_view_holds_each_records_filterable_fields_as_the_record_does(
    service: Service, database: Database, records: dict[str, dict[str, Any]]
) -> None:
    service.project()
    by_type = {c.aggregate.__name__: c for c in COLLECTIONS}
    with psycopg.connect(**database.conninfo(), row_factory=dict_row) as conn:
        rows = conn.execute("SELECT id, record_type, version, fields FROM record_view").fetchall()
    checked = 0
    for row in rows:
        collection = by_type.get(row["record_type"])
        if collection is None:
            continue
        state = service.ledger.repository.get(row["id"], version=row["version"]).state()
        for name in (*collection.filters, *collection.times):
            assert row["fields"].get(name) == state[name], (row["record_type"], name)
        checked += 1
    assert checked >= len(records) - 1


def test_a_problem_reads_back_lists_and_has_a_timeline_with_its_incidents_links(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    first, second = open_incident(), open_incident()
    opened = client.post(
        "/problems",
        json={
            "title": "Pool exhaustion",
            "description": "connections leak under load",
            "category": "database",
            "assigned_to": manager.id,
            "incidents": [first["number"]],
        },
        headers=manager.headers,
    )
    assert opened.status_code == 201, opened.text
    problem = opened.json()
    assert opened.headers["Location"] == f"/problems/{problem['id']}"
    linked = client.post(
        f"/problems/{problem['number']}/incidents",
        json={"incident": second["id"]},
        headers=manager.headers,
    )
    assert linked.status_code == 200, linked.text
    position = {"Ledger-Min-Position": str(linked.json()["position"])}
    record = client.get(f"/problems/{problem['number']}", headers=manager.headers).json()
    assert record == state_of(linked.json(), record)
    assert record["incident_ids"] == [first["id"], second["id"]]
    listed = client.get(
        "/problems", params={"category": "database", "status": "open"},
        headers=manager.headers | position,
    ).json()  # fmt: skip
    assert problem["id"] in [p["id"] for p in listed["items"]]
    incidents = client.get(
        "/incidents", params={"problem_id": problem["id"]}, headers=manager.headers | position
    ).json()
    assert {i["id"] for i in incidents["items"]} == {first["id"], second["id"]}
    timeline = client.get(
        f"/problems/{problem['id']}/timeline", headers=manager.headers | position
    ).json()
    types = [e["event_type"] for e in timeline["entries"]]
    assert types.count("Problem.IncidentLinked") == 2
    assert "Problem.Opened" in types
    assert "WorkNote.Added" in types
    assert "Incident.Opened" not in types  # an incident's own history stays on its timeline
    on_incident = client.get(
        f"/incidents/{second['id']}/timeline", headers=manager.headers | position
    ).json()
    linked_types = [e["event_type"] for e in on_incident["entries"]]
    assert "Incident.LinkedToProblem" in linked_types
    assert "Communication.Sent" in linked_types  # to the incident's manager, on both timelines
    assert [e["position"] for e in on_incident["entries"]] == sorted(
        e["position"] for e in on_incident["entries"]
    )
