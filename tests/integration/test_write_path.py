"""Nothing hangs the write path: an append that cannot get the events table's lock in time fails
with 503 `database.busy` (retryable; nothing written) and the service recovers when the lock is
released; an append too large for the driver is 413 `append.too_large`; read parameters that
PostgreSQL could not hold are 422; anything unforeseen is a JSON 500; and SIGTERM lets an
in-flight command finish."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from fastapi.testclient import TestClient

from api.app import create_app
from api.database import EVENTS_TABLE, Database, service_roles
from api.service import Service
from api.store import AppendTooLarge
from tests.conftest import Actor, unique
from tests.integration.databases import fresh_database, spawn, url

LOCK_TIMEOUT = 0.5
SHUTDOWN_KEY = "shutdown-admin-key-0123456789abcdef"


def _user(name: str | None = None) -> dict[str, Any]:
    name = name or unique("writer")
    return {
        "first_name": name,
        "last_name": "Writer",
        "email": f"{name}@write-path.test",
        "role": "incident_manager",
        "timezone": "UTC",
    }


@pytest.fixture
def impatient(service: Service, database: Database) -> Iterator[TestClient]:
    """A second service on the session's database whose statements wait 0.5 s for a lock."""
    settings = service.settings.model_copy(update={"lock_timeout_seconds": LOCK_TIMEOUT})
    quick = Service.open(settings, replace(database, release=None), service_roles(settings))
    try:
        app = create_app(settings, service=quick)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client
    finally:
        quick.close()


@pytest.fixture
def events_locked(database: Database) -> Iterator[Callable[[], None]]:
    """The events table locked as the library's append locks it, by the owner; call to release."""
    conn = psycopg.connect(**database.conninfo())
    conn.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
    yield conn.rollback
    conn.close()


def test_append_fails_fast_when_events_table_locked_and_recovers_after(
    impatient: TestClient,
    admin: Actor,
    events_locked: Callable[[], None],
    event_count: Callable[[], int],
) -> None:
    keyed = {**admin.headers, "Idempotency-Key": f"locked-{uuid4()}"}
    body = _user()
    before = event_count()

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        blocked = list(
            pool.map(lambda _: impatient.post("/users", json=_user(), headers=admin.headers), "abc")
        )
    first = impatient.post("/users", json=body, headers=keyed)
    elapsed = time.perf_counter() - started

    for response in [*blocked, first]:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "database.busy"
        assert response.headers["Retry-After"]
    assert elapsed < 4 * LOCK_TIMEOUT + 3, elapsed  # no retries of a timed-out append
    assert event_count() == before
    assert impatient.get("/health").status_code == 200  # reads go on meanwhile

    events_locked()

    again = impatient.post("/users", json=body, headers=keyed)
    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers  # the refusal was not remembered
    assert impatient.post("/users", json=_user(), headers=admin.headers).status_code == 201
    assert event_count() == before + 4  # two users: User.Registered, EmailIndex.Claimed each


def test_append_over_size_limit_refused_with_413(
    client: TestClient,
    admin: Actor,
    service: Service,
    refuse: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service.ledger.recorder, "max_append_bytes", 300)
    body = refuse(
        lambda: client.post("/users", json=_user(), headers=admin.headers),
        413,
        "append.too_large",
    )
    assert body["limit"] == 300
    assert body["size"] > 300


def test_recorder_refuses_append_near_driver_limit(
    service: Service, event_count: Callable[[], int]
) -> None:
    """600 KB of events would approach the size that hangs psycopg's pipeline mode."""
    before = event_count()
    big = StoredEvent(
        originator_id=uuid4(), originator_version=1, topic="test:Big", state=b"x" * 600_000
    )
    started = time.perf_counter()
    with pytest.raises(AppendTooLarge):
        service.ledger.recorder.insert_events([big])
    assert time.perf_counter() - started < 1
    assert event_count() == before


@pytest.mark.parametrize(
    "path",
    [
        "/incidents?q=%00",
        "/incidents?number=%ED%A0%80",
        "/incidents?status=ab%00c",
        "/incidents?q=%FF",
        "/incidents/%00/timeline",
        "/incidents/%ED%A0%80",
        "/incidents?%00=1",
    ],
)
def test_read_parameter_with_nul_or_bad_utf8_is_422(
    client: TestClient, admin: Actor, path: str
) -> None:
    response = client.get(path, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "request.invalid"


def test_unexpected_error_answers_json_500_and_logs_traceback(
    service: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "health", broken)
    with (
        caplog.at_level(logging.ERROR, "incident_ledger.api"),
        TestClient(
            create_app(service.settings, service=service), raise_server_exceptions=False
        ) as client,
    ):
        response = client.get("/health")
    assert response.status_code == 500
    assert response.json() == {
        "code": "internal.error",
        "message": "Something went wrong on our side; it has been logged.",
    }
    assert "RuntimeError: a bug" in caplog.text
    assert "Traceback" in caplog.text


def _waiting_for_lock(owner: psycopg.Connection, dbname: str) -> bool:
    row = owner.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
        (dbname,),
    ).fetchone()
    return bool(row and row[0])


@pytest.mark.integration
def test_sigterm_lets_in_flight_command_finish(database: Database, data_dir: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {SHUTDOWN_KEY}"}
    with fresh_database(database) as db:
        server = spawn(
            "serve",
            "--port",
            str(port),
            DATABASE_URL=url(db),
            INCIDENT_LEDGER_ALLOW_SUPERUSER="true",  # the embedded server's only owner
            INCIDENT_LEDGER_DATA_DIR=str(data_dir),
            INCIDENT_LEDGER_ADMIN_KEY=SHUTDOWN_KEY,
            INCIDENT_LEDGER_LOCK_TIMEOUT_SECONDS="20",
        )
        try:
            _until(lambda: _answers(f"{base}/health"), server)
            with (
                psycopg.connect(**db.conninfo()) as owner,
                psycopg.connect(**db.conninfo(autocommit=True)) as watcher,
            ):
                owner.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")  # a slow append
                answer: list[httpx.Response] = []
                sender = threading.Thread(
                    target=lambda: answer.append(
                        httpx.post(f"{base}/users", json=_user(), headers=headers, timeout=30)
                    )
                )
                sender.start()
                _until(lambda: _waiting_for_lock(watcher, db.dbname), server)
                server.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                assert server.poll() is None, "the server quit with a request in flight"
                owner.rollback()  # the append goes on
                sender.join(timeout=10)
            assert [r.status_code for r in answer] == [201], [r.text for r in answer]
            server.wait(timeout=15)
        finally:
            if server.poll() is None:
                server.kill()
            out, err = server.communicate(timeout=15)
    assert "Traceback" not in out + err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(address: str) -> bool:
    try:
        return httpx.get(address, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _until(condition: Callable[[], bool], server: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert server.poll() is None, server.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
