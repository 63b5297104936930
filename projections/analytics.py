"""The analysts' view (SPEC 6.2, 6.3): the facts the SLA clocks and MTTA / MTTR depend on, folded
from the events (incidents, CI links, CI ↔ client assignments with their history, agreements,
business calendars, policies, client names), and `sla_clock`: one row per (incident, affected
client) with its tier, policy, calendar and clocks as of detection (projections/sla_rules.py).

The fold is pure. After each page's facts are written, the incidents whose clocks those facts can
change are derived again from the facts (in the same transaction, into the same tables, shadow
tables in a rebuild): an incident's own events, a CI (un)assigned no later than its detection, a
client's agreement or calendar changed no later than it, a policy in force from before it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from domain.base import DomainEvent
from domain.configuration_item import ConfigurationItem
from domain.sla import ClientSLA, SLAAgreement
from domain.sla_policy import SLAPolicy
from projections.facts import load, sla_fact_rows
from projections.folds import Row, event_name
from projections.sla_rules import derive

BATCH = 2000
"""Incidents derived again per statement batch."""
CLOCK_COLUMNS = (
    "incident_id", "client_id", "number", "severity", "category", "status", "assigned_to",
    "detection_time", "reopen_count", "agreement_id", "tier", "coverage", "policy_id",
    "calendar_id", "clock",
    "response_target", "response_stop", "response_minutes", "response_risk_at", "response_due_at",
    "response_met_at", "resolution_target", "resolution_stop", "resolution_minutes",
    "resolution_risk_at", "resolution_due_at", "resolution_met_at", "breach_at", "met_at",
)  # fmt: skip

ANALYTICS_DDL = [
    """CREATE TABLE IF NOT EXISTS sla_incident (
        id uuid PRIMARY KEY, number text NOT NULL, severity text NOT NULL,
        category text NOT NULL, status text NOT NULL, assigned_to uuid,
        detection_time timestamptz NOT NULL, acknowledged_at timestamptz,
        resolved_at timestamptz, closed_at timestamptz, reopen_count int NOT NULL DEFAULT 0,
        mtta_minutes double precision GENERATED ALWAYS AS
          (extract(epoch FROM acknowledged_at - detection_time)::float8 / 60) STORED,
        mttr_minutes double precision GENERATED ALWAYS AS
          (CASE WHEN status IN ('resolved', 'closed') THEN
            extract(epoch FROM coalesce(resolved_at, closed_at) - detection_time)::float8 / 60
          END) STORED,
        resolved_once boolean GENERATED ALWAYS AS
          (resolved_at IS NOT NULL OR status IN ('resolved', 'closed')) STORED)""",
    "CREATE INDEX IF NOT EXISTS sla_incident_detection ON sla_incident (detection_time, id)",
    """CREATE TABLE IF NOT EXISTS sla_link (
        incident_id uuid NOT NULL, ci_id uuid NOT NULL, PRIMARY KEY (incident_id, ci_id))""",
    "CREATE INDEX IF NOT EXISTS sla_link_ci ON sla_link (ci_id, incident_id)",
    """CREATE TABLE IF NOT EXISTS sla_ci_history (
        position bigint PRIMARY KEY, ci_id uuid NOT NULL, client_id uuid NOT NULL,
        occurred_at timestamptz NOT NULL, assigned boolean NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sla_ci_history_ci ON sla_ci_history (ci_id)",
    """CREATE TABLE IF NOT EXISTS sla_agreement_ref (
        id uuid PRIMARY KEY, client_id uuid NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sla_agreement_ref_client ON sla_agreement_ref (client_id)",
    """CREATE TABLE IF NOT EXISTS sla_agreement_history (
        position bigint PRIMARY KEY, agreement_id uuid NOT NULL,
        occurred_at timestamptz NOT NULL, fields jsonb NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sla_agreement_history_agreement "
    "ON sla_agreement_history (agreement_id)",
    """CREATE TABLE IF NOT EXISTS sla_client_calendar (
        position bigint PRIMARY KEY, client_id uuid NOT NULL,
        occurred_at timestamptz NOT NULL, calendar_id uuid)""",
    "CREATE INDEX IF NOT EXISTS sla_client_calendar_client ON sla_client_calendar (client_id)",
    """CREATE TABLE IF NOT EXISTS sla_business_calendar (
        id uuid PRIMARY KEY, name text NOT NULL, time_zone text NOT NULL,
        working_hours jsonb NOT NULL, holidays jsonb NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sla_policy (
        id uuid PRIMARY KEY, name text NOT NULL, effective_from timestamptz NOT NULL,
        position bigint NOT NULL, recorded_at timestamptz NOT NULL, is_default boolean NOT NULL,
        round_the_clock jsonb NOT NULL, business_hours jsonb NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sla_client (
        id uuid PRIMARY KEY, client_name text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sla_clock (
        incident_id uuid NOT NULL, client_id uuid NOT NULL, number text NOT NULL,
        severity text NOT NULL, category text NOT NULL, status text NOT NULL,
        assigned_to uuid, detection_time timestamptz NOT NULL, reopen_count int NOT NULL,
        agreement_id uuid, tier text, coverage text, policy_id uuid, calendar_id uuid,
        clock text NOT NULL,
        response_target int, response_stop timestamptz, response_minutes double precision,
        response_risk_at timestamptz, response_due_at timestamptz, response_met_at timestamptz,
        resolution_target int, resolution_stop timestamptz,
        resolution_minutes double precision, resolution_risk_at timestamptz,
        resolution_due_at timestamptz, resolution_met_at timestamptz,
        breach_at timestamptz, met_at timestamptz,
        PRIMARY KEY (incident_id, client_id))""",
    "CREATE INDEX IF NOT EXISTS sla_clock_detection "
    "ON sla_clock (detection_time, incident_id, client_id)",
    "CREATE INDEX IF NOT EXISTS sla_clock_client ON sla_clock (client_id, detection_time)",
]


class Seeds:
    """What a page changed that can move clocks, and from when."""

    def __init__(self) -> None:
        self.incidents: set[UUID] = set()
        self.cis: dict[UUID, datetime] = {}
        self.clients: dict[UUID, datetime] = {}
        self.agreements: dict[UUID, datetime] = {}
        self.policies_from: datetime | None = None

    @staticmethod
    def _earliest(found: dict[UUID, datetime], key: UUID, at: datetime) -> None:
        found[key] = min(at, found.get(key, at))

    def add(self, event: DomainEvent) -> None:
        at = event.meta.occurred_at
        if event_name(event).startswith("Incident."):
            self.incidents.add(event.originator_id)
        match event:
            case ConfigurationItem.AssignedToClient() | ConfigurationItem.UnassignedFromClient():
                self._earliest(self.cis, event.originator_id, at)
            case SLAAgreement.Recorded(client_id=client_id):
                self._earliest(self.clients, client_id, at)
            case SLAAgreement.Updated():
                self._earliest(self.agreements, event.originator_id, at)
            case ClientSLA.BusinessCalendarAssigned(client_id=client_id):
                self._earliest(self.clients, client_id, at)
            case SLAPolicy.Recorded(effective_from=effective_from):
                self.policies_from = min(effective_from, self.policies_from or effective_from)

    def __bool__(self) -> bool:
        return bool(
            self.incidents or self.cis or self.clients or self.agreements or self.policies_from
        )


def _table(name: str, suffix: str) -> Identifier:
    return Identifier(name + suffix)


DIRTY_SQL = """
SELECT DISTINCT incident_id AS id FROM {link} WHERE incident_id = ANY(%(incidents)b)
UNION SELECT l.incident_id FROM {link} l JOIN {incident} i ON i.id = l.incident_id
      JOIN unnest(%(cis)b::uuid[], %(ci_at)b::timestamptz[]) AS c(id, at) ON c.id = l.ci_id
      WHERE i.detection_time >= c.at
UNION SELECT p.incident_id FROM {clock} p
      JOIN unnest(%(clients)b::uuid[], %(client_at)b::timestamptz[]) AS c(id, at)
        ON c.id = p.client_id
      WHERE p.detection_time >= c.at
UNION SELECT p.incident_id FROM {clock} p JOIN {agreement} r ON r.client_id = p.client_id
      JOIN unnest(%(agreements)b::uuid[], %(agreement_at)b::timestamptz[]) AS a(id, at)
        ON a.id = r.id
      WHERE p.detection_time >= a.at
UNION SELECT i.id FROM {incident} i JOIN {link} l ON l.incident_id = i.id
      WHERE i.detection_time >= %(policies_from)s
"""


def dirty_incidents(curs: Cursor[DictRow], seeds: Seeds, suffix: str = "") -> list[UUID]:
    """The incidents whose clocks the page's facts can have changed (an incident with no CI
    has no clocks: CI links are never removed)."""
    curs.execute(
        SQL(DIRTY_SQL).format(
            incident=_table("sla_incident", suffix),
            link=_table("sla_link", suffix),
            clock=_table("sla_clock", suffix),
            agreement=_table("sla_agreement_ref", suffix),
        ),
        {
            "incidents": list(seeds.incidents),
            "cis": list(seeds.cis),
            "ci_at": list(seeds.cis.values()),
            "clients": list(seeds.clients),
            "client_at": list(seeds.clients.values()),
            "agreements": list(seeds.agreements),
            "agreement_at": list(seeds.agreements.values()),
            "policies_from": seeds.policies_from,
        },
    )
    return sorted(row["id"] for row in curs.fetchall())


def derive_clocks(curs: Cursor[DictRow], incidents: Sequence[UUID], suffix: str = "") -> None:
    """Replace the `sla_clock` rows of these incidents with those derived from the facts."""
    for start in range(0, len(incidents), BATCH):
        batch = list(incidents[start : start + BATCH])
        facts, refs = load(curs, batch, suffix)
        curs.execute(
            SQL("DELETE FROM {} WHERE incident_id = ANY(%b)").format(_table("sla_clock", suffix)),
            (batch,),
        )
        rows: list[tuple[Any, ...]] = []
        for incident in facts:
            for pair in derive(incident, refs):
                row = pair.row()
                rows.append(tuple(row[c] for c in CLOCK_COLUMNS))
        if not rows:
            continue
        copy_sql = SQL("COPY {} ({}) FROM STDIN").format(
            _table("sla_clock", suffix), SQL(", ").join(Identifier(c) for c in CLOCK_COLUMNS)
        )
        with curs.copy(copy_sql) as copy:
            for values in rows:
                copy.write_row(values)


TABLES = (
    "sla_incident",
    "sla_link",
    "sla_ci_history",
    "sla_agreement_ref",
    "sla_agreement_history",
    "sla_client_calendar",
    "sla_business_calendar",
    "sla_policy",
    "sla_client",
    "sla_clock",
)
"""The view's tables (projections/views.py AnalyticsView), in the order readers lock them."""


def fold(event: DomainEvent, notification_id: int) -> list[Row]:
    return sla_fact_rows(event, notification_id)


def after_page(curs: Cursor[DictRow], events: Sequence[DomainEvent], suffix: str = "") -> None:
    """Once a page's facts are written: derive again the clocks they can have moved."""
    seeds = Seeds()
    for event in events:
        seeds.add(event)
    if seeds:
        derive_clocks(curs, dirty_incidents(curs, seeds, suffix), suffix)
