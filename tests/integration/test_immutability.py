"""Stored events are immutable in the database itself (SPEC 6a): the service's role cannot update,
delete or truncate them, the owner is stopped by the triggers, and appending still works."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from api.database import EVENTS_TABLE, Database
from api.service import Service
from api.store import COMMANDS_TABLE, IDEMPOTENCY_TABLE
from domain.base import Role
from domain.incident import OpenIncident
from domain.user import RegisterUser
from tests.conftest import admin_id

APP_ROLE = "incident_ledger_app"
STATEMENTS = {
    "update": "UPDATE {} SET {column} = {column}",
    "delete": "DELETE FROM {}",
    "truncate": "TRUNCATE {}",
}


@pytest.fixture
def as_app_role(service: Service, database: Database) -> Iterator[psycopg.Connection]:
    """A connection acting as the service's role (the schema exists: the service migrated it)."""
    assert service.settings.app_role == APP_ROLE
    with psycopg.connect(**database.conninfo(options=f"-c role={APP_ROLE}")) as conn:
        yield conn


@pytest.fixture
def as_owner(service: Service, database: Database) -> Iterator[psycopg.Connection]:
    with psycopg.connect(**database.conninfo()) as conn:
        yield conn


COLUMN = {EVENTS_TABLE: "state", IDEMPOTENCY_TABLE: "outcome", COMMANDS_TABLE: "outcome"}


def attempt(conn: psycopg.Connection, statement: str, table: str) -> None:
    """Run one statement in a transaction that is always rolled back, so a failing test (one that
    did change rows) cannot damage the shared session database."""
    query = sql.SQL(statement).format(sql.Identifier(table), column=sql.Identifier(COLUMN[table]))
    try:
        conn.execute(query)
    finally:
        conn.rollback()


def event_rows(conn: psycopg.Connection) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(EVENTS_TABLE)))
    count = row.fetchone()
    conn.rollback()
    assert count is not None
    return int(count[0])


def test_connect_as_app_role_when_role_option_given(as_app_role: psycopg.Connection) -> None:
    row = as_app_role.execute("SELECT current_user").fetchone()
    as_app_role.rollback()
    assert row == (APP_ROLE,)


@pytest.mark.parametrize("operation", sorted(STATEMENTS))
def test_app_role_refused_change_when_touching_stored_events(
    as_app_role: psycopg.Connection, event_count: Callable[[], int], operation: str
) -> None:
    before = event_count()
    assert before > 0

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attempt(as_app_role, STATEMENTS[operation], EVENTS_TABLE)

    assert event_count() == before


@pytest.mark.parametrize("operation", sorted(STATEMENTS))
def test_owner_refused_change_when_trigger_guards_stored_events(
    as_owner: psycopg.Connection, event_count: Callable[[], int], operation: str
) -> None:
    before = event_count()

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="stored events are immutable"):
        attempt(as_owner, STATEMENTS[operation], EVENTS_TABLE)

    assert event_count() == before


@pytest.mark.parametrize(
    ("operation", "table"),
    [("update", IDEMPOTENCY_TABLE), ("update", COMMANDS_TABLE), ("delete", COMMANDS_TABLE)],
)
def test_app_role_refused_change_when_touching_command_records(
    as_app_role: psycopg.Connection, operation: str, table: str
) -> None:
    """Command records are immutable; an idempotency key may only be deleted (once expired)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attempt(as_app_role, STATEMENTS[operation], table)


def test_service_appends_events_when_changes_were_refused(
    service: Service,
    as_app_role: psycopg.Connection,
    as_owner: psycopg.Connection,
    event_count: Callable[[], int],
) -> None:
    for conn in (as_app_role, as_owner):
        for statement in STATEMENTS.values():
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                attempt(conn, statement, EVENTS_TABLE)
    before = event_count()

    manager = service.execute(
        RegisterUser(
            first_name="Imogen",
            last_name="Mutable",
            email="imogen@immutability.test",
            role=Role.INCIDENT_MANAGER,
            timezone="UTC",
        ),
        admin_id(service),
    ).id
    opened = service.execute(
        OpenIncident(
            title="Disk full",
            description="db01 /var at 100%",
            category="database",
            impact="high",
            urgency="medium",
            reported_by=manager,
            detection_time=datetime.now(UTC) - timedelta(minutes=5),
            severity="P3",
            assigned_to=manager,
        ),
        manager,
    )

    assert opened.number is not None
    assert event_count() > before
    assert event_rows(as_app_role) == event_count()  # the role can read what it appended
    stored = [e.originator_version for e in service.ledger.events.get(opened.id)]
    assert stored == [1]
