"""The provenance of the MTTA / MTTR figures (projections/metrics.py): the incidents behind each
figure with their minutes, and the (incident, client) pairs behind each SLA compliance figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from projections.metric_filters import MetricFilters, joins_of, keys_of
from projections.sla_rules import clock_of, status

FIGURES = ("mtta", "mttr", "reopen_rate", "sla_compliance")


def attach(
    curs: Cursor[DictRow],
    filters: MetricFilters,
    dims: Sequence[str],
    overall: dict[str, Any],
    groups: dict[tuple[Any, ...], dict[str, Any]],
) -> None:
    for figures in (overall, *groups.values()):
        for name in FIGURES:
            figures[name]["provenance"] = []
    joins = joins_of(dims)
    keys = keys_of(dims, "i")
    columns = "".join(f"{k} AS g{n}, " for n, k in enumerate(keys))
    sql = filters.incidents(dims, f"{'DISTINCT ' if joins else ''}{columns}i.*")
    curs.execute(
        f"{sql} WHERE {filters.where('i')} ORDER BY i.detection_time, i.number", filters.params
    )
    seen: set[Any] = set()
    for row in curs.fetchall():
        targets = [groups[tuple(row[f"g{n}"] for n in range(len(keys)))]] if keys else []
        if row["id"] not in seen:
            seen.add(row["id"])
            targets.append(overall)
        ident = {"incident_id": row["id"], "number": row["number"]}
        for figures in targets:
            for name in ("mtta", "mttr"):
                minutes = row[f"{name}_minutes"]
                if minutes is not None:
                    figures[name]["provenance"].append(ident | {"minutes": round(minutes, 2)})
            if row["resolved_once"]:
                figures["reopen_rate"]["provenance"].append(
                    ident | {"reopen_count": row["reopen_count"]}
                )
    _pairs(curs, filters, dims, overall, groups)


def _pairs(
    curs: Cursor[DictRow],
    filters: MetricFilters,
    dims: Sequence[str],
    overall: dict[str, Any],
    groups: dict[tuple[Any, ...], dict[str, Any]],
) -> None:
    keys = keys_of(dims, "p")
    columns = "".join(f"{k} AS g{n}, " for n, k in enumerate(keys))
    link = " LEFT JOIN sla_link l ON l.incident_id = p.incident_id" if "ci" in dims else ""
    curs.execute(
        f"""SELECT {columns}p.* FROM (SELECT * FROM sla_clock p
            WHERE p.response_target IS NOT NULL AND {filters.where("p")}) p{link}
            ORDER BY p.detection_time, p.number, p.client_id""",
        filters.params,
    )
    seen: set[Any] = set()
    for row in curs.fetchall():
        outcome = (
            status(clock_of(row, "response"), filters.now),
            status(clock_of(row, "resolution"), filters.now),
        )
        if "breached" not in outcome and outcome != ("met", "met"):
            continue  # not decided yet: not behind the figure
        entry = {
            "incident_id": row["incident_id"],
            "number": row["number"],
            "client_id": row["client_id"],
            "tier": row["tier"],
            "response_status": outcome[0],
            "resolution_status": outcome[1],
            "compliant": outcome == ("met", "met"),
        }
        group = groups.get(tuple(row[f"g{n}"] for n in range(len(keys)))) if keys else None
        if group is not None:
            group["sla_compliance"]["provenance"].append(entry)
        if (row["incident_id"], row["client_id"]) not in seen:
            seen.add((row["incident_id"], row["client_id"]))
            overall["sla_compliance"]["provenance"].append(entry)
