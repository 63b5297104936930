"""Importing a legacy system's tables (SPEC 10), the pure part: legacy rows → the ledger's records
and events, keeping the legacy numbers, ids (deterministic: `record_id(number)` for numbered
records, `stable_id("legacy:<table>", key)` for the others) and times (`occurred_at`), each event
marked with its row (`meta.source` = "<table>:<key>", `meta.command` = "Import"). Legacy data that
breaks today's create rules is recorded as found: records are built through their own event
methods, never through the commands' checks. No IO here: api/importer.py reads the folder, asks
the store what it already holds, and appends.

Re-running an import is safe: a record the ledger already holds from the same row is skipped up to
the version it holds (so an interrupted import resumes, and a repeated one appends nothing); a
record it holds from anywhere else is a conflict, refused before anything is appended."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.base import Aggregate, DomainEvent
from domain.errors import RuleViolation
from domain.legacy import incidents as part1
from domain.legacy import records as part2
from domain.legacy.builder import Builder
from domain.legacy.findings import FINDINGS, find
from domain.legacy.rows import LegacyDataError, Tables, malformed, meta
from domain.numbering import Counter
from domain.user import AdministratorRoster

__all__ = ["FINDINGS", "LegacyDataError", "Plan", "Stored", "follow_ups", "plan_import"]

TABLES = (
    "users", "clients", "configuration_items", "ci_client_assignments", "problem_tickets",
    "problem_configuration_items", "incidents", "incident_configuration_items", "bridges",
    "bridge_participants", "escalations", "change_requests", "rollback_requests",
    "root_cause_analyses", "post_incident_reviews", "incident_reports", "communications",
    "work_notes", "approval_requests", "attachments", "audit_trails", "sla_agreements",
)  # fmt: skip
"""The 22 tables of a legacy folder (`<table>.json` each)."""
DEFERRED: frozenset[str] = frozenset()
"""Tables not imported (yet): their rows, and the audit-trail rows about them, are counted as
deferred."""
INTERNAL = frozenset({"EmailIndex", "ApprovalSlot", "Counter", "AdministratorRoster", "ClientSLA"})
"""Bookkeeping records made beside the imported ones (not counted as records made)."""

MAPPERS: tuple[Callable[[Tables, Builder], None], ...] = (
    # In this order, so a record is created before every record that refers to it.
    part1.users, part1.clients, part1.configuration_items, part1.problems, part1.incidents,
    part1.bridges, part1.escalations, part2.changes, part2.rollbacks,
    part2.root_cause_analyses, part2.post_incident_reviews, part2.incident_reports,
    part2.communications, part2.work_notes, part2.approvals, part2.attachments,
    part2.sla_agreements,
)  # fmt: skip


@dataclass
class Plan:
    """Everything an import of the folder would record, in append order."""

    events: list[DomainEvent]
    sources: dict[UUID, str]
    """Each record's id → the row it is made from."""
    labels: dict[UUID, str]
    """Each record's id → how a person names it (number, email, or its row)."""
    numbers: dict[str, tuple[int, str, datetime]]
    """Per number prefix: the highest number imported, its row and when it was made."""
    administrators: list[tuple[UUID, str, datetime]]
    """Active system administrators imported (they join the administrator roster)."""
    rows: dict[str, int]
    deferred: dict[str, list[str]]
    """Per table, the rows not imported (yet): see DEFERRED."""
    findings: dict[str, list[str]] = field(default_factory=dict)
    """What today's rules would refuse, recorded as found: kind (FINDINGS) → rows."""


def plan_import(data: Mapping[str, Any], deferred: frozenset[str] = DEFERRED) -> Plan:
    """The records and events of a legacy folder (`data`: table → key → row), or a
    LegacyDataError naming the file, key and field of the first value that cannot be imported."""
    for table in TABLES:
        if table not in data:
            raise malformed(f"{table}.json", None, "is missing from the folder")
    tables = Tables(data)
    b = Builder()
    for mapper in MAPPERS:
        mapper(tables, b)
    waiting = part2.audit_trails(tables, b, deferred)
    events = b.events()
    later = {table: [row.source for row in tables.rows(table)] for table in deferred}
    later.setdefault("audit_trails", []).extend(row.source for row in waiting)
    findings = find(tables)
    for code, sources in b.findings.items():
        findings.setdefault(code, []).extend(sources)
    return Plan(
        events=events,
        sources=b.sources,
        labels={i: _label(r, b.sources[i]) for i, r in b.records.items()},
        numbers={
            prefix: (value, row.source, b.created_at[row.id])
            for prefix, (value, row) in b.numbers.items()
        },
        administrators=[(i, row.source, b.created_at[i]) for i, row in b.administrators],
        rows={table: tables.count(table) for table in TABLES},
        deferred={table: sources for table, sources in later.items() if sources},
        findings={code: sorted(set(rows), key=_row_order) for code, rows in findings.items()},
    )


def _row_order(source: str) -> tuple[str, int, str]:
    table, _, key = source.partition(":")
    return (table, int(key), "") if key.isdigit() else (table, -1, key)


def _label(record: Aggregate, source: str) -> str:
    for name in ("number", "email"):
        value = getattr(record, name, None)
        if isinstance(value, str):
            return f"{value} ({source})"
    return f"{type(record).__name__} of {source}"


@dataclass(frozen=True)
class Stored:
    """What the ledger holds of a record: its version and the row its first event came from."""

    version: int
    source: str | None


def to_append(plan: Plan, stored: Mapping[UUID, Stored]) -> list[DomainEvent]:
    """The plan's events the ledger does not hold yet: for a record already imported from the
    same row, those after the version it holds. A record the ledger holds from elsewhere (a
    command, or another row) is refused (`import.conflict`) before anything is appended."""
    for record_id, source in plan.sources.items():
        found = stored.get(record_id)
        if found is not None and found.source != source:
            raise RuleViolation(
                "import.conflict",
                f"The ledger already holds {plan.labels[record_id]} from "
                f"{found.source or 'a command'}; this import would make it from {source}. "
                "Import into a ledger that does not hold these records.",
                record=str(record_id),
                source=source,
            )
    return [
        event
        for event in plan.events
        if event.originator_version > stored.get(event.originator_id, Stored(0, None)).version
    ]


def follow_ups(
    plan: Plan,
    counters: Mapping[str, Counter | None],
    roster: AdministratorRoster | None,
    roster_events: Iterable[DomainEvent],
) -> list[Aggregate]:
    """The shared records an import moves: each number counter past the highest number
    imported (the next incident after INC0000200 is INC0000201), and the administrator roster,
    which every imported active administrator joins once (one who left is not joined again)."""
    moved: list[Aggregate] = []
    for prefix, (value, source, at) in sorted(plan.numbers.items()):
        counter = counters.get(prefix)
        if counter is None:
            counter = Counter(meta=meta(source, at, None), prefix=prefix)
        if counter.last < value:
            counter._issued(meta(source, at, None), value)
        if counter.pending_events:
            moved.append(counter)
    joined = {
        getattr(event, "user_id", None)
        for event in roster_events
        if isinstance(event, AdministratorRoster.Joined)
    }
    for user_id, source, at in plan.administrators:
        if user_id in joined:
            continue
        if roster is None:
            roster = AdministratorRoster(meta=meta(source, at, None))
        roster.join(meta(source, at, None), user_id)
    if roster is not None and roster.pending_events:
        moved.append(roster)
    return moved


@dataclass
class TableCounts:
    """One table's part in an import run."""

    rows: int
    imported: int = 0
    """Rows with events appended by this run."""
    skipped: int = 0
    """Rows whose events the ledger already held (imported before)."""
    deferred: int = 0
    records: int = 0
    """Records made (created events appended), bookkeeping records aside."""
    events: int = 0
    """Events appended."""


def tally(
    plan: Plan, appended: Iterable[DomainEvent], follow: Iterable[DomainEvent]
) -> dict[str, TableCounts]:
    """Per table: rows read, imported, skipped (already in the ledger) and deferred; records
    made and events appended (the counters' and roster's events count for the rows that moved
    them)."""
    counts = {table: TableCounts(rows=n) for table, n in plan.rows.items()}
    imported: dict[str, set[str]] = {table: set() for table in counts}
    for event in [*appended, *follow]:
        table, _, key = (event.meta.source or ":").partition(":")
        if table not in counts:
            continue
        imported[table].add(key)
        counts[table].events += 1
        name = type(event).__qualname__.partition(".")[0]
        if event.originator_version == 1 and name not in INTERNAL:
            counts[table].records += 1
    for table, keys in plan.deferred.items():
        counts[table].deferred = len(keys)
    for table, count in counts.items():
        count.imported = len(imported[table])
        count.skipped = count.rows - count.imported - count.deferred
    return counts
