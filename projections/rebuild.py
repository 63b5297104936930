"""Rebuild the views from the first event into shadow tables (`<table>__new`), then swap them in:
readers keep the old views while the shadows fill, and one transaction replaces them, so nobody
ever reads a half-built view. Runs as the tables' owner (it creates, drops and renames tables)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from projections import failures
from projections.failures import TRANSIENT, Failure
from projections.views import PAGE, Decoded, LedgerView, decode

if TYPE_CHECKING:
    from projections.postgres import Projections

log = logging.getLogger("incident_ledger.projections")
SUFFIX = "__new"
REBUILD_LOCK = "incident_ledger.rebuild"


class RebuildFailed(RuntimeError):
    """An event the views cannot fold: the rebuild stops and the live views stay as they were."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(
            f"view {failure.view} cannot process event {failure.position} ({failure.topic}, "
            f"{failure.originator_id} v{failure.originator_version}): {failure.reason}"
        )
        self.failure = failure


def shadow_ddl(view: LedgerView, suffix: str = SUFFIX) -> list[str]:
    """The view's DDL with every table, and every index named after a table, suffixed."""
    names = "|".join(re.escape(t) for t in sorted(view.tables, key=len, reverse=True))
    pattern = re.compile(rf"\b({names})")
    return [pattern.sub(lambda m: m.group(1) + suffix, statement) for statement in view.ddl]


def rebuild(
    projections: Projections,
    connect: Callable[[], Connection[DictRow]],
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """Fold every event into fresh shadow tables (the live views keep serving and projecting),
    then pause the live views (their advisory locks), fold the last events, and in one
    transaction drop the live tables, rename the shadows and set the tracking positions.
    Returns the number of event applications (events x views)."""
    views = projections.views
    with connect() as conn:
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (REBUILD_LOCK,))
        try:
            _create_shadows(conn, views)
            position, events = _fold(conn, projections, 0, 0, progress)
            for view in views:  # the projector waits at these until the swap commits
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (view.name,))
            try:
                position, events = _fold(conn, projections, position, events, progress)
                _swap(conn, projections, position)
            finally:
                for view in reversed(views):
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (view.name,))
        except BaseException:
            _drop_shadows(conn, views)
            raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (REBUILD_LOCK,))
    for view in views:
        projections.positions.publish(view.name, position)
    return events * len(views)


def _create_shadows(conn: Connection[DictRow], views: Sequence[LedgerView]) -> None:
    """Fresh shadow tables, with the privileges the live tables grant (the service role's)."""
    _drop_shadows(conn, views)
    with conn.transaction():
        for view in views:
            for statement in shadow_ddl(view):
                conn.execute(statement)
            for table in view.tables:
                grants = conn.execute(
                    "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text "
                    "END AS grantee, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
                    "WHERE c.oid = %s::regclass AND a.grantee <> c.relowner",
                    (table,),
                ).fetchall()
                for grant in grants:
                    conn.execute(
                        SQL("GRANT {} ON {} TO {}").format(
                            SQL(grant["privilege_type"]),
                            Identifier(table + SUFFIX),
                            SQL(grant["grantee"]),  # regrole::text is already quoted
                        )
                    )


def _drop_shadows(conn: Connection[DictRow], views: Sequence[LedgerView]) -> None:
    if conn.closed or conn.broken:
        return
    tables = [Identifier(t + SUFFIX) for view in views for t in view.tables]
    conn.execute(SQL("DROP TABLE IF EXISTS {}").format(SQL(", ").join(tables)))


def _fold(
    conn: Connection[DictRow],
    projections: Projections,
    position: int,
    events: int,
    progress: Callable[[str, int], None] | None,
) -> tuple[int, int]:
    """Fold the events after `position` into the shadows, a page per transaction."""
    app = projections.app
    while notifications := app.recorder.select_notifications(
        start=position, limit=PAGE, inclusive_of_start=False
    ):
        page = decode(notifications, app.mapper)
        try:
            with conn.transaction(), conn.cursor() as curs:
                for view in projections.views:
                    view.write(curs, page, SUFFIX)
        except TRANSIENT:
            raise
        except Exception as exc:
            raise RebuildFailed(_culprit(conn, projections.views, page, exc)) from exc
        position = notifications[-1].id
        events += len(notifications)
        if progress is not None:
            for view in projections.views:
                progress(view.name, events)
    return position, events


def _culprit(
    conn: Connection[DictRow], views: Sequence[LedgerView], page: list[Decoded], exc: Exception
) -> Failure:
    """The first event of a failed page that a view cannot fold (tried one by one, rolled back)."""
    with conn.transaction(force_rollback=True), conn.cursor() as curs:
        for item in page:
            for view in views:
                try:
                    with conn.transaction():
                        view.write(curs, [item], SUFFIX)
                except TRANSIENT:
                    raise
                except Exception as error:
                    return Failure.of(view.name, item.notification, error)
    return Failure.of(views[0].name, page[0].notification, exc)


def _swap(conn: Connection[DictRow], projections: Projections, position: int) -> None:
    """One transaction: the live tables go, the shadows take their names, positions are set."""
    views = projections.views
    tables = [t for view in views for t in view.tables]
    with conn.transaction(), conn.cursor() as curs:
        # In the order readers take them, so a reader and the swap never wait on each other.
        curs.execute(
            SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                SQL(", ").join(Identifier(t) for t in tables)
            )
        )
        live = projections.read_positions(curs)
        if any(p > position for p in live.values()):
            raise RuntimeError(f"live views {live} are ahead of the rebuilt ones ({position})")
        for table in tables:
            curs.execute(SQL("DROP TABLE {}").format(Identifier(table)))
            curs.execute(
                SQL("ALTER TABLE {} RENAME TO {}").format(
                    Identifier(table + SUFFIX), Identifier(table)
                )
            )
            curs.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = %s",
                (table,),
            )
            for index in [row["indexname"] for row in curs.fetchall()]:
                if index.startswith(table + SUFFIX):
                    curs.execute(
                        SQL("ALTER INDEX {} RENAME TO {}").format(
                            Identifier(index), Identifier(table + index[len(table + SUFFIX) :])
                        )
                    )
        for view in views:
            curs.execute(
                SQL(
                    "INSERT INTO {} (application_name, notification_id) VALUES (%s, %s) "
                    "ON CONFLICT (application_name) DO UPDATE "
                    "SET notification_id = EXCLUDED.notification_id"
                ).format(Identifier(view.tracking_table_name)),
                (projections.app.name, position),
            )
            curs.execute(failures.clear_statement(), (view.name, position))
    for view in views:
        projections.forget_failure(view.name)
    log.info("rebuilt views swapped in at position %d", position)
