"""PostgreSQL wiring for the library: our recorder, and a factory that connects with every
connection parameter of DATABASE_URL (as the service's login role, api/roles.py) and a pool that
fails fast while PostgreSQL is unreachable. Beside the events, in the same transaction, the
recorder writes each command's outcome (by command id) and each idempotency key, and asserts
under the append's table lock that every record a rule relied on (a guard) is still at the
version the command read. An append is bounded in size, and in time by the session's
`lock_timeout` and `statement_timeout`: a timed-out append is not retried (503, retry later)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg.conninfo import conninfo_to_dict
from psycopg.sql import SQL, Composed, Identifier

from api.availability import CONNECT_TIMEOUT, DatabaseBusy, timed_out
from api.pool import RECONNECT_TIMEOUT, GuardedPool, retrying
from domain.errors import LedgerError
from domain.idempotency import IDEMPOTENCY_TTL

IDEMPOTENCY_TABLE = "ledger_idempotency_keys"
COMMANDS_TABLE = "ledger_commands"
GUARD_FUNCTION = "incident_ledger_assert_versions"
CHAIN_TABLE = "ledger_event_chain"
CHAIN_FUNCTION = "incident_ledger_chain"
APPEND_FUNCTION = "incident_ledger_append"
EXTRA_CONNINFO = "POSTGRES_EXTRA_CONNINFO"
"""Environment key: libpq parameters beyond the library's five (sslmode, sslrootcert, ...)."""
MAX_APPEND_BYTES = 256 * 1024
"""Largest append (events' state and topics together). It was set when appends went through
psycopg's pipeline mode, which hung on appends of 384 KiB; the one-statement append has no such
limit, but a bound on one command's size still protects the table lock's other waiters. The
request body limit is as large, and a command's events are far smaller than its body allows."""
# The library's read without its retry decorator (LedgerRecorder retries sooner).
_select_events_once: Callable[..., Any] = PostgresApplicationRecorder.select_events.__wrapped__


class AppendTooLarge(LedgerError):
    """The events of one command are over MAX_APPEND_BYTES (413 `append.too_large`)."""


class LedgerRecorder(PostgresApplicationRecorder):
    max_append_bytes = MAX_APPEND_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        # The library sets `lock_timeout` to its own setting (0: wait forever) before the lock;
        # the session's own (Settings.lock_timeout_seconds) applies instead.
        self.lock_table_statements = [
            SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(
                schema, Identifier(self.events_table_name)
            )
        ]
        self._commands = SQL("{}.{}").format(schema, Identifier(COMMANDS_TABLE))
        self._idempotency = SQL("{}.{}").format(schema, Identifier(IDEMPOTENCY_TABLE))
        chain = SQL("{}.{}").format(schema, Identifier(CHAIN_TABLE))
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
                # The hash chain (api/integrity.py): each event's hash covers its stored bytes and
                # the previous event's hash; written by the append, under its table lock, so the
                # chain's order is the notification order.
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (notification_id bigint PRIMARY KEY, "
                    "hash bytea NOT NULL)"
                ).format(chain),
                SQL(
                    """CREATE OR REPLACE FUNCTION {}.{}(ids bigint[])
                    RETURNS void LANGUAGE plpgsql AS $$
                    DECLARE previous bytea; r record;
                    BEGIN
                      SELECT c.hash INTO previous FROM {} c
                      ORDER BY c.notification_id DESC LIMIT 1;
                      previous := coalesce(previous, ''::bytea);
                      FOR r IN SELECT e.notification_id, e.originator_id, e.originator_version,
                                      convert_to(e.topic, 'UTF8') AS topic, e.state
                               FROM {}.{} e WHERE e.notification_id = ANY(ids)
                               ORDER BY e.notification_id LOOP
                        previous := sha256(previous || int8send(r.notification_id)
                          || uuid_send(r.originator_id) || int4send(r.originator_version::int)
                          || int4send(octet_length(r.topic)) || r.topic || r.state);
                        INSERT INTO {} (notification_id, hash) VALUES (r.notification_id, previous);
                      END LOOP;
                    END $$"""
                ).format(
                    schema,
                    Identifier(CHAIN_FUNCTION),
                    chain,
                    schema,
                    Identifier(self.events_table_name),
                    chain,
                ),
                # The whole append in one statement, so one round trip (the connection is in
                # autocommit: the statement is its transaction, and its commit). The library's
                # order: the table lock (so notification ids commit in order), NOTIFY, the
                # insert; then, still under the lock, the guards, the hash chain, the
                # command's record and its idempotency key, all committed with the events.
                SQL(
                    """CREATE OR REPLACE FUNCTION {schema}.{append}(
                      e_ids uuid[], e_versions bigint[], e_topics text[], e_states bytea[],
                      g_ids uuid[], g_versions int[],
                      c_id uuid, c_outcome text, k_key text, k_hash text, k_outcome text)
                    RETURNS SETOF bigint LANGUAGE plpgsql AS $$
                    DECLARE ids bigint[]; last bigint;
                    BEGIN
                      LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE;
                      NOTIFY {channel};
                      WITH inserted AS (
                        INSERT INTO {schema}.{events}
                          (originator_id, originator_version, topic, state)
                        SELECT * FROM unnest(e_ids, e_versions, e_topics, e_states)
                        RETURNING notification_id)
                      SELECT array_agg(notification_id ORDER BY notification_id) INTO ids
                      FROM inserted;
                      IF cardinality(g_ids) > 0 THEN
                        PERFORM {schema}.{guard}(g_ids, g_versions);
                      END IF;
                      PERFORM {schema}.{chain_function}(ids);
                      last := ids[cardinality(ids)];
                      IF c_id IS NOT NULL THEN
                        INSERT INTO {commands} (command_id, outcome, position)
                        VALUES (c_id, c_outcome, last);
                      END IF;
                      IF k_key IS NOT NULL THEN
                        INSERT INTO {idempotency} (key, request_hash, outcome, position)
                        VALUES (k_key, k_hash, k_outcome, last);
                      END IF;
                      RETURN QUERY SELECT unnest(ids);
                    END $$"""
                ).format(
                    schema=schema,
                    append=Identifier(APPEND_FUNCTION),
                    events=Identifier(self.events_table_name),
                    channel=Identifier(self.channel_name),
                    guard=Identifier(GUARD_FUNCTION),
                    chain_function=Identifier(CHAIN_FUNCTION),
                    commands=self._commands,
                    idempotency=self._idempotency,
                ),
            ]
        )
        # The arrays in binary: in text, psycopg escapes every byte of a state in Python (a few
        # microseconds for JSON, about 0.6 ms for a compressed or encrypted state).
        self._append = SQL(
            "SELECT * FROM {}.{}(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[], "
            "%b::uuid[], %b::int[], %s::uuid, %s::text, %s::text, %s::text, %s::text)"
        ).format(schema, Identifier(APPEND_FUNCTION))

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append, retrying on a lost connection (the library's behaviour), but not on a
        timeout: a stuck append fails (DatabaseBusy) and releases the table lock."""
        size = sum(len(e.state) + len(e.topic) for e in stored_events)
        if size > self.max_append_bytes:
            raise AppendTooLarge(
                "append.too_large",
                f"These events take {size} bytes; one append takes at most "
                f"{self.max_append_bytes}. Split the change into smaller ones.",
                size=size,
                limit=self.max_append_bytes,
            )
        try:
            return retrying(self._append_once, stored_events, **kwargs)
        except (InterfaceError, OperationalError) as exc:
            if timed_out(exc):
                raise DatabaseBusy(f"append gave up: {exc}") from exc
            raise

    def select_events(self, *args: Any, **kwargs: Any) -> Any:
        return retrying(_select_events_once, self, *args, **kwargs)

    def _append_once(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        guards: dict[UUID, int] | None = None,
        command: tuple[UUID, str] | None = None,
        idempotency: tuple[str, str | None, str] | None = None,
        tracking: object = None,
    ) -> Sequence[int]:
        """One statement, one round trip: the append function does the whole append."""
        if tracking is not None:  # the ledger is no process application
            raise NotImplementedError("LedgerRecorder does not record tracking")
        if not stored_events:
            return []
        guards = guards or {}
        command_id, outcome = command or (None, None)
        key, request_hash, key_outcome = idempotency or (None, None, None)
        params = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
            list(guards),
            list(guards.values()),
            command_id,
            outcome,
            key,
            request_hash,
            key_outcome,
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._append, params, prepare=True)
            return [row[APPEND_FUNCTION] for row in curs.fetchall()]

    def _select_one(self, statement: Composed, params: Any) -> dict[str, Any] | None:
        def select() -> dict[str, Any] | None:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(statement, params if isinstance(params, dict) else (params,))
                return curs.fetchone()

        return retrying(select)

    def find_command(self, command_id: UUID) -> tuple[str, int | None] | None:
        row = self._select_one(
            SQL("SELECT outcome, position FROM {} WHERE command_id = %s").format(self._commands),
            command_id,
        )
        return None if row is None else (row["outcome"], row["position"])

    def record_refusal(self, key: str, request_hash: str | None, answer: str) -> None:
        def insert() -> None:  # idempotent, so safe to retry
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(
                    SQL(
                        "INSERT INTO {} (key, request_hash, outcome) VALUES (%s, %s, %s) "
                        "ON CONFLICT (key) DO NOTHING"
                    ).format(self._idempotency),
                    (key, request_hash, answer),
                )

        retrying(insert)

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


class LedgerPostgresFactory(PostgresFactory):
    """Uses LedgerRecorder; connects with every parameter of DATABASE_URL (the service logs in as
    its own role, api/roles.py); sets a session role (`POSTGRES_ROLE`) on every connection if
    asked (tools acting as a role from the owner's session); pools connections in a GuardedPool."""

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
