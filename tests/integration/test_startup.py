"""Operable start-up, as an operator sees it from `python -m api.cli`: a database that cannot be
reached, a wrong password, a bad data directory or an unusable administrator key is one clear
line and a non-zero exit within seconds; read-only commands do not migrate; the banner names
the database without its password; a chosen administrator key is never printed."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.sql import SQL, Identifier, Literal

from api.app import start_service
from api.database import Database, migrate, service_roles
from api.settings import Settings
from tests.integration.databases import cli, fresh_database, lines, public_tables, spawn, url

CHOSEN_KEY = "chosen-admin-key-0123456789abcdef"


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
def test_serve_fails_fast_on_wrong_password(
    database: Database, password_role: tuple[str, str]
) -> None:
    role, _ = password_role
    started = time.perf_counter()
    result = cli("serve", DATABASE_URL=url(database, user=role, password="wrong-password-42"))
    line = _one_line_error(result, "serve")
    assert time.perf_counter() - started < 10
    assert f'password authentication failed for user "{role}"' in line
    assert "wrong-password-42" not in result.stderr + result.stdout


@pytest.mark.integration
def test_serve_refuses_data_dir_that_is_a_file_or_under_one(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("")
    under = _one_line_error(cli("serve", "--data-dir", str(a_file / "sub")), "serve")
    assert f"cannot use data directory {a_file / 'sub'}: Not a directory" in under
    itself = _one_line_error(cli("migrate", "--data-dir", str(a_file)), "migrate")
    assert f"cannot use data directory {a_file}: it is a file" in itself


@pytest.mark.integration
def test_serve_refuses_unusable_admin_key_before_writing_anything(database: Database) -> None:
    with fresh_database(database) as db:
        result = cli(
            "serve", DATABASE_URL=url(db), INCIDENT_LEDGER_ADMIN_KEY="has spaces 0123456789abcdef"
        )
        line = _one_line_error(result, "serve")
        assert "INCIDENT_LEDGER_ADMIN_KEY must not contain spaces" in line
        assert "0123456789abcdef" not in result.stderr + result.stdout
        assert public_tables(db) == []  # not even the schema


@pytest.mark.integration
def test_projections_status_does_not_migrate(database: Database) -> None:
    with fresh_database(database) as db:
        line = _one_line_error(cli("projections", "status", DATABASE_URL=url(db)), "projections")
        assert "run `incident-ledger migrate`" in line
        assert public_tables(db) == []


@pytest.mark.integration
def test_projections_status_reads_as_role_without_ddl_privileges(
    database: Database, settings: Settings
) -> None:
    reader = f"il_reader_{uuid.uuid4().hex[:8]}"
    with fresh_database(database) as db:
        migrate(db, service_roles(settings), privileged_owner_ok=True)
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


@pytest.mark.integration
def test_serve_banner_names_database_without_password_and_never_prints_chosen_key(
    database: Database, data_dir: Path
) -> None:
    port = _closed_port()
    with fresh_database(database) as db:
        # the embedded server trusts local connections, so any password gets in
        server = spawn(
            "serve",
            "--port",
            str(port),
            DATABASE_URL=url(db, password="hunter2-secret"),
            INCIDENT_LEDGER_ADMIN_KEY=CHOSEN_KEY,
            INCIDENT_LEDGER_ALLOW_SUPERUSER="true",  # the embedded server's only owner
            INCIDENT_LEDGER_DATA_DIR=str(data_dir),  # the service roles' passwords
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, server.communicate()
                try:
                    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert health.status_code == 200
            assert health.json()["database"] == "ok"
            key_works = httpx.get(
                f"http://127.0.0.1:{port}/incidents",
                headers={"Authorization": f"Bearer {CHOSEN_KEY}"},
                timeout=5,
            )
            assert key_works.status_code == 200
        finally:
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=30)
    output = out + err
    assert CHOSEN_KEY not in output
    assert "hunter2" not in output
    assert f"postgres@{db.host}:{db.port}/{db.dbname} from DATABASE_URL" in out
    assert "Traceback" not in output


@pytest.mark.integration
def test_generated_admin_key_is_printed_once(
    database: Database, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_database(database) as db:
        settings = Settings(database_url=url(db), allow_superuser=True, data_dir=data_dir)
        start_service(settings).close()
        first = capsys.readouterr().out
        start_service(settings).close()
        again = capsys.readouterr().out
    assert first.count("API key (shown once, stored hashed): ") == 1
    assert "API key" not in again


@pytest.mark.integration
def test_chosen_admin_key_is_never_printed_nor_logged(
    database: Database,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fresh_database(database) as db:
        settings = Settings(
            database_url=url(db), admin_key=CHOSEN_KEY, allow_superuser=True, data_dir=data_dir
        )
        start_service(settings).close()
    out, err = capsys.readouterr()
    assert "INCIDENT_LEDGER_ADMIN_KEY" in out
    assert CHOSEN_KEY not in out + err + caplog.text


@pytest.mark.integration
def test_serve_refuses_superuser_database_url(database: Database, data_dir: Path) -> None:
    with fresh_database(database) as db:
        result = cli("serve", DATABASE_URL=url(db), INCIDENT_LEDGER_DATA_DIR=str(data_dir))
        line = _one_line_error(result, "serve")
        assert f"DATABASE_URL connects as {db.user}, a role with superuser" in line
        assert "INCIDENT_LEDGER_ALLOW_SUPERUSER=true" in line
        assert public_tables(db) == []  # refused before the migration


@pytest.fixture
def plain_owner(database: Database) -> Iterator[tuple[Database, str]]:
    """A fresh database owned by a non-superuser with CREATEROLE (as in docker compose), and a
    prefix for role names of its own (roles belong to the whole server)."""
    prefix = f"il_{uuid.uuid4().hex[:8]}"
    owner = f"{prefix}_owner"
    with fresh_database(database) as db:
        with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
            conn.execute(SQL("CREATE ROLE {} LOGIN CREATEROLE").format(Identifier(owner)))
            conn.execute(
                SQL("ALTER DATABASE {} OWNER TO {}").format(
                    Identifier(db.dbname), Identifier(owner)
                )
            )
        try:
            yield db, prefix
        finally:
            with psycopg.connect(**db.conninfo(autocommit=True)) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
    with psycopg.connect(**database.conninfo(autocommit=True)) as conn:
        for role in (f"{prefix}_app", f"{prefix}_projector", owner):
            conn.execute(SQL("DROP ROLE IF EXISTS {}").format(Identifier(role)))


@pytest.mark.integration
def test_service_runs_as_own_roles_when_owner_is_not_superuser(
    plain_owner: tuple[Database, str],
) -> None:
    db, prefix = plain_owner
    settings = Settings(
        database_url=url(db, user=f"{prefix}_owner"),
        app_role=f"{prefix}_app",
        projector_role=f"{prefix}_projector",
        app_password="app-password-0123456789",
        projector_password="projector-password-0123456789",
        admin_key=CHOSEN_KEY,
    )
    service = start_service(settings)
    try:
        service.project()
        health = service.health()
        assert health["database"] == "ok"
        assert health["durability"]["ok"] is True
        assert health["head"] > 0
        app_kwargs = service.ledger.recorder.datastore.pool.kwargs  # type: ignore[attr-defined]
        assert app_kwargs["user"] == f"{prefix}_app"
        assert app_kwargs["password"] == "app-password-0123456789"
    finally:
        service.close()
