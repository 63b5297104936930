"""Idempotency keys under races and refusals (SPEC 5): the same key at once never gives a false
409 or a 500 and stores one command; a refused keyed request is answered the same way again,
even after the state changed; replays say so; the hash covers every field of the body."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import httpx
from fastapi.testclient import TestClient

from api.service import Service
from domain.idempotency import IDEMPOTENCY_TTL
from tests.conftest import Actor


def test_same_key_sent_twice_at_once_stores_one_command(
    client: TestClient,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    event_count: Callable[[], int],
) -> None:
    number = open_incident()["number"]
    pairs = 100

    def send(key: str, barrier: threading.Barrier) -> httpx.Response:
        barrier.wait(timeout=30)
        return client.post(
            f"/incidents/{number}/work-notes",
            json={"note_type": "progress_update", "note_text": f"once for {key}"},
            headers={**manager.headers, "Idempotency-Key": key},
        )

    before = event_count()
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = []
        for _ in range(pairs):
            key, barrier = f"pair-{uuid4()}", threading.Barrier(2)
            futures.append((pool.submit(send, key, barrier), pool.submit(send, key, barrier)))
        answers = [(a.result(), b.result()) for a, b in futures]
    statuses = [r.status_code for pair in answers for r in pair]
    assert statuses == [201] * (2 * pairs), sorted(set(statuses))
    assert all(a.json()["id"] == b.json()["id"] for a, b in answers)
    assert event_count() - before == pairs  # one WorkNote.Added per key
    replays = [r for pair in answers for r in pair if r.headers.get("Idempotent-Replayed")]
    assert len(replays) == pairs


def test_refused_keyed_request_is_answered_the_same_after_state_changed(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    event_count: Callable[[], int],
) -> None:
    number = open_incident()["number"]
    target = make_user("incident_manager")
    moved = client.post(
        f"/incidents/{number}/status", json={"status": "resolved"}, headers=manager.headers
    )
    assert moved.status_code == 200, moved.text
    headers = {**manager.headers, "Idempotency-Key": f"esc-{uuid4()}"}
    body = {"escalated_to": target.id, "reason": "needs the database team"}
    first = client.post(f"/incidents/{number}/escalations", json=body, headers=headers)
    assert first.status_code == 409
    assert first.json()["code"] == "incident.not_open"
    reopened = client.post(
        f"/incidents/{number}/status", json={"status": "in_progress"}, headers=manager.headers
    )
    assert reopened.status_code == 200, reopened.text

    before = event_count()
    again = client.post(f"/incidents/{number}/escalations", json=body, headers=headers)
    assert again.status_code == 409
    assert again.json()["code"] == "incident.not_open"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert event_count() == before
    # A new key is a new request, decided on today's state.
    fresh = {**manager.headers, "Idempotency-Key": f"esc-{uuid4()}"}
    assert (
        client.post(f"/incidents/{number}/escalations", json=body, headers=fresh).status_code == 201
    )


def test_replayed_answer_says_so(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    number = open_incident()["number"]
    headers = {**manager.headers, "Idempotency-Key": f"ack-{uuid4()}"}
    first = client.post(f"/incidents/{number}/acknowledge", headers=headers)
    again = client.post(f"/incidents/{number}/acknowledge", headers=headers)
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


def test_key_reused_with_any_other_field_is_refused(
    client: TestClient,
    admin: Actor,
    make_user: Callable[..., Actor],
    refuse: Callable[..., dict[str, Any]],
) -> None:
    """Every field counts, whatever the JSON's key order or spacing."""
    holder = make_user("analyst")
    headers = {
        **admin.headers,
        "Idempotency-Key": f"key-{uuid4()}",
        "Content-Type": "application/json",
    }
    path = f"/users/{holder.id}/api-keys"
    first = client.post(path, content=b'{"label": "laptop"}', headers=headers)
    assert first.status_code == 201, first.text
    spaced = client.post(path, content=b'{ "label" :"laptop" }', headers=headers)
    assert spaced.status_code == 201
    assert spaced.json()["id"] == first.json()["id"]
    assert spaced.json()["key"] is None  # the key is shown once, never replayed
    refuse(
        lambda: client.post(path, content=b'{"label": "desktop"}', headers=headers),
        422,
        "idempotency.key_reused",
    )


def test_expired_key_starts_a_new_request(
    client: TestClient,
    service: Service,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
) -> None:
    """Keys are kept for IDEMPOTENCY_TTL (24 h): an older one no longer answers or refuses."""
    number = open_incident()["number"]
    key = f"old-{uuid4()}"
    with service.ledger.recorder.datastore.transaction(commit=True) as curs:  # type: ignore[attr-defined]
        curs.execute(
            "INSERT INTO ledger_idempotency_keys (key, request_hash, outcome, recorded_at) "
            "VALUES (%s, 'another request', '{}', now() - %s - interval '1 minute')",
            (f"{manager.id}:{key}", IDEMPOTENCY_TTL),
        )
    headers = {**manager.headers, "Idempotency-Key": key}
    body = {"note_type": "progress_update", "note_text": "after a day"}
    first = client.post(f"/incidents/{number}/work-notes", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = client.post(f"/incidents/{number}/work-notes", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
