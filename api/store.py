"""PostgreSQL wiring for the library: our recorder and a factory that connects with the service's
restricted role. Beside the events, in the same transaction, the recorder writes each command's
outcome (by command id) and each idempotency key, and asserts under the append's table lock that
every record a rule relied on (a guard) is still at the version the command read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

IDEMPOTENCY_TABLE = "ledger_idempotency_keys"
COMMANDS_TABLE = "ledger_commands"
GUARD_FUNCTION = "incident_ledger_assert_versions"


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

    def _select_one(self, statement: Composed, key: Any) -> dict[str, Any] | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, (key,), prepare=True)
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
        row = self._select_one(
            SQL("SELECT request_hash, outcome, position FROM {} WHERE key = %s").format(
                self._idempotency
            ),
            key,
        )
        return None if row is None else (row["request_hash"], row["outcome"], row["position"])


class LedgerPostgresFactory(PostgresFactory):
    """Uses LedgerRecorder, and sets the session role (`POSTGRES_ROLE`) on every connection so
    the service writes as a role that cannot update or delete stored events."""

    application_recorder_class = LedgerRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        role = self.env.get("POSTGRES_ROLE")
        if role and isinstance(self.datastore.pool.kwargs, dict):
            self.datastore.pool.kwargs["options"] = f"-c role={role}"
