"""MTTA / MTTR (SPEC 6.3) over the analytics view: mean, median, p90 and count per group, reopen
rate and SLA compliance, and the incidents behind every figure (their provenance).

MTTA: detection → first acknowledgment. MTTR: detection → last resolution, for incidents that are
resolved or closed now (a reopened incident counts once resolved again). Minutes of wall-clock
time. Median: the middle value (mean of the two middle ones for an even count); p90: the smallest
value with at least 90 % of the values at or below it (nearest rank). Reopen rate: incidents
reopened at least once among those resolved at least once. SLA compliance: among (incident,
client) pairs under an SLA whose outcome is known at `now` (a clock breached, or both met), the
share with both clocks met.

The overall figures and the groups' come from one statement each (GROUPING SETS) where a group
holds each incident once; groupings by CI, client or tier (an incident in several groups) read
the groups' members first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from projections.metric_filters import MetricFilters, joins_of, keys_of
from projections.provenance import attach

DECIDED = "(%(now)s > p.breach_at OR %(now)s >= p.met_at)"
COMPLIANT = "(%(now)s >= p.met_at AND NOT coalesce(%(now)s > p.breach_at, false))"
"""A pair's outcome is known once a clock breached or both met (sla_queries.pair_status)."""


def _stat(name: str) -> str:
    v = f"i.{name}_minutes"
    return (
        f"count({v}) AS {name}_count, avg({v}) AS {name}_mean, "
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {v}) AS {name}_median, "
        f"percentile_disc(0.9) WITHIN GROUP (ORDER BY {v}) AS {name}_p90"
    )


FIGURES = f"""count(*) AS incidents, {_stat("mtta")}, {_stat("mttr")},
    count(*) FILTER (WHERE i.resolved_once) AS resolved,
    count(*) FILTER (WHERE i.resolved_once AND i.reopen_count > 0) AS reopened"""
COMPLIANCE = f"""count(*) FILTER (WHERE {DECIDED}) AS decided,
    count(*) FILTER (WHERE {COMPLIANT}) AS compliant"""


Groups = dict[tuple[Any, ...], dict[str, Any]]


def _sets(keys: list[str]) -> tuple[str, str]:
    """Columns and GROUP BY for the groups and the overall row together (`overall` tells)."""
    if not keys:
        return "true AS overall", ""
    columns = ", ".join(f"{k} AS g{n}" for n, k in enumerate(keys))
    return (
        f"{columns}, grouping({', '.join(keys)}) <> 0 AS overall",
        f" GROUP BY GROUPING SETS (({', '.join(keys)}), ())",
    )


def _split(rows: list[DictRow], n: int) -> tuple[DictRow | None, dict[tuple[Any, ...], DictRow]]:
    overall, groups = None, {}
    for row in rows:
        if row["overall"]:
            overall = row
        else:
            groups[tuple(row[f"g{i}"] for i in range(n))] = row
    return overall, groups


def _figures_rows(
    curs: Cursor[DictRow], filters: MetricFilters, dims: Sequence[str]
) -> tuple[DictRow | None, dict[tuple[Any, ...], DictRow]]:
    joins = joins_of(dims)
    base = f"FROM sla_incident i WHERE {filters.where('i')}"
    if not joins:
        columns, grouping = _sets(keys_of(dims, "i"))
        curs.execute(f"SELECT {columns}, {FIGURES} {base}{grouping}", filters.params)
        return _split(list(curs.fetchall()), len(dims))
    overall, _ = _figures_rows(curs, filters, [])
    keys = keys_of(dims, "i")
    members = ", ".join(f"{k} AS g{n}" for n, k in enumerate(keys))
    listed = ", ".join(f"m.g{n}" for n in range(len(keys)))
    sql = filters.incidents(dims, f"DISTINCT i.id, {members}")
    curs.execute(
        f"""WITH m AS ({sql} WHERE {filters.where("i")})
            SELECT {listed}, false AS overall, {FIGURES}
            FROM m JOIN sla_incident i ON i.id = m.id GROUP BY {listed}""",
        filters.params,
    )
    return overall, _split(list(curs.fetchall()), len(dims))[1]


def _compliance_rows(
    curs: Cursor[DictRow], filters: MetricFilters, dims: Sequence[str]
) -> tuple[DictRow | None, dict[tuple[Any, ...], DictRow]]:
    where = f"WHERE p.response_target IS NOT NULL AND {filters.where('p')}"
    if "ci" not in dims:
        columns, grouping = _sets(keys_of(dims, "p"))
        curs.execute(
            f"SELECT {columns}, {COMPLIANCE} FROM sla_clock p {where}{grouping}", filters.params
        )
        return _split(list(curs.fetchall()), len(dims))
    overall, _ = _compliance_rows(curs, filters, [])
    keys = keys_of(dims, "p")
    columns = ", ".join(f"{k} AS g{n}" for n, k in enumerate(keys))
    curs.execute(
        f"""SELECT {columns}, false AS overall, {COMPLIANCE} FROM sla_clock p
            LEFT JOIN sla_link l ON l.incident_id = p.incident_id {where}
            GROUP BY {", ".join(keys)}""",
        filters.params,
    )
    return overall, _split(list(curs.fetchall()), len(dims))[1]


def report(
    curs: Cursor[DictRow], filters: MetricFilters, dims: Sequence[str], provenance: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The overall figures, and one entry per group (its key and its figures)."""
    overall_row, group_rows = _figures_rows(curs, filters, dims)
    overall_pairs, group_pairs = _compliance_rows(curs, filters, dims)
    overall = _figures(overall_row, overall_pairs)
    groups = {k: _figures(row, group_pairs.get(k)) for k, row in sorted(group_rows.items(),
              key=lambda item: tuple((v is None, v or "") for v in item[0]))}  # fmt: skip
    if provenance:
        attach(curs, filters, dims, overall, groups)
    return overall, [{"key": dict(zip(dims, k, strict=True))} | f for k, f in groups.items()]


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _figures(row: DictRow | None, pairs: DictRow | None) -> dict[str, Any]:
    found: dict[str, Any] = dict(row) if row else {"incidents": 0, "resolved": 0, "reopened": 0}
    figures: dict[str, Any] = {"incidents": found["incidents"]}
    for name in ("mtta", "mttr"):
        figures[name] = {
            "count": found.get(f"{name}_count") or 0,
            "mean": _round(found.get(f"{name}_mean")),
            "median": _round(found.get(f"{name}_median")),
            "p90": _round(found.get(f"{name}_p90")),
            "provenance": None,
        }
    resolved, reopened = found["resolved"], found["reopened"]
    figures["reopen_rate"] = {
        "rate": round(100 * reopened / resolved, 2) if resolved else None,
        "reopened": reopened,
        "resolved": resolved,
        "provenance": None,
    }
    decided, compliant = (pairs["decided"], pairs["compliant"]) if pairs else (0, 0)
    figures["sla_compliance"] = {
        "percent": round(100 * compliant / decided, 2) if decided else None,
        "compliant": compliant,
        "decided": decided,
        "provenance": None,
    }
    return figures
