"""Operable start-up, as an operator sees it from `python -m api.cli`: a database that cannot be
reached or a wrong password is one clear line and a non-zero exit within seconds; read-only
commands do not migrate."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.sql import SQL, Identifier, Literal

from api.database import Database, migrate
from tests.integration.databases import cli, fresh_database, lines, public_tables, url


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    [line] = lines(result)
    assert line.startswith(f"incident-ledger {command}: ")
    return line


@pytest.fixture
def password_role(database: Database) -> Iterator[tuple[str, str]]:
    """A login role that must give its password (the embedded server trusts everyone else)."""
    role, password = f"il_pw_{uuid.uuid4().hex[:8]}", "right-password-0123"
    with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(row[0])
        conn.execute(
            SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(Identifier(role), Literal(password))
        )
        original = hba.read_text()
        hba.write_text(f"local all {role} scram-sha-256\n{original}")
        conn.execute("SELECT pg_reload_conf()")
    try:
        deadline = time.monotonic() + 10
        while True:  # the postmaster rereads pg_hba.conf asynchronously
            try:
                psycopg.connect(**database.conninfo(user=role, password="wrong")).close()
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "pg_hba.conf change not picked up"
            time.sleep(0.1)
        yield role, password
    finally:
        hba.write_text(original)
        with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(SQL("DROP ROLE IF EXISTS {}").format(Identifier(role)))


@pytest.mark.integration
def test_migrate_fails_fast_on_closed_port() -> None:
    started = time.perf_counter()
    result = cli(
        "migrate",
        DATABASE_URL=f"postgresql://owner:hunter2-secret@127.0.0.1:{_closed_port()}/ledger",
    )
    line = _one_line_error(result, "migrate")
    assert time.perf_counter() - started < 10
    assert "Connection refused" in line
    assert "owner@127.0.0.1" in line
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.integration
def test_migrate_fails_fast_on_wrong_password(
    database: Database, password_role: tuple[str, str]
) -> None:
    role, _ = password_role
    started = time.perf_counter()
    result = cli("migrate", DATABASE_URL=url(database, user=role, password="wrong-password-42"))
    line = _one_line_error(result, "migrate")
    assert time.perf_counter() - started < 10
    assert f'password authentication failed for user "{role}"' in line
    assert "wrong-password-42" not in result.stderr + result.stdout


@pytest.mark.integration
def test_projections_status_does_not_migrate(database: Database) -> None:
    with fresh_database(database) as db:
        line = _one_line_error(cli("projections", "status", DATABASE_URL=url(db)), "projections")
        assert "run `incident-ledger migrate`" in line
        assert public_tables(db) == []


@pytest.mark.integration
def test_projections_status_reads_as_role_without_ddl_privileges(database: Database) -> None:
    reader = f"il_reader_{uuid.uuid4().hex[:8]}"
    with fresh_database(database) as db:
        migrate(db, "incident_ledger_app")
        with psycopg.connect(**db.conninfo(autocommit=True)) as conn:
            conn.execute(
                SQL("CREATE ROLE {} LOGIN IN ROLE pg_read_all_data").format(Identifier(reader))
            )
        try:
            result = cli("projections", "status", DATABASE_URL=url(db, user=reader))
            assert result.returncode == 0, result.stderr
            assert "current_state: at event 0 of 0 (0 behind)" in result.stdout
            assert "timeline: at event 0 of 0 (0 behind)" in result.stdout
        finally:
            with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
                conn.execute(SQL("DROP OWNED BY {}").format(Identifier(reader)))
                conn.execute(SQL("DROP ROLE {}").format(Identifier(reader)))
