"""Migrations racing: API and projector (and more) starting together on a fresh database never
fail, because every statement runs under one advisory lock."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from api.database import SCHEMA_TABLE, SCHEMA_VERSION, Database
from tests.integration.databases import ROOT, fresh_database, spawn, url

ROUNDS = 10


def test_api_imports_from_this_work_tree() -> None:
    import api

    assert api.__file__ is not None
    assert str(ROOT) in api.__file__


@pytest.mark.integration
def test_migrate_processes_racing_on_a_fresh_database_never_fail(
    database: Database, data_dir: Path
) -> None:
    failures: list[str] = []
    for round_ in range(ROUNDS):
        racers = 2 if round_ % 2 == 0 else 3
        with fresh_database(database) as db:
            processes = [
                spawn(
                    "migrate",
                    DATABASE_URL=url(db),
                    INCIDENT_LEDGER_ALLOW_SUPERUSER="true",  # the embedded server's only owner
                    INCIDENT_LEDGER_DATA_DIR=str(data_dir),  # the service roles' passwords
                )
                for _ in range(racers)
            ]
            for process in processes:
                _, err = process.communicate(timeout=60)
                if process.returncode != 0:
                    failures.append(f"round {round_}: exit {process.returncode}: {err[-400:]}")
            with psycopg.connect(**db.conninfo()) as conn:
                rows = conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchall()
        # the first one applied the schema; the others found it current and recorded nothing
        assert rows == [(SCHEMA_VERSION,)], rows
    assert failures == []
