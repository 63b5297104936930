"""Queries over the views (on a cursor from `Projections.reading`): incident list with filters and
keyset pagination, audit timeline."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal, Placeholder
from psycopg.types.json import Jsonb

EXACT = ("number", "category", "severity", "impact", "urgency", "status", "reported_by",
         "assigned_to", "problem_id")  # fmt: skip
RANGES = ("detection_time", "acknowledged_at", "resolved_at", "closed_at", "created_at",
          "updated_at")  # fmt: skip
SORTABLE = ("detection_time", "created_at", "updated_at", "number", "severity")
INCIDENT_COLUMNS = (
    "id", "number", "title", "description", "category", "severity", "impact", "urgency", "status",
    "reported_by", "assigned_to", "detection_time", "acknowledged_at", "resolved_at", "closed_at",
    "reopen_count", "problem_id", "ci_ids", "version", "created_at", "updated_at",
)  # fmt: skip


class BadQuery(ValueError):
    """A query parameter the view cannot use."""


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_cursor(cursor: str, sort: str) -> tuple[Any, UUID]:
    """The (sort value, id) a cursor carries, checked: a forged cursor is refused, not run."""
    try:
        value, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if sort in ("detection_time", "created_at", "updated_at"):
            value = datetime.fromisoformat(value)
        elif not isinstance(value, str) or "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise TypeError(value)
        return value, UUID(last_id)
    except (ValueError, TypeError, AttributeError):  # UUID(1) is an AttributeError
        raise BadQuery("cursor is not one this API issued") from None


def list_incidents(
    curs: Cursor[DictRow],
    *,
    exact: dict[str, Any],
    ranges: dict[str, tuple[datetime | None, datetime | None]],
    text: str | None,
    sort: str,
    descending: bool,
    limit: int,
    cursor: str | None,
    client_id: UUID | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    if sort not in SORTABLE:
        raise BadQuery(f"sort must be one of {', '.join(SORTABLE)}")
    where: list[Composed | SQL] = []
    params: list[Any] = []
    for column, value in exact.items():
        where.append(SQL("{} = {}").format(Identifier(column), Placeholder()))
        params.append(value)
    for column, (low, high) in ranges.items():
        if low is not None:
            where.append(SQL("{} >= {}").format(Identifier(column), Placeholder()))
            params.append(low)
        if high is not None:
            where.append(SQL("{} <= {}").format(Identifier(column), Placeholder()))
            params.append(high)
    if text:
        where.append(SQL("title ILIKE {}").format(Placeholder()))
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params.append(f"%{escaped}%")
    if client_id is not None:  # a client contact sees only incidents on their client's CIs
        where.append(
            SQL(
                "EXISTS (SELECT 1 FROM ci_client c"
                " WHERE c.ci_id = ANY(ci_ids) AND c.client_id = {})"
            ).format(Placeholder())
        )
        params.append(client_id)
    col = Identifier(sort)
    if cursor:
        after_value, after_id = decode_cursor(cursor, sort)
        comparison = SQL("<") if descending else SQL(">")
        where.append(
            SQL("({}, id) {} ({}, {})").format(col, comparison, Placeholder(), Placeholder())
        )
        params += [after_value, after_id]
    order = SQL("DESC") if descending else SQL("ASC")
    statement: Composed = SQL("SELECT {} FROM incident_view").format(
        SQL(", ").join(Identifier(c) for c in INCIDENT_COLUMNS)
    )
    if where:
        statement += SQL(" WHERE ") + SQL(" AND ").join(where)
    statement += SQL(" ORDER BY {} {}, id {} LIMIT {}").format(col, order, order, Placeholder())
    params.append(limit + 1)
    curs.execute(statement, params)
    rows = list(curs.fetchall())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last[sort], str(last["id"])])
    return rows, next_cursor


TIMELINE_QUERY = """SELECT t.notification_id AS position, t.event_type, t.record_type,
       t.record_id, t.record_version, t.actor_id, t.actor_name, t.actor_role, t.occurred_at,
       t.recorded_at, t.command, t.command_id, t.idempotency_key, t.source, t.changes
   FROM timeline_entry t JOIN timeline_links l ON l.record_id = t.record_id
   WHERE l.root_id = %s ORDER BY t.notification_id"""
"""Every event of an incident (or a problem) and of the records linked to it, in ledger order."""


def incident_timeline(curs: Cursor[DictRow], root_id: UUID) -> list[dict[str, Any]]:
    curs.execute(TIMELINE_QUERY, (root_id,))
    return list(curs.fetchall())


def stream_timeline(curs: Cursor[DictRow], root_id: UUID) -> Iterator[dict[str, Any]]:
    """The same, row by row as the server sends them."""
    yield from curs.stream(TIMELINE_QUERY, (root_id,))


def list_records(
    curs: Cursor[DictRow],
    record_type: str,
    *,
    contains: dict[str, Any],
    ranges: dict[str, tuple[datetime | None, datetime | None]],
    descending: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Records of one type whose fields equal `contains` and whose times (a column, or a field
    holding an ISO time) lie in `ranges`, by creation then id; (id, version) of each."""
    where: list[Composed | SQL] = [SQL("record_type = {}").format(Placeholder())]
    params: list[Any] = [record_type]
    if contains:
        where.append(SQL("fields @> {}").format(Placeholder()))
        params.append(Jsonb(contains))
    for name, (low, high) in ranges.items():
        column: Composed = (
            SQL("{}").format(Identifier(name))
            if name in ("created_at", "updated_at")
            else SQL("(fields->>{})::timestamptz").format(Literal(name))
        )
        for bound, operator in ((low, ">="), (high, "<=")):
            if bound is not None:
                where.append(SQL("{} {} {}").format(column, SQL(operator), Placeholder()))
                params.append(bound)
    if cursor:
        after, after_id = decode_cursor(cursor, "created_at")
        comparison = SQL("<") if descending else SQL(">")
        where.append(
            SQL("(created_at, id) {} ({}, {})").format(comparison, Placeholder(), Placeholder())
        )
        params += [after, after_id]
    order = SQL("DESC") if descending else SQL("ASC")
    curs.execute(
        SQL(
            "SELECT id, version, created_at FROM record_view WHERE {} "
            "ORDER BY created_at {}, id {} LIMIT {}"
        ).format(SQL(" AND ").join(where), order, order, Placeholder()),
        [*params, limit + 1],
    )
    rows = list(curs.fetchall())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor([rows[-1]["created_at"].isoformat(), str(rows[-1]["id"])])
    return rows, next_cursor
