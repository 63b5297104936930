"""Commands answer their ledger position; view reads wait (bounded) until the view reaches it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from api.service import Service
from tests.conftest import Actor


def test_command_answers_position_in_body_and_header_when_events_recorded(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    opened = open_incident()
    acked = client.post(f"/incidents/{opened['number']}/acknowledge", headers=manager.headers)

    assert acked.status_code == 200, acked.text
    assert isinstance(opened["position"], int)
    assert acked.json()["position"] > opened["position"]
    assert acked.headers["Ledger-Position"] == str(acked.json()["position"])


def test_replayed_command_answers_first_position_when_idempotency_key_repeated(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    number = open_incident()["number"]
    headers = {**manager.headers, "Idempotency-Key": f"pos-{uuid4()}"}
    first = client.post(f"/incidents/{number}/acknowledge", headers=headers)
    client.post(f"/incidents/{number}/work-notes", json=_note(), headers=manager.headers)

    retry = client.post(f"/incidents/{number}/acknowledge", headers=headers)

    assert retry.json()["position"] == first.json()["position"] is not None
    assert retry.headers["Ledger-Position"] == first.headers["Ledger-Position"]


def _note(text: str = "looking") -> dict[str, str]:
    return {"note_type": "progress_update", "note_text": text}


@pytest.fixture
def slow_projector(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every catch-up step of the service's projector starts 0.3 s late."""
    step = service.projections.step

    def late(**kwargs: Any) -> dict[str, int]:
        time.sleep(0.3)
        return step(**kwargs)

    monkeypatch.setattr(service.projections, "step", late)


@pytest.mark.usefixtures("slow_projector")
def test_timeline_shows_own_write_when_projector_lags(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    number = open_incident()["number"]
    note = client.post(f"/incidents/{number}/work-notes", json=_note(), headers=manager.headers)

    timeline = client.get(f"/incidents/{number}/timeline", headers=manager.headers)

    assert timeline.status_code == 200, timeline.text
    assert timeline.json()["entries"][-1]["event_type"] == "WorkNote.Added"
    assert int(timeline.headers["Ledger-View-Position"]) >= note.json()["position"]


@pytest.mark.usefixtures("slow_projector")
def test_list_shows_other_users_write_when_reader_sends_min_position(
    client: TestClient,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    analyst = make_user("analyst")
    opened = open_incident()

    listed = client.get(
        "/incidents",
        params={"number": opened["number"]},
        headers={**analyst.headers, "Ledger-Min-Position": str(opened["position"])},
    )

    assert listed.status_code == 200, listed.text
    assert [i["number"] for i in listed.json()["items"]] == [opened["number"]]
    assert int(listed.headers["Ledger-View-Position"]) >= opened["position"]


def test_view_read_answers_503_view_behind_when_position_not_reached_in_time(
    client: TestClient, manager: Actor, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    quick = service.settings.model_copy(update={"read_wait_seconds": 0.2})
    monkeypatch.setattr(service, "settings", quick)
    beyond = service.health()["head"] + 1_000_000

    started = time.monotonic()
    response = client.get("/incidents", params={"min_position": beyond}, headers=manager.headers)

    assert 0.2 <= time.monotonic() - started < 3
    assert response.status_code == 503, response.text
    body = response.json()
    assert (body["code"], body["view"], body["wanted"]) == ("view.behind", "current_state", beyond)
    assert body["position"] < beyond


def test_view_read_refused_when_min_position_not_a_number(
    client: TestClient, manager: Actor
) -> None:
    response = client.get(
        "/incidents", headers={**manager.headers, "Ledger-Min-Position": "latest"}
    )

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "request.invalid"
