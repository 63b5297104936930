"""Connections that recover by themselves: a pool that never hands out a connection whose backend
is gone, refuses at once while PostgreSQL does not answer, and a quick retry for statements lost
with their connection."""

from __future__ import annotations

import random
import select
from collections.abc import Callable
from time import monotonic, sleep
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import ConnectionPool
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import PoolTimeout

from api.availability import Guard, timed_out

QUICK_WAIT = 1.0
"""Seconds to wait for a pooled connection before asking whether PostgreSQL answers at all."""
IDLE_CHECK = 1.0
"""Seconds a pooled connection may sit unused before it is checked on its way out."""
RECONNECT_TIMEOUT = 3.0
"""Seconds the pool keeps retrying to replace a lost connection before it starts afresh on
demand (psycopg's default of 5 minutes backs off so far that recovery would lag for minutes)."""
RETRY_DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.2, 0.3, 0.4, 0.5)
"""Pauses between attempts of a statement whose connection was lost: the first retry at once
(on another connection), then backing off, about 2 s in all, as the library's own retries."""
T = TypeVar("T")


def retrying(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call()`, again after a lost connection (the library's errors for it), but not after a
    statement timeout: that one ran, and would only wait again."""
    for delay in RETRY_DELAYS:
        try:
            return call(*args, **kwargs)
        except (InterfaceError, OperationalError) as exc:
            if timed_out(exc):
                raise
        sleep(delay * random.uniform(0.9, 1.1))
    return call(*args, **kwargs)


def _gone(conn: Connection[DictRow]) -> bool:
    """An idle connection has nothing to read; if it has, its backend said goodbye (terminated,
    server shut down) or closed the socket. One system call, no round trip."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class GuardedPool(ConnectionPool[Connection[DictRow]]):
    """The library's pool, handing out only connections whose backend is still there (and
    checking one that sat idle, in case it died silently), and refusing at once
    (DatabaseUnavailable, which the library does not retry) while PostgreSQL does not answer."""

    def __init__(self, *, kwargs: dict[str, Any], **options: Any) -> None:
        self._returned_at: WeakKeyDictionary[Connection[DictRow], float] = WeakKeyDictionary()
        super().__init__(
            kwargs={**kwargs, "row_factory": dict_row}, check=self._check_if_idle, **options
        )
        self.guard = Guard(kwargs, on_recovery=self.check)

    def putconn(self, conn: Connection[DictRow]) -> None:
        if not conn.broken:
            self._returned_at[conn] = monotonic()
        super().putconn(conn)

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
            return self._live(min(timeout, QUICK_WAIT))
        except PoolTimeout:
            if timeout <= QUICK_WAIT:
                raise
        self.guard.confirm()  # raises DatabaseUnavailable
        # PostgreSQL answers, so the pool is busy, or holds connections a restart broke: drop
        # those now (psycopg would try them one by one, pausing longer after each).
        self.check()
        return self._live(max(timeout - (monotonic() - started), 0.001))

    def _live(self, timeout: float) -> Connection[DictRow]:
        """A pooled connection whose backend is there: dead ones are closed, which makes the
        pool replace them, and the next one is tried at once (psycopg's own check would pause
        a second or more after each)."""
        deadline = monotonic() + timeout
        while True:
            conn = super().getconn(max(deadline - monotonic(), 0.001))
            if not _gone(conn):
                return conn
            conn.close()
            super().putconn(conn)
