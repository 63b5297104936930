"""Faults: the service's connections killed over and over while keyed commands stream in never
make a 500, and each key ends with exactly one stored command (a commit whose answer was lost is
answered from the ledger's record, or refused as retryable and replayed on retry). Start-up
reports whether the server keeps acknowledged commits across a crash."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.database import EVENTS_TABLE, Database, service_roles
from api.service import Service
from api.store import IDEMPOTENCY_TABLE
from tests.conftest import Actor

CLIENTS = 4
COMMANDS = 60
KILL_EVERY = 0.02
RETRIES = 60


@pytest.fixture
def storm(service: Service, database: Database) -> Iterator[Callable[[], int]]:
    """A thread terminating every backend of the API's role every 20 ms; call to stop it (it
    answers how many backends it terminated)."""
    stop = threading.Event()
    killed: list[int] = []

    def kill() -> None:
        with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
            while not stop.wait(KILL_EVERY):
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = %s AND pid <> pg_backend_pid()",
                    (service.settings.app_role,),
                ).fetchall()
                killed.append(sum(1 for (done,) in rows if done))

    thread = threading.Thread(target=kill, name="backend-killer", daemon=True)
    thread.start()

    def stopped() -> int:
        stop.set()
        thread.join(timeout=10)
        return sum(killed)

    yield stopped
    stopped()


def _send(
    client: TestClient, path: str, body: dict[str, Any], headers: dict[str, str]
) -> list[int]:
    """Send until an answer other than a retryable one (503, 409 concurrency); the statuses."""
    statuses = []
    for _ in range(RETRIES):
        try:
            response = client.post(path, json=body, headers=headers)
        except httpx.TransportError:
            statuses.append(-1)
            continue
        statuses.append(response.status_code)
        retryable = response.status_code == 503 or (
            response.status_code == 409 and response.json()["code"].startswith("concurrency.")
        )
        if not retryable:
            break
        time.sleep(0.01)
    return statuses


def test_keyed_commands_stored_once_when_backends_killed_repeatedly(
    service: Service,
    manager: Actor,
    open_incident: Callable[..., dict[str, Any]],
    storm: Callable[[], int],
) -> None:
    path = f"/incidents/{open_incident()['number']}/work-notes"
    run = uuid4().hex[:8]
    keys = [f"storm-{run}-{c}-{n}" for c in range(CLIENTS) for n in range(COMMANDS)]

    def client_thread(client: TestClient, mine: list[str]) -> list[list[int]]:
        return [
            _send(
                client,
                path,
                {"note_type": "progress_update", "note_text": f"note {key}"},
                {**manager.headers, "Idempotency-Key": key},
            )
            for key in mine
        ]

    app = create_app(service.settings, service=service)
    with (
        TestClient(app, raise_server_exceptions=False) as client,
        ThreadPoolExecutor(CLIENTS) as pool,
    ):
        shares = [keys[c * COMMANDS : (c + 1) * COMMANDS] for c in range(CLIENTS)]
        results = [s for r in pool.map(lambda m: client_thread(client, m), shares) for s in r]
    killed = storm()

    seen = Counter(status for statuses in results for status in statuses)
    assert killed > 0
    assert seen[500] == 0, seen
    assert [statuses[-1] for statuses in results] == [201] * len(keys), seen
    with psycopg.connect(**service.db.conninfo()) as conn:
        stored = dict(
            conn.execute(
                "SELECT split_part(e.meta ->> 'idempotency_key', ':', 2), "
                f"count(DISTINCT e.meta ->> 'command_id') "
                f"FROM (SELECT convert_from(state, 'UTF8')::jsonb -> 'meta' AS meta "
                f"FROM {EVENTS_TABLE}) e WHERE e.meta ->> 'idempotency_key' LIKE %s GROUP BY 1",
                (f"%:storm-{run}-%",),  # keys are kept per user: "<user id>:<key>"
            ).fetchall()
        )
        remembered = conn.execute(
            f"SELECT count(*) FROM {IDEMPOTENCY_TABLE} WHERE key LIKE %s", (f"%:storm-{run}-%",)
        ).fetchone()
    assert stored == dict.fromkeys(keys, 1)
    assert remembered == (len(keys),)


def test_health_reports_durability_settings(service: Service) -> None:
    durability = service.health()["durability"]
    assert durability == {
        "ok": True,
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
    }


def test_start_warns_when_commits_are_not_durable(
    service: Service, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings = service.settings
    lax = replace(database, params={"options": "-c synchronous_commit=off"}, release=None)
    with caplog.at_level(logging.WARNING, "incident_ledger.service"):
        careless = Service.open(settings, lax, service_roles(settings))
    try:
        assert careless.health()["durability"]["ok"] is False
        assert careless.health()["durability"]["synchronous_commit"] == "off"
    finally:
        careless.close()
    assert "PostgreSQL is NOT durable (fsync=on, synchronous_commit=off" in caplog.text
