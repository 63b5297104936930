"""Bounded inputs: a request body over the cap is refused with 413 and the JSON error shape,
before it reaches the ledger; so is a huge string on every create command; a normal write
right after succeeds (nothing is stuck)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.routes import ROUTES
from tests.conftest import Actor

CREATES = sorted({r.path for r in ROUTES if r.method == "POST" and r.status_code == 201})


def test_two_megabyte_body_is_refused_with_413(
    client: TestClient, manager: Actor, event_count: Callable[[], int]
) -> None:
    before = event_count()
    refused = client.post(
        "/incidents",
        content=b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={**manager.headers, "Content-Type": "application/json"},
    )
    assert refused.status_code == 413
    assert refused.json()["code"] == "request.too_large"
    assert event_count() == before


def test_streamed_body_over_the_cap_is_refused(client: TestClient, manager: Actor) -> None:
    def chunks() -> Any:
        for _ in range(64):
            yield b"y" * 16_384  # 1 MiB in all, with no Content-Length

    refused = client.post(
        "/incidents",
        content=chunks(),
        headers={**manager.headers, "Content-Type": "application/json"},
    )
    assert refused.status_code == 413


@pytest.mark.parametrize("path", CREATES)
def test_450_kb_string_field_refused_on_every_create(
    client: TestClient,
    admin: Actor,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    event_count: Callable[[], int],
    path: str,
) -> None:
    number = open_incident()["number"]
    url = path.replace("{incident}", number).replace("{user}", manager.id)
    before = event_count()
    started = time.monotonic()
    refused = client.post(
        url, json={"title": "z" * 450_000, "primary_address": "z" * 450_000}, headers=admin.headers
    )
    assert refused.status_code == 413, refused.text
    assert time.monotonic() - started < 5
    assert event_count() == before


def test_a_thousand_concurrent_oversized_requests_then_a_normal_write(
    client: TestClient, manager: Actor, open_incident: Callable[..., dict[str, Any]]
) -> None:
    number = open_incident()["number"]
    body = b'{"note_type": "progress_update", "note_text": "' + b"n" * 300_000 + b'"}'
    headers = {**manager.headers, "Content-Type": "application/json"}

    def oversized(_: int) -> int:
        return client.post(
            f"/incidents/{number}/work-notes", content=body, headers=headers
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(oversized, range(1000)))
    assert statuses == [413] * 1000
    normal = client.post(
        f"/incidents/{number}/work-notes",
        json={"note_type": "progress_update", "note_text": "still writing"},
        headers=manager.headers,
    )
    assert normal.status_code == 201, normal.text
