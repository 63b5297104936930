"""PostgreSQL views with tracking: each page of events is read and decoded once, then folded and
written into each view together with that view's tracking position in one transaction, so a crash
never double-counts or skips an event. A view that fails on an event stops just before it (the
others go on) and is retried later; `Projector` (projections/projector.py) runs this in the
background, `projections/rebuild.py` rebuilds views into shadow tables and swaps them in."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Tracking
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from projections import failures
from projections.failures import TRANSIENT, Failure
from projections.views import PAGE, VIEWS, Decoded, LedgerView, decode
from projections.waiting import Positions

if TYPE_CHECKING:
    from projections.rebuild import Workers

log = logging.getLogger("incident_ledger.projections")
CREATE_LOCK = 74202  # serialises `CREATE TABLE IF NOT EXISTS` of concurrent migrations


class Projections:
    """All views over one ledger: catch up (page by page, a failing view isolated), status and
    lag, read-your-writes waits, and rebuild."""

    def __init__(
        self, app: Application[Any], retry_seconds: float = 30.0, positions: Positions | None = None
    ) -> None:
        """`app`'s datastore is the connection for everything here: a role that writes the views
        (the projector's) or, for reads only, one that reads them. Instances reading and writing
        the same views in one process share `positions`, so that readers wake on each page."""
        self.app = app
        self.datastore: PostgresDatastore = app.recorder.datastore  # type: ignore[attr-defined]
        self.events_table: str = app.recorder.events_table_name  # type: ignore[attr-defined]
        self.views = [cls(self.datastore) for cls in VIEWS]
        self.positions = positions or Positions()
        self.retry_seconds = retry_seconds
        self._retry_at: dict[str, float] = {}
        """Failed views, and when (time.monotonic) to try them again."""
        self._positions_sql = SQL("SELECT {}").format(
            SQL(", ").join(
                SQL(
                    "(SELECT notification_id FROM {} WHERE application_name = %(app)s) AS {}"
                ).format(Identifier(view.tracking_table_name), Identifier(view.name))
                for view in self.views
            )
        )

    def view(self, name: str) -> LedgerView:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(name)

    def create_tables(self) -> None:
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_LOCK,))
            try:
                for view in self.views:
                    view.create_table()
                conn.execute(failures.ERROR_DDL)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_LOCK,))

    # --- catching up ------------------------------------------------------------------------

    def read_positions(self, curs: Cursor[DictRow]) -> dict[str, int]:
        curs.execute(self._positions_sql, {"app": self.app.name})
        row = curs.fetchone() or {}
        return {view.name: row.get(view.name) or 0 for view in self.views}

    def catch_up(
        self,
        progress: Callable[[str, int], None] | None = None,
        *,
        retry_failed: bool = False,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Bring every view that is not waiting to retry up to the head; returns the number of
        event applications. Failed views are tried again when due (or now, if `retry_failed`)."""
        done: dict[str, int] = {}
        while not (stop is not None and stop()):
            processed = self.step(retry_failed=retry_failed)
            retry_failed = False
            if not processed:
                break
            for name, n in processed.items():
                done[name] = done.get(name, 0) + n
                if progress is not None:
                    progress(name, done[name])
        return sum(done.values())

    def step(self, *, retry_failed: bool = False) -> dict[str, int]:
        """One page of events, read and decoded once, written into each due view."""
        now = time.monotonic()
        due = [v for v in self.views if retry_failed or self._retry_at.get(v.name, 0.0) <= now]
        if not due:
            return {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            positions = self.read_positions(curs)
        for view in due:
            self.positions.publish(view.name, positions[view.name])
        start = min(positions[v.name] for v in due)
        notifications = self.app.recorder.select_notifications(
            start=start, limit=PAGE, inclusive_of_start=False
        )
        page = decode(notifications, self.app.mapper)
        pending = {
            view: mine
            for view in due
            if (mine := [item for item in page if item.notification.id > positions[view.name]])
        }
        if len(pending) > 1:
            try:  # the usual case: every view in one transaction, one commit for the page
                self._write(pending)
                return {view.name: len(mine) for view, mine in pending.items()}
            except TRANSIENT:
                raise
            except Exception:  # a view cannot fold this page: each alone, to find the event
                log.debug("a view failed on the page after %d; writing views one by one", start)
        for view, mine in pending.items():
            self._write_isolating(view, mine)
        return {view.name: len(mine) for view, mine in pending.items()}

    def _write_isolating(self, view: LedgerView, page: Sequence[Decoded]) -> bool:
        """Write the page; if it fails, write its halves, down to the one event that fails:
        the good events before it are committed, the view stops just before it."""
        try:
            self._write({view: page})
            return True
        except TRANSIENT:
            raise
        except Exception as exc:
            if len(page) == 1:
                self._fail(view, page[0].notification, exc)
                return False
        half = len(page) // 2
        return self._write_isolating(view, page[:half]) and self._write_isolating(view, page[half:])

    def _write(self, pages: Mapping[LedgerView, Sequence[Decoded]]) -> None:
        """Each view's page, its tracking position and its cleared failure, all in one
        transaction. Each view's advisory lock is taken in the views' order (as every projector
        and a rebuild take them), so writers never wait on each other in a cycle."""
        written: dict[LedgerView, int] = {}
        advanced: list[str] = []
        with self.datastore.transaction(commit=True) as curs:
            for view, page in pages.items():
                view.lock(curs)
                position = view._max_tracking_id(self.app.name, curs) or 0
                page = [item for item in page if item.notification.id > position]  # moved on
                if page:
                    position = page[-1].notification.id
                    view.write(curs, page)
                    view._insert_tracking(curs, Tracking(self.app.name, position))
                    curs.execute(failures.clear_statement(), (view.name, position))
                    advanced.append(view.name)
                written[view] = position
        for name in advanced:  # committed: past its failure, if it had one
            self._retry_at.pop(name, None)
        for view, position in written.items():
            self.positions.publish(view.name, position)

    def _fail(self, view: LedgerView, notification: Notification, exc: Exception) -> None:
        failure = Failure.of(view.name, notification, exc)
        with self.datastore.transaction(commit=True) as curs:
            failure = failures.record(curs, failure)
        self._retry_at[view.name] = time.monotonic() + self.retry_seconds
        log.error(
            "view %s stopped before event %d (%s, %s v%d): %s; retrying in %gs",
            view.name,
            failure.position,
            failure.topic,
            failure.originator_id,
            failure.originator_version,
            failure.reason,
            self.retry_seconds,
        )
        self.positions.wake()

    def forget_failure(self, view_name: str) -> None:
        """The view got past its failure elsewhere (a rebuild): try it again at once."""
        self._retry_at.pop(view_name, None)

    def next_retry_in(self) -> float | None:
        """Seconds until the next failed view is due again (None when none failed)."""
        due = list(self._retry_at.values())  # a copy: other threads may change the dict
        return max(0.0, min(due) - time.monotonic()) if due else None

    # --- reading ----------------------------------------------------------------------------

    def _position_and_failure(self, view: LedgerView) -> tuple[int, Failure | None]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT p.view_position, e.* FROM (SELECT (SELECT notification_id FROM {} "
                    "WHERE application_name = %s) AS view_position) p "
                    "LEFT JOIN {} e ON e.view = %s"
                ).format(Identifier(view.tracking_table_name), Identifier(failures.ERROR_TABLE)),
                (self.app.name, view.name),
            )
            row = curs.fetchone() or {}
        position = row.pop("view_position", None) or 0
        failure = Failure(**row) if row.get("view") is not None else None
        return position, failure

    def wait_for(self, view_name: str, wanted: int, timeout: float) -> int:
        """Wait until the view has projected position `wanted` (see waiting.Positions.wait)."""
        view = self.view(view_name)
        return self.positions.wait(
            view.name, wanted, timeout, lambda: self._position_and_failure(view)
        )

    @contextmanager
    def reading(self, view_name: str) -> Iterator[tuple[Cursor[DictRow], int]]:
        """A cursor to query the view, and the view's position read just before: the rows read
        afterwards include at least everything up to it. Autocommit, so each statement takes
        its locks and its snapshot anew: a rebuild's swap is seen whole or not at all."""
        view = self.view(view_name)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(
                    Identifier(view.tracking_table_name)
                ),
                (self.app.name,),
                prepare=True,
            )
            row = curs.fetchone()
            yield curs, (row["notification_id"] if row else 0) or 0

    # --- status -----------------------------------------------------------------------------

    def status(self) -> tuple[int, list[dict[str, Any]]]:
        """The event head, and for each view: position, events behind, lag and failure."""
        events = Identifier(self.events_table)
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            positions = self.read_positions(curs)
            curs.execute(
                SQL("SELECT (SELECT max(notification_id) FROM {}) AS head, {}").format(
                    events,
                    SQL(", ").join(
                        SQL("(SELECT count(*) FROM {} WHERE notification_id > %s) AS {}").format(
                            events, Identifier(name)
                        )
                        for name in positions
                    ),
                ),
                list(positions.values()),
            )
            counts = curs.fetchone() or {}
            failed = failures.read_all(curs)
        head = counts.get("head") or 0
        now = datetime.now(UTC)
        report = []
        for view in self.views:
            position = positions[view.name]
            behind = counts.get(view.name) or 0
            failure = failed.get(view.name)
            report.append(
                {
                    "view": view.name,
                    "position": position,
                    "head": head,
                    "events_behind": behind,
                    "lag_ms": self._lag_ms(position, now) if behind else 0,
                    "error": failure.as_json() if failure else None,
                }
            )
        return head, report

    def lag(self) -> list[dict[str, Any]]:
        return self.status()[1]

    def _lag_ms(self, position: int, now: datetime) -> int | None:
        """Age of the oldest event the view has not projected (None if it cannot be decoded)."""
        oldest = self.app.recorder.select_notifications(
            start=position, limit=1, inclusive_of_start=False
        )
        if not oldest:
            return 0
        try:
            event = self.app.mapper.to_domain_event(oldest[0])
        except Exception:
            return None
        recorded = getattr(event, "timestamp", None)
        if not isinstance(recorded, datetime):
            return None
        return max(0, int((now - recorded).total_seconds() * 1000))

    # --- rebuild ----------------------------------------------------------------------------

    def rebuild(
        self,
        connect: Callable[[], psycopg.Connection[DictRow]],
        progress: Callable[[str, int], None] | None = None,
        workers: Workers | None = None,
    ) -> int:
        """Rebuild every view into shadow tables and swap them in (projections/rebuild.py).
        `connect` opens a connection (rows as dicts) as the owner of the view tables; `workers`
        says how other processes may share the folding."""
        from projections.rebuild import rebuild

        return rebuild(self, connect, progress, workers)
