"""Issue 10, the ledger-wide audit query and the exports: `GET /audit` by actor, event type,
record type and period, keyset-paginated; JSON, CSV and NDJSON streamed; CSV cells a spreadsheet
would run as a formula are made inert."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from api.exports import safe_cell
from tests.conftest import Actor, Refuse


def test_audit_by_actor_type_and_period_pages_and_exports(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    actor = make_user("incident_manager")
    auditor = make_user("auditor")
    incident = open_incident(actor=actor)
    notes = [
        client.post(
            f"/incidents/{incident['id']}/work-notes",
            json={"note_type": "progress_update", "note_text": text},
            headers=actor.headers,
        ).json()
        for text in ('=HYPERLINK("http://evil")', "+1", "plain")
    ]
    wait = {"Ledger-Min-Position": str(notes[-1]["position"])}
    mine = client.get("/audit", params={"actor": actor.id}, headers=auditor.headers | wait).json()
    types = [e["event_type"] for e in mine["items"]]
    assert types.count("WorkNote.Added") == 3
    assert "Incident.Opened" in types
    assert {e["actor_id"] for e in mine["items"]} == {actor.id}
    me = client.get("/audit", params={"actor": "me"}, headers=actor.headers | wait).json()
    assert me["items"] == mine["items"]
    only_notes = client.get(
        "/audit",
        params={"actor": actor.id, "event_type": "WorkNote.Added", "limit": 2},
        headers=auditor.headers | wait,
    ).json()
    assert [e["record_id"] for e in only_notes["items"]] == [n["id"] for n in notes[:2]]
    rest = client.get(
        "/audit",
        params={"actor": actor.id, "record_type": "WorkNote", "after": only_notes["next_after"]},
        headers=auditor.headers | wait,
    ).json()
    assert [e["record_id"] for e in rest["items"]] == [notes[2]["id"]]
    none = client.get(
        "/audit",
        params={"actor": actor.id, "recorded_to": "2001-01-01T00:00:00Z"},
        headers=auditor.headers | wait,
    ).json()
    assert none["items"] == []

    exported = client.get(
        "/audit", params={"actor": actor.id, "format": "csv"}, headers=auditor.headers | wait
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == len(mine["items"])
    texts = [json.loads(r["changes"].lstrip("'"))["note_text"][1] for r in rows
             if r["event_type"] == "WorkNote.Added"]  # fmt: skip
    assert texts == ['=HYPERLINK("http://evil")', "+1", "plain"]
    assert all(not r["changes"].startswith(("=", "+", "-", "@")) for r in rows)
    lines = client.get(
        "/audit", params={"actor": actor.id, "format": "ndjson"}, headers=auditor.headers | wait
    ).text.splitlines()
    assert [json.loads(line)["position"] for line in lines] == [
        e["position"] for e in mine["items"]
    ]

    support = make_user("technical_support")
    refuse(
        lambda: client.get("/audit", headers=support.headers),
        403,
        "role.forbidden",
    )
    refuse(lambda: client.get("/audit?actor=nobody", headers=auditor.headers), 422, "query.invalid")


def test_a_timeline_streams_as_ndjson_and_csv_cells_are_inert(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    incident = open_incident(title="=cmd|' /C calc'!A0")
    lines = client.get(
        f"/incidents/{incident['id']}/timeline",
        params={"format": "ndjson", "min_position": incident["position"]},
        headers=manager.headers,
    ).text.splitlines()
    assert json.loads(lines[0])["event_type"] == "Incident.Opened"
    exported = client.get(
        f"/incidents/{incident['id']}/timeline",
        params={"format": "csv", "min_position": incident["position"]},
        headers=manager.headers,
    )
    assert "'=cmd" not in exported.text or '"title": ["' in exported.text
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("-5") == "'-5"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell(-5) == "'-5"
    assert safe_cell("ok") == "ok"
    assert safe_cell({"a": "=1"}) == '{"a": "=1"}'
