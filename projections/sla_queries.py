"""Queries of the SLA clocks (on a reader's cursor of the analytics view): the breach list with its
summary, measured against a `now`; the SOP tool's reference result; the recorded policies."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from projections.business_time import Calendar
from projections.queries import BadQuery, encode_cursor
from projections.sla_rules import clock_of, status

SLA_STATUSES = ("met", "breached", "running", "at_risk")


def pair_status(p: str = "p") -> str:
    """SQL: a pair's status as of %(now)s, from the instants stored with it: breached once
    either clock is (after `breach_at`), met once both stopped within target (`met_at`), at
    risk while a clock that has not met its target has used 75 % of it, else running. The same
    as the worse of sla_rules.status of the two clocks."""

    def risky(c: str) -> str:
        return f"(%(now)s >= {p}.{c}_risk_at AND NOT coalesce(%(now)s >= {p}.{c}_met_at, false))"

    return f"""CASE WHEN %(now)s > {p}.breach_at THEN 'breached'
        WHEN %(now)s >= {p}.met_at THEN 'met'
        WHEN {risky("response")} OR {risky("resolution")} THEN 'at_risk'
        ELSE 'running' END"""


@dataclass(frozen=True)
class Filters:
    now: datetime
    client_id: UUID | None = None
    detected_from: datetime | None = None
    detected_before: datetime | None = None
    """Exclusive: the start of the day after the last day asked for."""
    status: str | None = None

    def where(self, alias: str = "p") -> tuple[list[str], dict[str, Any]]:
        """Conditions on sla_clock rows (named %(...)s parameters)."""
        conditions = [f"{alias}.detection_time <= %(now)s"]
        params: dict[str, Any] = {"now": self.now}
        for name, sql in (
            ("client_id", f"{alias}.client_id = %(client_id)s"),
            ("detected_from", f"{alias}.detection_time >= %(detected_from)s"),
            ("detected_before", f"{alias}.detection_time < %(detected_before)s"),
            ("status", f"{alias}.status = %(status)s"),
        ):
            value = getattr(self, name)
            if value is not None:
                conditions.append(sql)
                params[name] = value
        return conditions, params


def breaches(
    curs: Cursor[DictRow],
    filters: Filters,
    wanted: tuple[str, ...],
    limit: int,
    cursor: str | None,
) -> tuple[dict[str, int], list[dict[str, Any]], str | None]:
    """Per status, how many (incident, client) pairs under an SLA match the filters; and the
    page of those whose status is one of `wanted`, newest detection first."""
    conditions, params = filters.where()
    conditions.append("p.response_target IS NOT NULL")
    where = " AND ".join(conditions)
    curs.execute(
        f"SELECT {pair_status()} AS sla_status, count(*) AS n FROM sla_clock p WHERE {where} "
        "GROUP BY 1",
        params,
    )
    summary = dict.fromkeys(SLA_STATUSES, 0) | {r["sla_status"]: r["n"] for r in curs.fetchall()}
    page_conditions = [f"{pair_status()} = ANY(%(wanted)s)"]
    params["wanted"] = list(wanted)
    if cursor:
        after, incident, client = _decode(cursor)
        page_conditions.append(
            "(p.detection_time, p.incident_id, p.client_id) < (%(after)s, %(incident)s, %(client)s)"
        )
        params |= {"after": after, "incident": incident, "client": client}
    curs.execute(
        f"""SELECT t.*, c.client_name FROM (SELECT p.*, {pair_status()} AS sla_status
            FROM sla_clock p WHERE {where} AND {" AND ".join(page_conditions)}
            ORDER BY p.detection_time DESC, p.incident_id DESC, p.client_id DESC
            LIMIT %(limit)s) t LEFT JOIN sla_client c ON c.id = t.client_id
            ORDER BY t.detection_time DESC, t.incident_id DESC, t.client_id DESC""",
        params | {"limit": limit + 1},
    )
    rows = list(curs.fetchall())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(
            [last["detection_time"].isoformat(), str(last["incident_id"]), str(last["client_id"])]
        )
    calendars = calendars_of(curs, {r["calendar_id"] for r in rows if r["calendar_id"]})
    return summary, [shown(r, filters.now, calendars) for r in rows], next_cursor


def _decode(cursor: str) -> tuple[datetime, UUID, UUID]:
    """The (detection time, incident, client) a breach page's cursor carries, checked."""
    try:
        after, incident, client = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(after), UUID(incident), UUID(client)
    except (ValueError, TypeError, AttributeError):  # UUID(1) is an AttributeError
        raise BadQuery("cursor is not one this API issued") from None


def calendars_of(curs: Cursor[DictRow], ids: set[UUID]) -> dict[UUID, Calendar]:
    if not ids:
        return {}
    curs.execute("SELECT * FROM sla_business_calendar WHERE id = ANY(%s)", (sorted(ids),))
    return {
        r["id"]: Calendar.of(r["id"], r["name"], r["time_zone"], r["working_hours"], r["holidays"])
        for r in curs.fetchall()
    }


def elapsed(row: dict[str, Any], prefix: str, now: datetime, cal: Calendar | None) -> float:
    """Minutes the clock had used by `now` (working minutes on a business-hours clock)."""
    stop = row[f"{prefix}_stop"]
    if stop is not None and stop <= now:
        return float(row[f"{prefix}_minutes"])
    start = row["detection_time"]
    used = cal.working(start, now) if cal else max(now - start, timedelta())
    return used.total_seconds() / 60


def shown(row: dict[str, Any], now: datetime, calendars: dict[UUID, Calendar]) -> dict[str, Any]:
    """A pair as the API shows it: the incident, the client, the SLA it was under, two clocks."""
    cal = calendars.get(row["calendar_id"]) if row["calendar_id"] else None
    clocks = {}
    for prefix in ("response", "resolution"):
        target = row[f"{prefix}_target"]
        used = elapsed(row, prefix, now, cal)
        stop = row[f"{prefix}_stop"]
        clocks[prefix] = {
            "status": status(clock_of(row, prefix), now),
            "target_minutes": target,
            "elapsed_minutes": round(used, 2),
            "used_percent": round(100 * used / target, 1),
            "stopped_at": stop if stop is not None and stop <= now else None,
            "at_risk_at": row[f"{prefix}_risk_at"],
            "due_at": row[f"{prefix}_due_at"],
        }
    keys = ("incident_id", "number", "client_id", "client_name", "status", "severity", "category")
    return {k: row[k] for k in keys} | {
        "assigned_to": row["assigned_to"],
        "detection_time": row["detection_time"],
        "reopen_count": row["reopen_count"],
        "tier": row["tier"],
        "support_coverage": row["coverage"],
        "agreement_id": row["agreement_id"],
        "policy_id": row["policy_id"],
        "business_calendar_id": row["calendar_id"],
        "clock": row["clock"],
        "sla_status": row["sla_status"],
        "response": clocks["response"],
        "resolution": clocks["resolution"],
    }


def list_policies(curs: Cursor[DictRow], now: datetime) -> list[dict[str, Any]]:
    curs.execute("SELECT * FROM sla_policy ORDER BY effective_from, position")
    rows = list(curs.fetchall())
    in_force = max(
        (r for r in rows if r["effective_from"] <= now),
        key=lambda r: (r["effective_from"], r["position"]),
        default=None,
    )
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "effective_from": r["effective_from"],
            "recorded_at": r["recorded_at"],
            "position": r["position"],
            "default": r["is_default"],
            "in_force_now": r is in_force,
            "round_the_clock": r["round_the_clock"],
            "business_hours": r["business_hours"],
        }
        for r in rows
    ]
