"""PostgreSQL wiring for the library: our recorder (idempotency keys in the same transaction as
the events) and a factory that connects with the service's restricted role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

IDEMPOTENCY_TABLE = "ledger_idempotency_keys"


class LedgerRecorder(PostgresApplicationRecorder):
    """The library's recorder, plus the request's idempotency key written in the same transaction,
    so a retried append whose first commit landed answers as the first time, not with a 409.
    The stored answer carries the command's position (its last event's notification id), which
    is known only after the insert: `currval` of the notification sequence in this session."""

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        idempotency: tuple[str, str | None, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if idempotency is not None and not stored_events:
            self._insert_idempotency(curs, idempotency, with_position=False)

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        idempotency: tuple[str, str | None, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super()._insert_stored_events(curs, stored_events, **kwargs)
        if idempotency is not None:
            # Another cursor: the library fetches the inserted ids from `curs` afterwards.
            with curs.connection.cursor() as other:
                self._insert_idempotency(other, idempotency, with_position=True)

    def _insert_idempotency(
        self,
        curs: Cursor[DictRow],
        idempotency: tuple[str, str | None, str],
        *,
        with_position: bool,
    ) -> None:
        table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(IDEMPOTENCY_TABLE)
        )
        if not with_position:
            curs.execute(
                SQL("INSERT INTO {} (key, request_hash, outcome) VALUES (%s, %s, %s)").format(
                    table
                ),
                idempotency,
            )
            return
        curs.execute(
            SQL(
                "INSERT INTO {} (key, request_hash, outcome) VALUES (%s, %s, "
                "jsonb_set(%s::jsonb, '{{position}}', to_jsonb(currval(pg_get_serial_sequence("
                "%s, 'notification_id'))))::text)"
            ).format(table),
            (*idempotency, f"{self.datastore.schema}.{self.events_table_name}"),
        )

    def find_idempotency(self, key: str) -> tuple[str, str] | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT request_hash, outcome FROM {}.{} WHERE key = %s").format(
                    Identifier(self.datastore.schema), Identifier(IDEMPOTENCY_TABLE)
                ),
                (key,),
                prepare=True,
            )
            row = curs.fetchone()
        return None if row is None else (row["request_hash"], row["outcome"])


class LedgerPostgresFactory(PostgresFactory):
    """Uses LedgerRecorder, and sets the session role (`POSTGRES_ROLE`) on every connection so
    the service writes as a role that cannot update or delete stored events."""

    application_recorder_class = LedgerRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        role = self.env.get("POSTGRES_ROLE")
        if role and isinstance(self.datastore.pool.kwargs, dict):
            self.datastore.pool.kwargs["options"] = f"-c role={role}"
