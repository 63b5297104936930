"""The service's database sessions cannot become anyone else: connected exactly as the service
connects (its pools' own connection settings), neither the API's role nor the projector's can
switch role, drop or bypass the immutability triggers, change stored events or run programs on
the server; the API's role cannot write the views' positions and the projector's cannot append."""

from __future__ import annotations

import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from api.database import EVENTS_TABLE, Database
from api.roles import IMMUTABLE_TABLES, PASSWORD_FILE
from api.service import Service
from api.store import COMMANDS_TABLE

ESCAPES = {
    "set role": "SET ROLE {owner}",
    "set session authorization": "SET SESSION AUTHORIZATION {owner}",
    "drop trigger": f"DROP TRIGGER {EVENTS_TABLE}_immutable ON {EVENTS_TABLE}",
    "disable triggers": f"ALTER TABLE {EVENTS_TABLE} DISABLE TRIGGER ALL",
    "replica mode": "SET session_replication_role = replica",
    "update": f"UPDATE {EVENTS_TABLE} SET state = state",
    "delete": f"DELETE FROM {EVENTS_TABLE}",
    "truncate": f"TRUNCATE {EVENTS_TABLE}",
    "copy to program": "COPY (SELECT 1) TO PROGRAM 'true'",
    "grant itself a role": "GRANT pg_execute_server_program TO CURRENT_USER",
    "create role": "CREATE ROLE il_escaped_role SUPERUSER",
    "alter itself": "ALTER ROLE CURRENT_USER SUPERUSER",
    "update command records": f"UPDATE {COMMANDS_TABLE} SET outcome = outcome",
}
INSERT_EVENT = (
    f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state) "
    "VALUES (gen_random_uuid(), 1, 'forged:Event', '\\x7b7d')"
)


def _kwargs(service: Service, who: str) -> dict[str, Any]:
    """The connection settings of the service's pool for `who` (the API or the projector)."""
    app = service.ledger if who == "api" else service.projections.app
    kwargs = app.recorder.datastore.pool.kwargs  # type: ignore[attr-defined]
    assert isinstance(kwargs, dict)
    return {k: v for k, v in kwargs.items() if k != "row_factory"}  # rows as tuples here


@pytest.fixture(params=["api", "projector"])
def session(request: pytest.FixtureRequest, service: Service) -> Iterator[psycopg.Connection]:
    with psycopg.connect(**_kwargs(service, request.param)) as conn:
        yield conn


@pytest.fixture
def owner(service: Service, database: Database) -> Iterator[psycopg.Connection]:
    with psycopg.connect(**database.conninfo()) as conn:
        yield conn


def refused(conn: psycopg.Connection, statement: str) -> None:
    """The statement fails for lack of privilege; its transaction is rolled back regardless, so
    a failing test cannot damage the shared database or leave the session changed."""
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    finally:
        conn.rollback()


def _events(owner: psycopg.Connection) -> int:
    row = owner.execute(SQL("SELECT count(*) FROM {}").format(Identifier(EVENTS_TABLE)))
    count = row.fetchone()
    owner.rollback()
    assert count is not None
    return int(count[0])


def test_service_logs_in_as_plain_roles_not_the_owner(
    service: Service, database: Database, session: psycopg.Connection
) -> None:
    row = session.execute(
        "SELECT session_user, current_user, r.rolsuper, r.rolcreaterole, r.rolbypassrls, "
        "(SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) "
        "FROM pg_roles r WHERE r.rolname = session_user"
    ).fetchone()
    session.rollback()
    assert row is not None
    user, current, superuser, createrole, bypassrls, memberships = row
    assert user == current
    assert user in (service.settings.app_role, service.settings.projector_role)
    assert user != database.user
    assert (superuser, createrole, bypassrls, memberships) == (False, False, False, 0)


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_service_session_refused_when_escaping_its_grants(
    session: psycopg.Connection,
    owner: psycopg.Connection,
    database: Database,
    escape: str,
) -> None:
    before = _events(owner)
    assert before > 0

    refused(session, ESCAPES[escape].format(owner=database.user))

    assert _events(owner) == before
    row = session.execute("SELECT current_user").fetchone()
    assert row is not None
    assert row[0] != database.user


def test_update_refused_after_replica_mode_attempt(
    session: psycopg.Connection, owner: psycopg.Connection
) -> None:
    before = _events(owner)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        session.execute("SET session_replication_role = replica")
    session.rollback()
    refused(session, f"UPDATE {EVENTS_TABLE} SET state = state")
    assert _events(owner) == before


def test_triggers_fire_in_replica_mode_when_owner_switches_it_on(
    owner: psycopg.Connection,
) -> None:
    """ENABLE ALWAYS: even a superuser's replication-mode session meets the triggers."""
    rows = owner.execute(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = ANY(%s::regclass[]) "
        "AND NOT tgisinternal",
        (list(IMMUTABLE_TABLES),),
    ).fetchall()
    assert len(rows) == 2 * len(IMMUTABLE_TABLES)
    assert {enabled for _, enabled in rows} == {"A"}
    owner.execute("SET session_replication_role = replica")
    for statement in (f"UPDATE {EVENTS_TABLE} SET state = state", f"TRUNCATE {EVENTS_TABLE}"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable"):
            owner.execute(statement)
        owner.rollback()
        owner.execute("SET session_replication_role = replica")
    owner.rollback()


def test_projector_role_refused_when_appending_events(service: Service) -> None:
    with psycopg.connect(**_kwargs(service, "projector")) as conn:
        refused(conn, INSERT_EVENT)
        refused(conn, f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
        refused(conn, f"INSERT INTO {COMMANDS_TABLE} (command_id, outcome) "
                      "VALUES (gen_random_uuid(), '{}')")  # fmt: skip


def test_api_role_refused_when_writing_views_or_their_positions(service: Service) -> None:
    with psycopg.connect(**_kwargs(service, "api")) as conn:
        for view in service.projections.views:
            tracking = view.tracking_table_name
            refused(conn, f"UPDATE {tracking} SET notification_id = notification_id + 1000")
            refused(conn, f"INSERT INTO {tracking} VALUES ('forged', 1000000)")
            refused(conn, f"DELETE FROM {view.tables[0]}")
        refused(conn, "DELETE FROM projection_error")
        rows = conn.execute(f"SELECT count(*) FROM {service.projections.views[0].tables[0]}")
        assert rows.fetchone() is not None  # it reads them


@pytest.fixture
def passwords_required(database: Database, service: Service) -> Iterator[None]:
    """The embedded server trusts local connections; make it ask the service's roles for their
    passwords for a moment, to prove the ones the migration set are the ones it keeps."""
    roles = f"{service.settings.app_role},{service.settings.projector_role}"
    with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(row[0])
        original = hba.read_text()
        hba.write_text(f"local all {roles} scram-sha-256\n{original}")
        conn.execute("SELECT pg_reload_conf()")
    try:
        _until_refused(lambda: _connect(service, "api", password="wrong"))
        yield
    finally:
        hba.write_text(original)
        with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
            conn.execute("SELECT pg_reload_conf()")


def _connect(service: Service, who: str, **override: str) -> None:
    psycopg.connect(**{**_kwargs(service, who), **override}).close()


def _until_refused(attempt: Callable[[], None]) -> None:
    deadline = time.monotonic() + 10
    while True:  # the postmaster rereads pg_hba.conf asynchronously
        try:
            attempt()
        except psycopg.OperationalError:
            return
        assert time.monotonic() < deadline, "pg_hba.conf change not picked up"
        time.sleep(0.1)


@pytest.mark.usefixtures("passwords_required")
def test_roles_log_in_with_passwords_kept_private_in_data_dir(
    service: Service, data_dir: Path
) -> None:
    for who in ("api", "projector"):
        _connect(service, who)  # the password the service holds works
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _connect(service, who, password="not-the-password")
    kept = data_dir.resolve() / PASSWORD_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert _kwargs(service, "api")["password"] in kept.read_text()
