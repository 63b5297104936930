"""What the MTTA / MTTR figures are grouped by and filtered on (projections/metrics.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "severity": ("{a}.severity", None),
    "category": ("{a}.category", None),
    "assignee": ("{a}.assigned_to::text", None),
    "day": ("to_char({a}.detection_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')", None),
    "week": (
        "to_char(date_trunc('week', {a}.detection_time AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
        None,
    ),
    "month": ("to_char({a}.detection_time AT TIME ZONE 'UTC', 'YYYY-MM')", None),
    "ci": ("l.ci_id::text", "ci"),
    "client": ("p.client_id::text", "pair"),
    "tier": ("p.tier", "pair"),
}
"""Each grouping: its SQL over an incident's columns (`{a}`: sla_incident or sla_clock; a week
is named by its Monday, UTC), and what it needs joined (`l` the CIs, `p` the pairs)."""


def joins_of(dims: Sequence[str]) -> set[str]:
    """The tables ("pair", "ci") the groupings `dims` need joined to the incidents."""
    return {join for d in dims if (join := DIMENSIONS[d][1]) is not None}


@dataclass(frozen=True)
class MetricFilters:
    now: datetime
    detected_from: datetime | None = None
    detected_before: datetime | None = None
    client_id: UUID | None = None
    severity: str | None = None

    def where(self, a: str) -> str:
        """Conditions on the incidents (`a` = "i", sla_incident) or pairs (`a` = "p")."""
        conditions = ["true"]
        for name, sql in (
            ("detected_from", f"{a}.detection_time >= %(detected_from)s"),
            ("detected_before", f"{a}.detection_time < %(detected_before)s"),
            ("severity", f"{a}.severity = %(severity)s"),
        ):
            if getattr(self, name) is not None:
                conditions.append(sql)
        if self.client_id is not None:
            conditions.append(
                "p.client_id = %(client_id)s"
                if a == "p"
                else "EXISTS (SELECT 1 FROM sla_clock c WHERE c.incident_id = i.id "
                "AND c.client_id = %(client_id)s)"
            )
        return " AND ".join(conditions)

    def incidents(self, dims: Sequence[str], select: str) -> str:
        """`SELECT {select} FROM sla_incident i`, with the CIs (`l`) and the pairs (`p`, only the
        filtered client's) joined that the groupings `dims` need (each incident then once per
        joined row)."""
        joins = joins_of(dims)
        sql = f"SELECT {select} FROM sla_incident i"
        if "pair" in joins:
            only = " AND p.client_id = %(client_id)s" if self.client_id else ""
            sql += f" LEFT JOIN sla_clock p ON p.incident_id = i.id{only}"
        if "ci" in joins:
            sql += " LEFT JOIN sla_link l ON l.incident_id = i.id"
        return sql

    @property
    def params(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "detected_from": self.detected_from,
            "detected_before": self.detected_before,
            "client_id": self.client_id,
            "severity": self.severity,
        }


def keys_of(dims: Sequence[str], a: str) -> list[str]:
    return [DIMENSIONS[d][0].format(a=a) for d in dims]
