"""Issue 11, the event feed: `GET /events` read to the end in pages returns every event exactly
once and in order while commands are being written; filters; NDJSON; auditors only."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from api.service import Service
from tests.conftest import Actor


def test_reading_to_the_end_in_pages_while_commands_are_written_sees_each_event_once(
    client: TestClient,
    service: Service,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., Any],
    manager: Actor,
) -> None:
    auditor = make_user("auditor")
    incident = open_incident()
    done = threading.Event()

    def write() -> None:
        for n in range(60):
            client.post(
                f"/incidents/{incident['id']}/work-notes",
                json={"note_type": "progress_update", "note_text": f"note {n}"},
                headers=manager.headers,
            )
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[int] = []
    after = 0
    while True:
        page = client.get(f"/events?after={after}&limit=37", headers=auditor.headers)
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        seen += [item["position"] for item in items]
        after = page.json()["next_after"]
        if not items and done.is_set():
            break
    writer.join()
    assert seen == sorted(set(seen)), "an event twice, or out of order"
    with service.ledger.recorder.datastore.transaction() as curs:  # type: ignore[attr-defined]
        curs.execute("SELECT notification_id FROM incidentledger_events ORDER BY 1")
        stored = [row["notification_id"] for row in curs.fetchall()]
    assert seen == stored


def test_filters_ndjson_and_who_may_read(
    client: TestClient, make_user: Callable[..., Actor], open_incident: Callable[..., Any]
) -> None:
    auditor = make_user("auditor")
    opened = open_incident()
    before = opened["position"] - 1
    page = client.get(
        f"/events?after={before}&event_type=Incident.Opened", headers=auditor.headers
    ).json()
    first = page["items"][0]
    assert first["position"] == opened["position"]
    assert first["record_id"] == opened["id"]
    assert first["type"] == "Incident.Opened"
    assert first["payload"]["number"] == opened["number"]
    assert len(first["hash"]) == 64
    only = client.get(f"/events?after={before}&record_type=Counter", headers=auditor.headers)
    assert {e["record_type"] for e in only.json()["items"]} <= {"Counter"}
    lines = client.get("/events?limit=3&format=ndjson", headers=auditor.headers)
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    parsed = [json.loads(line) for line in lines.text.splitlines()]
    assert [p["position"] for p in parsed] == sorted(p["position"] for p in parsed)
    assert len(parsed) == 3
    refused = client.get("/events", headers=make_user("analyst").headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "role.forbidden")
