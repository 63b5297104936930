"""Is PostgreSQL answering? A probe bounded in time, and a guard that lets callers fail at once
while it is not, instead of waiting out the pool's timeout at each of the library's retries.
Also: a statement that timed out (busy, not down), and whether commits survive a crash."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

import psycopg
from eventsourcing import persistence
from psycopg_pool import PoolTimeout

log = logging.getLogger("incident_ledger.database")
CONNECT_TIMEOUT = 5
"""Seconds libpq may spend opening one connection (libpq's minimum is 2)."""


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached now; `reason` is the server's or the network's own words."""

    def __init__(self, reason: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = dict(details or {})


class DatabaseBusy(Exception):
    """A statement waited past `lock_timeout` or ran past `statement_timeout` (503
    `database.busy`): nothing of it was committed; retrying is safe."""


def timed_out(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, is PostgreSQL giving up on a statement
    that waited for a lock or ran too long (also when an administrator cancelled it)."""
    while exc is not None:
        if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")


def durability(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The server settings a committed event's survival depends on, and `ok` when none is off
    (a crash could otherwise lose or corrupt acknowledged commits)."""
    values: dict[str, Any] = {}
    for name in DURABILITY:
        row = conn.execute(f"SHOW {name}").fetchone()
        value = row and (row[name] if isinstance(row, dict) else row[0])
        values[name] = str(value)
    return {"ok": all(value != "off" for value in values.values()), **values}


def one_line(exc: BaseException) -> str:
    """A connection error as one line (libpq's messages span several, with hints)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def probe(conninfo: Mapping[str, Any], deadline: float) -> str | None:
    """Connect and run `SELECT 1` within `deadline` seconds; None when that worked, else why not.
    (libpq will not time out a connection attempt in less than 2 s, so the attempt runs in a
    thread that is given up on.)"""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            params = {"connect_timeout": CONNECT_TIMEOUT, **conninfo, "autocommit": True}
            with psycopg.connect(**params) as conn:
                conn.execute("SELECT 1")
            outcome.append(None)
        except psycopg.Error as exc:
            outcome.append(one_line(exc))

    thread = threading.Thread(target=attempt, name="database-probe", daemon=True)
    thread.start()
    thread.join(deadline)
    return outcome[0] if outcome else f"no answer within {deadline:g} s"


class Guard:
    """Remembers that PostgreSQL stopped answering. While it is down, `check()` raises at once,
    except that one caller per `retry_after` seconds probes again, so service resumes by itself."""

    def __init__(
        self,
        conninfo: Mapping[str, Any],
        on_recovery: Callable[[], None] | None = None,
        retry_after: float = 1.0,
    ) -> None:
        self.conninfo = conninfo
        self.on_recovery = on_recovery
        self.retry_after = retry_after
        self.down: str | None = None
        self._probed_at = float("-inf")
        self._probing = threading.Lock()

    def check(self) -> None:
        """Raise DatabaseUnavailable if PostgreSQL is known to be down (re-probing when due)."""
        reason = self.down
        if reason is None:
            return
        if monotonic() - self._probed_at < self.retry_after:
            raise DatabaseUnavailable(reason)
        self.confirm()

    def confirm(self) -> None:
        """Probe now (unless another caller just did) and raise DatabaseUnavailable if down."""
        if monotonic() - self._probed_at >= self.retry_after and self._probing.acquire(
            blocking=False
        ):
            try:
                self._record(probe(self.conninfo, deadline=CONNECT_TIMEOUT))
            finally:
                self._probing.release()
        if self.down is not None:
            raise DatabaseUnavailable(self.down)

    def _record(self, reason: str | None) -> None:
        self._probed_at = monotonic()
        recovered = reason is None and self.down is not None
        if reason is not None and self.down is None:
            log.warning("PostgreSQL is unavailable: %s", reason)
        elif recovered:
            log.warning("PostgreSQL is available again")
        self.down = reason
        if recovered and self.on_recovery is not None:
            self.on_recovery()


CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    persistence.OperationalError,
    persistence.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    PoolTimeout,
)
"""What a lost or unreachable PostgreSQL raises: the library's wrappers (after its retries),
psycopg's own errors (outside the library), the pool's timeout, and our guard's refusal."""
