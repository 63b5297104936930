"""PostgreSQL wiring for the library: our recorder, and a factory that connects with the service's
restricted role, every connection parameter of DATABASE_URL, and a pool that fails fast while
PostgreSQL is unreachable. Beside the events, in the same transaction, the recorder writes each
command's outcome (by command id) and each idempotency key, and asserts under the append's table
lock that every record a rule relied on (a guard) is still at the version the command read."""

from __future__ import annotations

from collections.abc import Sequence
from time import monotonic
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    ConnectionPool,
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg import Connection, Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg_pool import PoolTimeout

from api.availability import CONNECT_TIMEOUT, Guard
from domain.idempotency import IDEMPOTENCY_TTL

IDEMPOTENCY_TABLE = "ledger_idempotency_keys"
COMMANDS_TABLE = "ledger_commands"
GUARD_FUNCTION = "incident_ledger_assert_versions"
EXTRA_CONNINFO = "POSTGRES_EXTRA_CONNINFO"
"""Environment key: libpq parameters beyond the library's five (sslmode, sslrootcert, ...)."""
QUICK_WAIT = 1.0
"""Seconds to wait for a pooled connection before asking whether PostgreSQL answers at all."""
IDLE_CHECK = 1.0
"""Seconds a pooled connection may sit unused before it is checked on its way out."""
RECONNECT_TIMEOUT = 3.0
"""Seconds the pool keeps retrying to replace a lost connection before it starts afresh on
demand (psycopg's default of 5 minutes backs off so far that recovery would lag for minutes)."""


class LedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        self._commands = SQL("{}.{}").format(schema, Identifier(COMMANDS_TABLE))
        self._idempotency = SQL("{}.{}").format(schema, Identifier(IDEMPOTENCY_TABLE))
        self._guard = SQL("SELECT {}.{}(%s::uuid[], %s::int[])").format(
            schema, Identifier(GUARD_FUNCTION)
        )
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (command_id uuid PRIMARY KEY, "
                    "outcome text NOT NULL, position bigint, "
                    "recorded_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._commands),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, request_hash text, "
                    "outcome text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._idempotency),
                SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS position bigint").format(
                    self._idempotency
                ),
                # Raises an integrity error (so the library answers RecordConflictError) when a
                # guarded record has moved; runs after the table lock, so no append can interleave.
                SQL(
                    """CREATE OR REPLACE FUNCTION {}.{}(ids uuid[], versions int[])
                    RETURNS void LANGUAGE plpgsql AS $$
                    DECLARE moved uuid;
                    BEGIN
                      SELECT g.id INTO moved FROM unnest(ids, versions) AS g(id, v)
                      WHERE coalesce((SELECT max(e.originator_version) FROM {}.{} e
                                      WHERE e.originator_id = g.id), 0) <> g.v
                      LIMIT 1;
                      IF moved IS NOT NULL THEN
                        RAISE EXCEPTION 'guarded record % changed', moved
                          USING ERRCODE = 'integrity_constraint_violation';
                      END IF;
                    END $$"""
                ).format(
                    schema, Identifier(GUARD_FUNCTION), schema, Identifier(self.events_table_name)
                ),
            ]
        )

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        guards: dict[UUID, int] | None = None,
        **kwargs: Any,
    ) -> None:
        # The library's order (lock, notify, insert), then the guard check, still under the
        # lock and before the library's sync, so a moved record fails the append with nothing
        # else queued behind it in the pipeline. Its own cursor, so the insert's cursor keeps the
        # returned notification ids; never prepared, because psycopg's pipeline mode loses track
        # of a statement prepared in a batch that an earlier statement's error aborted.
        self._lock_table(curs)
        self._notify_channel(curs)
        PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events, **kwargs)
        if guards:
            with curs.connection.cursor() as guard:
                guard.execute(self._guard, (list(guards), list(guards.values())), prepare=False)

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        command: tuple[UUID, str] | None = None,
        idempotency: tuple[str, str | None, str] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # Written after the events (same transaction), so they know the command's position.
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        position = ids[-1] if ids else None
        if command is not None:
            curs.execute(
                SQL("INSERT INTO {} (command_id, outcome, position) VALUES (%s, %s, %s)").format(
                    self._commands
                ),
                (*command, position),
                prepare=False,
            )
        if idempotency is not None:
            curs.execute(
                SQL(
                    "INSERT INTO {} (key, request_hash, outcome, position) VALUES (%s, %s, %s, %s)"
                ).format(self._idempotency),
                (*idempotency, position),
                prepare=False,
            )
        return ids

    def _select_one(self, statement: Composed, params: Any) -> dict[str, Any] | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params if isinstance(params, dict) else (params,))
            return curs.fetchone()

    def find_command(self, command_id: UUID) -> tuple[str, int | None] | None:
        row = self._select_one(
            SQL("SELECT outcome, position FROM {} WHERE command_id = %s").format(self._commands),
            command_id,
        )
        return None if row is None else (row["outcome"], row["position"])

    def record_refusal(self, key: str, request_hash: str | None, answer: str) -> None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (key, request_hash, outcome) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key) DO NOTHING"
                ).format(self._idempotency),
                (key, request_hash, answer),
            )

    def find_idempotency(self, key: str) -> tuple[str | None, str, int | None] | None:
        """The key's first answer, if used within IDEMPOTENCY_TTL; an expired key is deleted in
        the same statement, so it can start a new request."""
        row = self._select_one(
            SQL(
                "WITH expired AS (DELETE FROM {0} WHERE key = %(key)s AND recorded_at < now() - "
                "%(ttl)s) SELECT request_hash, outcome, position FROM {0} "
                "WHERE key = %(key)s AND recorded_at >= now() - %(ttl)s"
            ).format(self._idempotency),
            {"key": key, "ttl": IDEMPOTENCY_TTL},
        )
        return None if row is None else (row["request_hash"], row["outcome"], row["position"])


class GuardedPool(ConnectionPool[Connection[DictRow]]):
    """The library's pool, checking a connection that sat idle before handing it out (a restart
    of PostgreSQL breaks them silently), and refusing at once (DatabaseUnavailable, which the
    library does not retry) while PostgreSQL does not answer."""

    def __init__(self, *, kwargs: dict[str, Any], **options: Any) -> None:
        self._returned_at: WeakKeyDictionary[Connection[DictRow], float] = WeakKeyDictionary()
        super().__init__(
            kwargs={**kwargs, "row_factory": dict_row}, check=self._check_if_idle, **options
        )
        self.guard = Guard(kwargs, on_recovery=self.check)

    def putconn(self, conn: Connection[DictRow]) -> None:
        broken = conn.broken
        if not broken:
            self._returned_at[conn] = monotonic()
        super().putconn(conn)
        if broken and not self.closed:  # lost mid-use: so are the idle ones, likely; find them
            self.check()

    def _check_if_idle(self, conn: Connection[DictRow]) -> None:
        # A round trip per checkout would cost a busy service about a tenth of its throughput.
        returned = self._returned_at.get(conn)
        if returned is not None and monotonic() - returned > IDLE_CHECK:
            self.check_connection(conn)

    def getconn(self, timeout: float | None = None) -> Connection[DictRow]:
        self.guard.check()
        timeout = self.timeout if timeout is None else timeout
        started = monotonic()
        try:
            return super().getconn(min(timeout, QUICK_WAIT))
        except PoolTimeout:
            if timeout <= QUICK_WAIT:
                raise
        self.guard.confirm()  # raises DatabaseUnavailable
        # PostgreSQL answers, so the pool is busy, or holds connections a restart broke: drop
        # those now (psycopg would try them one by one, pausing longer after each).
        self.check()
        return super().getconn(max(timeout - (monotonic() - started), 0.001))


class LedgerPostgresFactory(PostgresFactory):
    """Uses LedgerRecorder; connects with every parameter of DATABASE_URL; sets the session role
    (`POSTGRES_ROLE`) on every connection so the service writes as a role that cannot update or
    delete stored events; and pools connections in a GuardedPool."""

    application_recorder_class = LedgerRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        library_pool = self.datastore.pool  # not opened yet: replacing it costs nothing
        params = self.connect_params()
        self.datastore.pool = GuardedPool(
            kwargs=params,
            connection_class=library_pool.connection_class,
            min_size=library_pool.min_size,
            max_size=library_pool.max_size,
            open=False,
            configure=self.datastore.after_connect_func(),
            timeout=library_pool.timeout,
            max_waiting=library_pool.max_waiting,
            max_lifetime=library_pool.max_lifetime,
            reconnect_timeout=RECONNECT_TIMEOUT,
            get_password_func=library_pool.get_password_func,
        )

    def connect_params(self) -> dict[str, Any]:
        """libpq parameters: the library's five (empty ones left to libpq's defaults, as in a
        URL that omits them), the extra ones, a connect timeout and the session role."""
        params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
        for key, name in (
            (self.POSTGRES_DBNAME, "dbname"),
            (self.POSTGRES_HOST, "host"),
            (self.POSTGRES_PORT, "port"),
            (self.POSTGRES_USER, "user"),
            (self.POSTGRES_PASSWORD, "password"),
        ):
            if value := self.env.get(key):
                params[name] = value
        params.update(conninfo_to_dict(self.env.get(EXTRA_CONNINFO) or ""))
        if role := self.env.get("POSTGRES_ROLE"):
            params["options"] = f"{params.get('options', '')} -c role={role}".strip()
        return params
