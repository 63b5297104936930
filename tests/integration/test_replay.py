"""Issue 11, replay: any record's state as of a moment or a version is rebuilt from its events, and
equals what the live API answered at that moment; the step-through shows every event with the
state it left; backdated steps count from when they happened with `as_of_basis=occurred`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.database import Database
from tests.conftest import Actor, Refuse
from tests.integration.databases import cli, url


def test_as_of_a_moment_equals_what_the_api_answered_then(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    incident = open_incident()
    path = f"/incidents/{incident['id']}"
    seen: list[tuple[datetime, dict[str, Any]]] = []

    def remember() -> None:
        time.sleep(0.01)
        seen.append((datetime.now(UTC), client.get(path, headers=manager.headers).json()))
        time.sleep(0.01)

    remember()
    for step in (
        lambda: client.post(f"{path}/acknowledge", headers=manager.headers),
        lambda: client.post(
            f"{path}/status", json={"status": "in_progress"}, headers=manager.headers
        ),
        lambda: client.patch(path, json={"title": "Checkout down"}, headers=manager.headers),
        lambda: client.post(f"{path}/status", json={"status": "resolved"}, headers=manager.headers),
    ):
        assert step().status_code == 200
        remember()
    for moment, state in seen:
        replayed = client.get(path, params={"as_of": moment.isoformat()}, headers=manager.headers)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == state
    steps = client.get(f"{path}/events", headers=manager.headers).json()
    assert [s["version"] for s in steps] == list(range(1, len(steps) + 1))
    assert steps[-1]["state"]["status"] == "resolved"
    assert [s["type"] for s in steps][:2] == ["Incident.Opened", "Incident.Acknowledged"]
    renamed = next(s for s in steps if s["type"] == "Incident.DetailsUpdated")
    assert renamed["changes"] == {"title": ["Checkout latency", "Checkout down"]}


def test_every_record_type_replays_and_steps_through(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]], refuse: Refuse
) -> None:
    incident = open_incident()
    note = client.post(
        f"/incidents/{incident['id']}/work-notes",
        json={"note_type": "troubleshooting", "note_text": "first"},
        headers=manager.headers,
    ).json()
    between = datetime.now(UTC)
    time.sleep(0.01)
    client.patch(f"/work-notes/{note['id']}", json={"note_text": "second"}, headers=manager.headers)
    earlier = client.get(
        f"/work-notes/{note['id']}", params={"as_of": between.isoformat()}, headers=manager.headers
    ).json()
    assert (earlier["note_text"], earlier["version"]) == ("first", 1)
    steps = client.get(f"/work-notes/{note['id']}/events", headers=manager.headers).json()
    assert [s["state"]["note_text"] for s in steps] == ["first", "second"]
    assert steps[0]["state"] == earlier
    refuse(
        lambda: client.get(
            f"/work-notes/{note['id']}",
            params={"as_of": "2001-01-01T00:00:00Z"},
            headers=manager.headers,
        ),
        404,
        "work_note.not_found_as_of",
    )
    refuse(
        lambda: client.get(
            f"/work-notes/{note['id']}",
            params={"as_of": "2001-01-01T00:00:00Z", "as_of_version": 1},
            headers=manager.headers,
        ),
        422,
        "query.invalid",
    )


def test_occurred_time_counts_a_backdated_step_from_when_it_happened(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    detected = datetime.now(UTC) - timedelta(hours=2)
    incident = open_incident(
        detection_time=detected.isoformat(),
        occurred_at=(detected + timedelta(minutes=1)).isoformat(),
    )
    acknowledged_at = detected + timedelta(minutes=10)
    client.post(
        f"/incidents/{incident['id']}/acknowledge",
        json={"occurred_at": acknowledged_at.isoformat()},
        headers=manager.headers,
    )
    moment = (acknowledged_at + timedelta(minutes=1)).isoformat()
    by_occurred = client.get(
        f"/incidents/{incident['id']}",
        params={"as_of": moment, "as_of_basis": "occurred"},
        headers=manager.headers,
    ).json()
    assert by_occurred["acknowledged_at"] is not None
    by_recorded = client.get(
        f"/incidents/{incident['id']}", params={"as_of": moment}, headers=manager.headers
    )
    assert by_recorded.json()["code"] == "incident.not_found_as_of"  # recorded only now


def test_the_cli_tells_a_records_story(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    database: Database,
    tmp_path: Path,
) -> None:
    incident = open_incident()
    client.post(f"/incidents/{incident['id']}/acknowledge", headers=manager.headers)
    env = {"DATABASE_URL": url(database), "INCIDENT_LEDGER_ALLOW_SUPERUSER": "true"}
    told = cli("replay", incident["number"], "--data-dir", str(tmp_path), **env)
    assert told.returncode == 0, told.stderr
    lines = told.stdout.splitlines()
    assert lines[0].startswith("v1 ")
    assert "Incident.Opened via OpenIncident" in lines[0]
    assert "(incident_manager)" in lines[0]
    assert "title: 'Checkout latency'" in lines[0]
    assert "Incident.Acknowledged" in lines[1]
    assert '"acknowledged_at": "' in told.stdout
    before = cli(
        "replay", incident["number"], "--as-of", "2001-01-01T00:00:00Z",
        "--data-dir", str(tmp_path), **env,
    )  # fmt: skip
    assert before.returncode == 1
    assert "did not exist yet" in before.stderr
