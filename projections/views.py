"""The read models' tables and folds: each view is a tracking recorder with its DDL, the tables it
owns and its fold (event → row changes, projections/folds.py); pages are decoded once for all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed

from domain.base import DomainEvent
from projections import analytics, failures
from projections.folds import (
    Row,
    ci_client_rows,
    incident_rows,
    record_rows,
    timeline_rows,
    user_rows,
)
from projections.writer import write_rows

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
    # Which incident's or problem's timeline each record belongs to (many to many).
    """CREATE TABLE IF NOT EXISTS timeline_links (
        record_id uuid NOT NULL, root_id uuid NOT NULL, PRIMARY KEY (record_id, root_id))""",
    "CREATE INDEX IF NOT EXISTS timeline_links_root ON timeline_links (root_id, record_id)",
    """CREATE TABLE IF NOT EXISTS timeline_actor (
        id uuid PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
        role text NOT NULL)""",
]

RECORDS_DDL = [
    """CREATE TABLE IF NOT EXISTS record_view (
        id uuid PRIMARY KEY, record_type text NOT NULL, number text, status text,
        fields jsonb NOT NULL, version int NOT NULL, created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS record_view_type ON record_view (record_type, created_at, id)",
    "CREATE INDEX IF NOT EXISTS record_view_incident ON record_view "
    "((fields->>'incident_id'), record_type)",
    "CREATE INDEX IF NOT EXISTS record_view_fields ON record_view "
    "USING gin (fields jsonb_path_ops)",
]


@dataclass(frozen=True)
class Decoded:
    """One notification of a page, decoded once for every view."""

    notification: Notification
    event: DomainEvent | None
    """None for a stored event that is not one of ours (nothing to fold)."""
    error: Exception | None = None
    """Why it could not be decoded: every view stops at this event."""


def decode(notifications: Sequence[Notification], mapper: Mapper[Any]) -> list[Decoded]:
    page = []
    for notification in notifications:
        try:
            event = mapper.to_domain_event(notification)
        except Exception as exc:  # an unknown topic or bad state fails the views, not the reader
            page.append(Decoded(notification, None, exc))
            continue
        page.append(Decoded(notification, event if isinstance(event, DomainEvent) else None))
    return page


class LedgerView(PostgresTrackingRecorder):
    """A read model: its tables, its fold, and its own tracking table."""

    name: ClassVar[str]
    ddl: ClassVar[list[str]]
    tables: ClassVar[tuple[str, ...]]
    """In the order readers lock them (a rebuild's swap takes its locks in this order)."""
    cost: ClassVar[int] = 1
    """Its share of the work of folding and writing a page, relative to the others: how a
    parallel rebuild shares the views out between processes (projections/rebuild.py)."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore, tracking_table_name=f"{self.name}_tracking")
        self.sql_create_statements.extend(Composed([SQL(s)]) for s in self.ddl)

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        raise NotImplementedError

    def lock(self, curs: Cursor[DictRow]) -> None:
        """One writer per view at a time (projector threads, projector processes, a rebuild)."""
        curs.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.name,))

    def write(self, curs: Cursor[DictRow], page: Sequence[Decoded], suffix: str = "") -> None:
        """Fold the page and write its rows; raises on the first event it cannot handle."""
        rows: list[Row] = []
        for item in page:
            if item.error is not None:
                raise item.error
            if item.event is not None:
                rows.extend(self.fold(item.event, item.notification.id))
        write_rows(curs, rows, suffix)


class CurrentStateView(LedgerView):
    name = "current_state"
    ddl = CURRENT_STATE_DDL
    tables = ("incident_view", "user_view", "ci_client")

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        return incident_rows(event) + user_rows(event) + ci_client_rows(event)


class TimelineView(LedgerView):
    name = "timeline"
    ddl = TIMELINE_DDL
    tables = ("timeline_entry", "timeline_links", "timeline_actor")
    cost = 3  # an entry for every event, with its changes as JSON (a profile of a rebuild)

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        return timeline_rows(event, notification_id)


class RecordsView(LedgerView):
    """Every other record's filterable fields, for the lists of GET /<collection>."""

    name = "records"
    ddl = RECORDS_DDL
    tables = ("record_view",)

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        return record_rows(event)


class AnalyticsView(LedgerView):
    """SLA clocks per (incident, client), and the facts behind them and behind MTTA / MTTR
    (projections/analytics.py)."""

    name = "analytics"
    ddl = analytics.ANALYTICS_DDL
    tables = analytics.TABLES

    def fold(self, event: DomainEvent, notification_id: int) -> list[Row]:
        return analytics.fold(event, notification_id)

    def write(self, curs: Cursor[DictRow], page: Sequence[Decoded], suffix: str = "") -> None:
        super().write(curs, page, suffix)
        analytics.after_page(curs, [i.event for i in page if i.event is not None], suffix)


VIEWS: tuple[type[LedgerView], ...] = (CurrentStateView, TimelineView, RecordsView, AnalyticsView)
VIEW_TABLES: tuple[str, ...] = (
    *(t for v in VIEWS for t in (*v.tables, f"{v.name}_tracking")),
    failures.ERROR_TABLE,
)
"""Every table the service role reads and writes (api/database.py: migrate grants on them)."""
