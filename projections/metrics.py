"""MTTA / MTTR (SPEC 6.3) over the analytics view: mean, median, p90 and count per group, reopen
rate and SLA compliance, and the incidents behind every figure (their provenance).

MTTA: detection → first acknowledgment. MTTR: detection → last resolution, for incidents that are
resolved or closed now (a reopened incident counts once resolved again). Minutes of wall-clock
time. Median: the middle value (mean of the two middle ones for an even count); p90: the smallest
value with at least 90 % of the values at or below it (nearest rank). Reopen rate: incidents
reopened at least once among those resolved at least once. SLA compliance: among (incident,
client) pairs under an SLA whose outcome is known at `now` (a clock breached, or both met), the
share with both clocks met."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from projections.sla_queries import STATUSES_SQL

UTC_TIME = "(i.detection_time AT TIME ZONE 'UTC')"
DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "severity": ("i.severity", None),
    "category": ("i.category", None),
    "assignee": ("i.assigned_to::text", None),
    "day": (f"to_char({UTC_TIME}, 'YYYY-MM-DD')", None),
    "week": (f"to_char(date_trunc('week', {UTC_TIME}), 'YYYY-MM-DD')", None),
    "month": (f"to_char({UTC_TIME}, 'YYYY-MM')", None),
    "ci": ("l.ci_id::text", "ci"),
    "client": ("p.client_id::text", "pair"),
    "tier": ("p.tier", "pair"),
}
"""Each grouping: its SQL over the incident `i` (a week is named by its Monday, UTC), and the
table it needs joined (`l` the incident's CIs, `p` its (incident, client) pairs)."""

INCIDENTS_SQL = """SELECT i.id, i.number, i.severity, i.category, i.assigned_to, i.detection_time,
    i.status, i.reopen_count,
    extract(epoch FROM i.acknowledged_at - i.detection_time)::float8 / 60 AS mtta,
    CASE WHEN i.status IN ('resolved', 'closed') THEN
      extract(epoch FROM coalesce(i.resolved_at, i.closed_at) - i.detection_time)::float8 / 60
    END AS mttr,
    (i.resolved_at IS NOT NULL OR i.status IN ('resolved', 'closed')) AS resolved_once
    FROM sla_incident i"""


@dataclass(frozen=True)
class MetricFilters:
    now: datetime
    detected_from: datetime | None = None
    detected_before: datetime | None = None
    client_id: UUID | None = None
    severity: str | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        conditions, params = ["true"], {"now": self.now, "client_id": self.client_id}
        for name, sql in (
            ("detected_from", "i.detection_time >= %(detected_from)s"),
            ("detected_before", "i.detection_time < %(detected_before)s"),
            ("severity", "i.severity = %(severity)s"),
            (
                "client_id",
                "EXISTS (SELECT 1 FROM sla_clock c WHERE c.incident_id = i.id "
                "AND c.client_id = %(client_id)s)",
            ),
        ):
            value = getattr(self, name)
            if value is not None:
                conditions.append(sql)
                params[name] = value
        return " AND ".join(conditions), params


def _membership(group_by: Sequence[str], client: UUID | None) -> tuple[str, list[str]]:
    """SQL of (incident id, group keys g0, g1, ...), one row per incident and group."""
    keys = [f"{DIMENSIONS[d][0]} AS g{n}" for n, d in enumerate(group_by)]
    joins = {DIMENSIONS[d][1] for d in group_by} - {None}
    sql = f"SELECT {'DISTINCT ' if joins else ''}i.id{''.join(', ' + k for k in keys)} FROM inc i"
    if "pair" in joins:
        only = " AND p.client_id = %(client_id)s" if client is not None else ""
        sql += f" LEFT JOIN sla_clock p ON p.incident_id = i.id{only}"
    if "ci" in joins:
        sql += " LEFT JOIN sla_link l ON l.incident_id = i.id"
    return sql, [f"g{n}" for n in range(len(group_by))]


def _stat(prefix: str) -> str:
    v = f"i.{prefix}"
    return (
        f"count({v}) AS {prefix}_count, avg({v}) AS {prefix}_mean, "
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {v}) AS {prefix}_median, "
        f"percentile_disc(0.9) WITHIN GROUP (ORDER BY {v}) AS {prefix}_p90"
    )


COMPLIANCE = """count(*) FILTER (WHERE 'breached' IN (s.response_status, s.resolution_status)
      OR (s.response_status = 'met' AND s.resolution_status = 'met')) AS decided,
    count(*) FILTER (WHERE s.response_status = 'met' AND s.resolution_status = 'met')
      AS compliant"""


def metrics(
    curs: Cursor[DictRow], filters: MetricFilters, group_by: Sequence[str], provenance: bool
) -> list[dict[str, Any]]:
    """One entry per group (a single one with no grouping): its key and its figures."""
    where, params = filters.sql()
    membership, keys = _membership(group_by, filters.client_id)
    pairs = ["s.incident_id = m.id"]
    for key, dimension in zip(keys, group_by, strict=True):
        if dimension == "client":
            pairs.append(f"s.client_id::text = m.{key}")
        elif dimension == "tier":
            pairs.append(f"s.tier = m.{key}")
    if filters.client_id is not None:
        pairs.append("s.client_id = %(client_id)s")
    head = f"WITH inc AS ({INCIDENTS_SQL} WHERE {where}), m AS ({membership})"
    statuses = f"({STATUSES_SQL} WHERE p.response_target IS NOT NULL)"
    listed = ", ".join(f"m.{k}" for k in keys)
    grouped = f" GROUP BY {listed} ORDER BY {listed}" if keys else ""
    prefix = f"{listed}, " if keys else ""
    curs.execute(
        f"""{head} SELECT {prefix}count(*) AS incidents, {_stat("mtta")}, {_stat("mttr")},
            count(*) FILTER (WHERE i.resolved_once) AS resolved,
            count(*) FILTER (WHERE i.resolved_once AND i.reopen_count > 0) AS reopened
            FROM m JOIN inc i ON i.id = m.id{grouped}""",
        params,
    )
    groups = {tuple(r[k] for k in keys): _figures(r) for r in curs.fetchall()}
    curs.execute(
        f"""{head} SELECT {prefix}{COMPLIANCE} FROM m JOIN {statuses} s
            ON {" AND ".join(pairs)}{grouped}""",
        params,
    )
    for row in curs.fetchall():
        found = groups.get(tuple(row[k] for k in keys))
        if found is not None:
            found["sla_compliance"] |= _compliance(row)
    if provenance:
        _provenance(curs, head, keys, pairs, statuses, params, groups)
    return [
        {"key": dict(zip(group_by, key, strict=True))} | figures for key, figures in groups.items()
    ]


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {"incidents": row["incidents"]}
    for name in ("mtta", "mttr"):
        figures[name] = {
            "count": row[f"{name}_count"],
            "mean": _round(row[f"{name}_mean"]),
            "median": _round(row[f"{name}_median"]),
            "p90": _round(row[f"{name}_p90"]),
            "provenance": None,
        }
    resolved, reopened = row["resolved"], row["reopened"]
    figures["reopen_rate"] = {
        "rate": round(100 * reopened / resolved, 2) if resolved else None,
        "reopened": reopened,
        "resolved": resolved,
        "provenance": None,
    }
    figures["sla_compliance"] = {"percent": None, "compliant": 0, "decided": 0, "provenance": None}
    return figures


def _compliance(row: dict[str, Any]) -> dict[str, Any]:
    decided, compliant = row["decided"], row["compliant"]
    return {
        "percent": round(100 * compliant / decided, 2) if decided else None,
        "compliant": compliant,
        "decided": decided,
    }


def _provenance(
    curs: Cursor[DictRow],
    head: str,
    keys: list[str],
    pairs: list[str],
    statuses: str,
    params: dict[str, Any],
    groups: dict[tuple[Any, ...], dict[str, Any]],
) -> None:
    """The incidents behind each figure, with their minutes (and pairs, for compliance)."""
    selected = "".join(f"m.{k}, " for k in keys)
    for figures in groups.values():
        for name in ("mtta", "mttr", "reopen_rate", "sla_compliance"):
            figures[name]["provenance"] = []
    curs.execute(
        f"""{head} SELECT {selected}i.id, i.number, i.mtta, i.mttr, i.resolved_once,
            i.reopen_count FROM m JOIN inc i ON i.id = m.id ORDER BY i.detection_time, i.number""",
        params,
    )
    for r in curs.fetchall():
        figures = groups[tuple(r[k] for k in keys)]
        ident = {"incident_id": r["id"], "number": r["number"]}
        for name in ("mtta", "mttr"):
            if r[name] is not None:
                figures[name]["provenance"].append(ident | {"minutes": round(r[name], 2)})
        if r["resolved_once"]:
            figures["reopen_rate"]["provenance"].append(ident | {"reopen_count": r["reopen_count"]})
    curs.execute(
        f"""{head} SELECT {selected}s.incident_id, s.number, s.client_id, s.tier,
            s.response_status, s.resolution_status FROM m JOIN {statuses} s
            ON {" AND ".join(pairs)} ORDER BY s.detection_time, s.number, s.client_id""",
        params,
    )
    for r in curs.fetchall():
        statuses_ = (r["response_status"], r["resolution_status"])
        if "breached" not in statuses_ and statuses_ != ("met", "met"):
            continue  # not decided yet: not behind the figure
        groups[tuple(r[k] for k in keys)]["sla_compliance"]["provenance"].append(
            {
                "incident_id": r["incident_id"],
                "number": r["number"],
                "client_id": r["client_id"],
                "tier": r["tier"],
                "response_status": r["response_status"],
                "resolution_status": r["resolution_status"],
                "compliant": statuses_ == ("met", "met"),
            }
        )
