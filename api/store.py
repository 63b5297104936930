"""PostgreSQL wiring for the library: our recorder (idempotency keys in the same transaction as
the events) and a factory that connects with the service's restricted role and every connection
parameter of DATABASE_URL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg import Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Identifier

from api.availability import CONNECT_TIMEOUT

IDEMPOTENCY_TABLE = "ledger_idempotency_keys"
EXTRA_CONNINFO = "POSTGRES_EXTRA_CONNINFO"
"""Environment key: libpq parameters beyond the library's five (sslmode, sslrootcert, ...)."""


class LedgerRecorder(PostgresApplicationRecorder):
    """The library's recorder, plus the request's idempotency key written in the same transaction,
    so a retried append whose first commit landed answers as the first time, not with a 409."""

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        idempotency: tuple[str, str | None, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if idempotency is not None:
            curs.execute(
                SQL("INSERT INTO {}.{} (key, request_hash, outcome) VALUES (%s, %s, %s)").format(
                    Identifier(self.datastore.schema), Identifier(IDEMPOTENCY_TABLE)
                ),
                idempotency,
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
    """Uses LedgerRecorder; connects with every parameter of DATABASE_URL; sets the session role
    (`POSTGRES_ROLE`) on every connection so the service writes as a role that cannot update or
    delete stored events."""

    application_recorder_class = LedgerRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool  # not opened yet
        pool.kwargs = {**self.connect_params(), "row_factory": dict_row}

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
