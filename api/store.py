"""PostgreSQL wiring for the library: our recorder (idempotency keys in the same transaction as
the events) and a factory that connects with the service's restricted role, every connection
parameter of DATABASE_URL, and a pool that fails fast while PostgreSQL is unreachable."""

from __future__ import annotations

from collections.abc import Sequence
from time import monotonic
from typing import Any
from weakref import WeakKeyDictionary

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import ConnectionPool, PostgresApplicationRecorder, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg import Connection, Cursor
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout

from api.availability import CONNECT_TIMEOUT, Guard

IDEMPOTENCY_TABLE = "ledger_idempotency_keys"
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
