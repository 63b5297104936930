"""Commands answer their ledger position; view reads wait (bounded) until the view reaches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient

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
