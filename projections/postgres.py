"""PostgreSQL views with tracking: each page of events is folded and written together with the
tracking position in one transaction, so a crash never double-counts or skips an event."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, Notification, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Placeholder
from psycopg.types.json import Jsonb

from domain.base import DomainEvent
from projections.folds import (
    Append,
    Increment,
    Lookup,
    Row,
    ci_client_rows,
    incident_rows,
    timeline_rows,
    user_rows,
)

log = logging.getLogger("incident_ledger.projections")
PAGE = 500

CURRENT_STATE_DDL = [
    """CREATE TABLE IF NOT EXISTS incident_view (
        id uuid PRIMARY KEY, number text UNIQUE NOT NULL, title text NOT NULL,
        description text NOT NULL, category text NOT NULL, severity text NOT NULL,
        impact text NOT NULL, urgency text NOT NULL, status text NOT NULL,
        reported_by uuid NOT NULL, assigned_to uuid, detection_time timestamptz NOT NULL,
        acknowledged_at timestamptz, resolved_at timestamptz, closed_at timestamptz,
        reopen_count int NOT NULL DEFAULT 0, problem_id uuid, ci_ids uuid[] NOT NULL DEFAULT '{}',
        version int NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS incident_view_detection ON incident_view (detection_time, id)",
    "CREATE INDEX IF NOT EXISTS incident_view_status ON incident_view (status)",
    """CREATE TABLE IF NOT EXISTS ci_client (
        ci_id uuid NOT NULL, client_id uuid NOT NULL, PRIMARY KEY (ci_id, client_id))""",
    """CREATE TABLE IF NOT EXISTS user_view (
        id uuid PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, email text NOT NULL,
        role text NOT NULL, timezone text NOT NULL, status text NOT NULL, client_id uuid)""",
]
TIMELINE_DDL = [
    """CREATE TABLE IF NOT EXISTS timeline_entry (
        notification_id bigint PRIMARY KEY, record_id uuid NOT NULL, record_type text NOT NULL,
        record_version int NOT NULL, event_type text NOT NULL, actor_id uuid,
        actor_name text, actor_role text, occurred_at timestamptz NOT NULL,
        recorded_at timestamptz NOT NULL, command text NOT NULL, command_id uuid NOT NULL,
        idempotency_key text, source text, changes jsonb NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS timeline_entry_record ON timeline_entry (record_id)",
    "CREATE INDEX IF NOT EXISTS timeline_entry_actor ON timeline_entry (actor_id)",
    """CREATE TABLE IF NOT EXISTS timeline_link (
        record_id uuid PRIMARY KEY, incident_id uuid NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS timeline_link_incident ON timeline_link (incident_id)",
    """CREATE TABLE IF NOT EXISTS timeline_actor (
        id uuid PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
        role text NOT NULL)""",
]


def _adapt(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


def _value_sql(value: Any) -> Composed:
    if isinstance(value, Lookup):
        return SQL("(SELECT {} FROM {} WHERE id = {})").format(
            SQL(value.expression),
            Identifier(value.table),
            Placeholder(),
        )
    return Composed([Placeholder()])


def render(row: Row) -> tuple[Composed, list[Any]]:
    """SQL for one row change."""
    table = Identifier(row.table)
    where = SQL(" AND ").join(SQL("{} = {}").format(Identifier(k), Placeholder()) for k in row.key)
    if row.op == "delete":
        return SQL("DELETE FROM {} WHERE {}").format(table, where), list(row.key.values())
    if row.op in ("insert", "upsert"):
        cols = {**row.key, **row.values}
        statement = SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table,
            SQL(", ").join(Identifier(c) for c in cols),
            SQL(", ").join(_value_sql(v) for v in cols.values()),
        )
        params = [v.key if isinstance(v, Lookup) else _adapt(v) for v in cols.values()]
        if row.op == "upsert":
            statement += SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                SQL(", ").join(Identifier(c) for c in row.key),
                SQL(", ").join(
                    SQL("{} = EXCLUDED.{}").format(Identifier(c), Identifier(c)) for c in row.values
                ),
            )
        return statement, params
    sets: list[Composed] = []
    params = []
    for column, value in row.values.items():
        col = Identifier(column)
        if isinstance(value, Increment):
            sets.append(SQL("{} = {} + {}").format(col, col, Placeholder()))
            params.append(value.by)
        elif isinstance(value, Append):
            sets.append(SQL("{} = array_append({}, {})").format(col, col, Placeholder()))
            params.append(value.item)
        else:
            sets.append(SQL("{} = {}").format(col, Placeholder()))
            params.append(_adapt(value))
    statement = SQL("UPDATE {} SET {} WHERE {}").format(table, SQL(", ").join(sets), where)
    return statement, params + list(row.key.values())


class LedgerView(PostgresTrackingRecorder):
    """A read model: its tables, its fold, and its own tracking table."""

    name: ClassVar[str]
    ddl: ClassVar[list[str]]
    tables: ClassVar[tuple[str, ...]]

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, tracking_table_name=f"{self.name}_tracking")
        self.sql_create_statements.extend(Composed([SQL(s)]) for s in self.ddl)

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        raise NotImplementedError

    def process(self, app: Application[Any], limit: int = PAGE) -> int:
        """Fold the next page of events in one transaction; returns how many were processed."""
        with self.datastore.transaction(commit=True) as curs:
            # One writer per view at a time (API and projector may both catch up).
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.name,))
            position = self._max_tracking_id(app.name, curs) or 0
            notifications = app.recorder.select_notifications(
                start=position, limit=limit, inclusive_of_start=False
            )
            if not notifications:
                return 0
            self.apply(curs, notifications, app.mapper)
            self._insert_tracking(curs, Tracking(app.name, notifications[-1].id))
        return len(notifications)

    def apply(
        self, curs: Cursor[DictRow], notifications: Sequence[Notification], mapper: Mapper[Any]
    ) -> None:
        rows: list[Row] = []
        for notification in notifications:
            event = mapper.to_domain_event(notification)
            if isinstance(event, DomainEvent):
                rows.extend(self.fold(event, notification.id))
        with curs.connection.pipeline():
            for row in rows:
                statement, params = render(row)
                curs.execute(statement, params)

    def catch_up(self, app: Application[Any], progress: Callable[[int], None] | None = None) -> int:
        total = 0
        while processed := self.process(app):
            total += processed
            if progress is not None:
                progress(total)
        return total

    def clear(self) -> None:
        """Empty the view and forget its position, so the next catch-up rebuilds it from zero."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.name,))
            curs.execute(
                SQL("TRUNCATE {}").format(SQL(", ").join(Identifier(t) for t in self.tables))
            )
            curs.execute(
                SQL("DELETE FROM {} WHERE application_name <> %s").format(
                    Identifier(self.tracking_table_name)
                ),
                (self.table_migration_identifier,),
            )

    def lag(self, app: Application[Any]) -> dict[str, Any]:
        head = app.recorder.max_notification_id() or 0
        position = self.max_tracking_id(app.name) or 0
        with self.datastore.transaction() as curs:
            curs.execute(
                SQL("SELECT count(*) AS n FROM {} WHERE notification_id > %s").format(
                    Identifier(app.recorder.events_table_name)  # type: ignore[attr-defined]
                ),
                (position,),
            )
            row = curs.fetchone()
        behind = row["n"] if row else 0
        return {"view": self.name, "position": position, "head": head, "events_behind": behind}


class CurrentStateView(LedgerView):
    name = "current_state"
    ddl = CURRENT_STATE_DDL
    tables = ("incident_view", "user_view", "ci_client")

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        return incident_rows(event) + user_rows(event) + ci_client_rows(event)


class TimelineView(LedgerView):
    name = "timeline"
    ddl = TIMELINE_DDL
    tables = ("timeline_entry", "timeline_link", "timeline_actor")

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        return timeline_rows(event, notification_id)


VIEWS: tuple[type[LedgerView], ...] = (CurrentStateView, TimelineView)
VIEW_TABLES: tuple[str, ...] = tuple(t for v in VIEWS for t in (*v.tables, f"{v.name}_tracking"))


class Projections:
    """All views over one ledger: catch up together, rebuild, report lag."""

    def __init__(self, app: Application[Any]) -> None:
        self.app = app
        datastore = app.recorder.datastore  # type: ignore[attr-defined]
        self.views = [cls(datastore) for cls in VIEWS]

    def create_tables(self) -> None:
        for view in self.views:
            view.create_table()

    def catch_up(self, progress: Callable[[str, int], None] | None = None) -> int:
        total = 0
        for view in self.views:
            report = None if progress is None else functools.partial(progress, view.name)
            total += view.catch_up(self.app, report)
        return total

    def rebuild(self, progress: Callable[[str, int], None] | None = None) -> int:
        for view in self.views:
            view.clear()
        return self.catch_up(progress)

    def lag(self) -> list[dict[str, Any]]:
        return [view.lag(self.app) for view in self.views]

    def follow(self, stop: Callable[[], bool], idle_wait: float = 0.5) -> Iterator[int]:
        """Keep catching up until `stop()`; yields how many events each round processed."""
        while not stop():
            processed = self.catch_up()
            yield processed
            if not processed:
                time.sleep(idle_wait)
