"""Rebuild the views from the first event into shadow tables (`<table>__new`), then swap them in:
readers keep the old views while the shadows fill, and one transaction replaces them, so nobody
ever reads a half-built view. Runs as the tables' owner (it creates, drops and renames tables).

A large ledger is folded in parallel: the views are shared out between this process and spawned
ones (`Workers`), each reading and decoding the events itself and folding its share of the views
into their shadows, up to the head when the rebuild began; then this process folds what came
after for every view, as it always does."""

from __future__ import annotations

import logging
import os
import pickle
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.utils import resolve_topic
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Identifier

from projections import failures
from projections.failures import TRANSIENT, Failure
from projections.views import PAGE, Decoded, LedgerView, decode

if TYPE_CHECKING:
    from projections.postgres import Projections

log = logging.getLogger("incident_ledger.projections")
SUFFIX = "__new"
REBUILD_LOCK = "incident_ledger.rebuild"
SHADOWS_LOCK = "incident_ledger.rebuild.shadows"
"""Held shared by every process folding into the shadow tables, and taken exclusively to make
them: a process left from a rebuild that died cannot write into the next rebuild's tables."""


@dataclass(frozen=True)
class Workers:
    """How a rebuild folds in parallel: `processes` in all (this one included), each of the others
    spawned, opening the ledger (`app_topic` with `env`, to read and decode the events) and the
    owner's connection (`conninfo`, keyword arguments of psycopg.connect). Only for a ledger of
    at least `min_events` events: below that, starting a process costs more than it saves."""

    app_topic: str
    env: dict[str, str] = field(repr=False)  # credentials: never in a log line
    conninfo: dict[str, Any] = field(repr=False)
    processes: int = 1
    min_events: int = 20 * PAGE


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
    workers: Workers | None = None,
) -> int:
    """Fold every event into fresh shadow tables (the live views keep serving and projecting),
    then pause the live views (their advisory locks), fold the last events, and in one
    transaction drop the live tables, rename the shadows and set the tracking positions.
    Returns the number of event applications (events x views)."""
    views = projections.views
    app = projections.app
    with connect() as conn:
        conn.autocommit = True
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (REBUILD_LOCK,))
        try:
            # Waits for any process of an earlier rebuild still writing the shadow tables.
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (SHADOWS_LOCK,))
            try:
                _create_shadows(conn, views)
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (SHADOWS_LOCK,))
            position, events = 0, 0
            head = app.recorder.max_notification_id() or 0
            shares = _shares(views, workers.processes) if workers else []
            if workers and len(shares) > 1 and head >= workers.min_events:
                position, events = _fold_parallel(conn, app, shares, head, workers, progress)
            position, events = _fold(conn, app, views, position, events, progress)
            for view in views:  # the projector waits at these until the swap commits
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (view.name,))
            try:
                position, events = _fold(conn, app, views, position, events, progress)
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
    app: Application[Any],
    views: Sequence[LedgerView],
    position: int,
    events: int,
    progress: Callable[[str, int], None] | None,
    stop: int | None = None,
) -> tuple[int, int]:
    """Fold the events after `position` (up to `stop`) into the views' shadows, a page per
    transaction."""
    while notifications := app.recorder.select_notifications(
        start=position, limit=PAGE, stop=stop, inclusive_of_start=False
    ):
        page = decode(notifications, app.mapper)
        try:
            with conn.transaction(), conn.cursor() as curs:
                for view in views:
                    view.write(curs, page, SUFFIX)
        except TRANSIENT:
            raise
        except Exception as exc:
            raise RebuildFailed(_culprit(conn, views, page, exc)) from exc
        position = notifications[-1].id
        events += len(notifications)
        if progress is not None:
            for view in views:
                progress(view.name, events)
    return position, events


def _shares(views: Sequence[LedgerView], processes: int) -> list[list[LedgerView]]:
    """The views dealt out to at most `processes` processes, the costliest first, each to the
    process with the least so far (views.py: `LedgerView.cost`); the first share is the largest."""
    shares: list[list[LedgerView]] = [[] for _ in range(max(1, min(processes, len(views))))]
    for view in sorted(views, key=lambda v: v.cost, reverse=True):
        min(shares, key=lambda share: sum(v.cost for v in share)).append(view)
    return sorted(shares, key=lambda share: sum(v.cost for v in share), reverse=True)


def _fold_parallel(
    conn: Connection[DictRow],
    app: Application[Any],
    shares: list[list[LedgerView]],
    stop: int,
    workers: Workers,
    progress: Callable[[str, int], None] | None,
) -> tuple[int, int]:
    """Fold the events up to `stop`: the first share here, every other in a process of its own
    (`python -m projections.rebuild`, given its job on stdin, answering on stdout). Returns the
    position and events folded, as `_fold` does; raises what a process met."""
    log.info(
        "rebuild: folding events up to %d in %d processes (%s)",
        stop,
        len(shares),
        "; ".join(", ".join(view.name for view in share) for share in shares),
    )
    messages: queue.Queue[tuple[str, str, Any]] = queue.Queue()
    children: list[_Share] = []
    running: set[str] = set()

    def relay(block: bool) -> None:
        """What the other processes said, until every one is done; raises what one met."""
        while running:
            try:
                kind, name, value = messages.get() if block else messages.get_nowait()
            except queue.Empty:
                return
            if kind == "progress" and progress is not None:
                progress(name, value)
            elif kind == "done":
                running.discard(name)
            elif kind == "failed":
                raise RebuildFailed(value)
            elif kind == "error":
                raise RuntimeError(f"rebuild process {name!r} failed: {value}")

    def own_progress(view: str, events: int) -> None:
        if progress is not None:
            progress(view, events)
        relay(block=False)

    started = time.monotonic()
    try:
        for share in shares[1:]:
            children.append(_Share(workers, share, stop, messages))
            running.add(children[-1].name)
        position, events = _fold(conn, app, shares[0], 0, 0, own_progress, stop)
        log.info("rebuild: %d events folded here in %.1fs", events, time.monotonic() - started)
        relay(block=True)
        log.info("rebuild: every process done in %.1fs", time.monotonic() - started)
    finally:
        for child in children:
            child.stop()
    return position, events


class _Share:
    """A process folding a share of the views: started at once, its answers read by a thread
    into `messages` as (kind, name, value); a process that ends without answering is an error."""

    def __init__(
        self,
        workers: Workers,
        views: list[LedgerView],
        stop: int,
        messages: queue.Queue[tuple[str, str, Any]],
    ) -> None:
        self.name = "+".join(view.name for view in views)
        self.messages = messages
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            # -P: the working directory is not put first on the path (a file there named like
            # a module this imports would run, with the owner's credentials at hand)
            [sys.executable, "-P", "-m", "projections.rebuild"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
        )
        job = (workers, [view.name for view in views], stop, os.getpid())
        self.reader = threading.Thread(target=self._read, args=(job,), name=f"rebuild {self.name}")
        self.reader.start()

    def _read(self, job: tuple[Workers, list[str], int, int]) -> None:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        try:
            with stdin:
                pickle.dump(job, stdin)
            while True:
                kind, value = pickle.load(stdout)
                if kind == "progress":  # (view, events)
                    self.messages.put((kind, *value))
                    continue
                self.messages.put((kind, self.name, value))
                return
        except BaseException as exc:  # whatever it is, the rebuild must hear of it
            self.process.kill()
            code = self.process.wait()
            self.messages.put(
                ("error", self.name, f"ended with exit code {code}, no answer ({exc!r})")
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()
        self.reader.join()


def _main() -> int:
    """A rebuild's other process: fold a share of the views' shadows up to a position (the job,
    pickled on stdin, from a rebuild of this same code), answering on stdout as it goes."""
    from projections.postgres import Projections

    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the answers

    def say(kind: str, value: Any) -> None:
        pickle.dump((kind, value), answers)
        answers.flush()

    def fold(workers: Workers, names: list[str], stop: int, parent: int) -> None:
        app: Application[Any] = resolve_topic(workers.app_topic)(env=workers.env)
        try:
            views = [view for view in Projections(app).views if view.name in names]
            with psycopg.connect(**workers.conninfo, row_factory=dict_row) as conn:
                conn.autocommit = True
                conn.execute("SELECT pg_advisory_lock_shared(hashtext(%s))", (SHADOWS_LOCK,))

                def report(view: str, n: int) -> None:
                    say("progress", (view, n))  # fails once the rebuild is gone

                def page_done(view: str, n: int) -> None:
                    report(view, n)
                    if os.getppid() != parent:  # gone, though the pipe still took the report
                        raise BrokenPipeError("the rebuild that started this process is gone")

                if os.getppid() != parent:
                    raise BrokenPipeError("the rebuild that started this process is gone")
                _fold(conn, app, views, 0, 0, page_done, stop)
        finally:
            app.close()

    try:
        try:
            fold(*pickle.load(sys.stdin.buffer))
        except BrokenPipeError:
            raise
        except RebuildFailed as failed:
            say("failed", failed.failure)
        except Exception as exc:  # said to the rebuild, which raises it
            say("error", f"{type(exc).__name__}: {exc}")
        else:
            say("done", None)
    except BrokenPipeError:
        log.warning("rebuild process: the rebuild that started it is gone; stopped")
        return 1
    return 0


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


if __name__ == "__main__":
    sys.exit(_main())
