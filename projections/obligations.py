"""Obligations (SPEC 6.5): what the SOP requires and has not happened yet, read from the views
(incident_view of `current_state`, record_view of `records`). Each row names the kind, the record
that owes it, its incident, and since when it is owed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

KINDS = {
    "major_incident_without_bridge": "A P1/P2 incident has never had a bridge (SOP 2.1 step 4, "
    "SOP 4.1); owed since it was recorded.",
    "closed_incident_without_report": "A closed incident has no incident report (SOP 2.2 step "
    "5); owed since it closed.",
    "emergency_change_without_approval": "An emergency change has no granted executive "
    "approval (SOP 12, 20); owed since it was requested.",
    "bridge_active_on_closed_incident": "A bridge is still active on a closed incident (SOP 5); "
    "owed since the incident closed.",
    "major_incident_without_rca": "A resolved or closed P1/P2 incident has no root-cause analysis "
    "(SOP 17); owed since it was (last) resolved.",
}

_RECORDS = (
    "SELECT 1 FROM record_view r WHERE r.record_type = '{kind}' "
    "AND r.fields->>'incident_id' = i.id::text"
)
QUERY = f"""
SELECT * FROM (
  SELECT 'major_incident_without_bridge' AS kind, 'Incident' AS record_type, i.id AS record_id,
         i.number, i.id AS incident_id, i.number AS incident_number, i.created_at AS since
  FROM incident_view i
  WHERE i.severity IN ('P1', 'P2') AND i.status <> 'closed'
    AND NOT EXISTS ({_RECORDS.format(kind="Bridge")})
  UNION ALL
  SELECT 'closed_incident_without_report', 'Incident', i.id, i.number, i.id, i.number, i.closed_at
  FROM incident_view i
  WHERE i.status = 'closed' AND NOT EXISTS ({_RECORDS.format(kind="IncidentReport")})
  UNION ALL
  SELECT 'emergency_change_without_approval', 'Change', c.id, c.number, i.id, i.number,
         c.created_at
  FROM record_view c LEFT JOIN incident_view i ON i.id::text = c.fields->>'incident_id'
  WHERE c.record_type = 'Change' AND c.fields->>'change_type' = 'emergency'
    AND c.fields->>'approval_id' IS NULL AND c.status NOT IN ('cancelled', 'denied')
  UNION ALL
  SELECT 'bridge_active_on_closed_incident', 'Bridge', b.id, b.number, i.id, i.number,
         i.closed_at
  FROM record_view b JOIN incident_view i ON i.id::text = b.fields->>'incident_id'
  WHERE b.record_type = 'Bridge' AND b.status = 'active' AND i.status = 'closed'
  UNION ALL
  SELECT 'major_incident_without_rca', 'Incident', i.id, i.number, i.id, i.number, i.resolved_at
  FROM incident_view i
  WHERE i.severity IN ('P1', 'P2') AND i.status IN ('resolved', 'closed')
    AND NOT EXISTS ({_RECORDS.format(kind="RootCauseAnalysis")})
) o
WHERE (%(kind)s::text IS NULL OR o.kind = %(kind)s)
  AND (%(incident)s::uuid IS NULL OR o.incident_id = %(incident)s)
  AND (%(since_before)s::timestamptz IS NULL OR o.since <= %(since_before)s)
ORDER BY o.since, o.kind, o.record_id"""


def obligations(
    curs: Cursor[DictRow],
    *,
    kind: str | None = None,
    incident: UUID | None = None,
    since_before: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Every open obligation (streamed), oldest first."""
    params = {"kind": kind, "incident": incident, "since_before": since_before}
    for row in curs.stream(QUERY, params):
        yield {**row, "description": KINDS[row["kind"]]}
