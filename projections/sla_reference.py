"""`mode=reference`: what the SOP's `fetch_sla_breach_incidents` tool returned, from the ledger's
current state (the tool had no history): each incident's current CIs and those CIs' current
clients, each client's one active agreement (the first recorded, if ever there were several), the
round-the-clock targets of SPEC 8 whatever the coverage, and a clock counted as breached only once
it stopped later than its target (an unacknowledged or unresolved incident is not breached).
Resolution ends at the incident's last resolution, else its closure."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow

from domain.sla_policy import ROUND_THE_CLOCK


def _active_agreements(curs: Cursor[DictRow], clients: list[UUID]) -> dict[UUID, dict[str, Any]]:
    """Per client, its first recorded agreement whose current status is active."""
    curs.execute(
        """SELECT h.agreement_id, h.fields, r.client_id FROM sla_agreement_history h
           JOIN sla_agreement_ref r ON r.id = h.agreement_id
           WHERE r.client_id = ANY(%s) ORDER BY h.position""",
        (clients,),
    )
    states: dict[UUID, dict[str, Any]] = {}
    for row in curs.fetchall():
        state = states.setdefault(row["agreement_id"], {"id": row["agreement_id"]})
        state.update(row["fields"], client_id=row["client_id"])
    found: dict[UUID, dict[str, Any]] = {}
    for state in states.values():  # in the order the agreements were recorded
        if state.get("status") == "active":
            found.setdefault(state["client_id"], state)
    return found


def _minutes(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60


def reference_breaches(
    curs: Cursor[DictRow],
    *,
    client_id: UUID | None,
    detected_from: datetime | None,
    detected_before: datetime | None,
    status: str | None,
) -> list[dict[str, Any]]:
    conditions, params = ["true"], []
    for sql, value in (
        ("status = %s", status),
        ("detection_time >= %s", detected_from),
        ("detection_time < %s", detected_before),
    ):
        if value is not None:
            conditions.append(sql)
            params.append(value)
    curs.execute(
        f"SELECT * FROM sla_incident WHERE {' AND '.join(conditions)} ORDER BY number", params
    )
    incidents = list(curs.fetchall())
    curs.execute(
        """SELECT l.incident_id, h.client_id FROM sla_link l
           JOIN LATERAL (SELECT DISTINCT ON (client_id) client_id, assigned FROM sla_ci_history
                         WHERE ci_id = l.ci_id ORDER BY client_id, position DESC) h ON h.assigned
           WHERE l.incident_id = ANY(%s)""",
        ([i["id"] for i in incidents],),
    )
    clients_of: dict[UUID, set[UUID]] = {}
    for row in curs.fetchall():
        clients_of.setdefault(row["incident_id"], set()).add(row["client_id"])
    everyone = sorted({c for found in clients_of.values() for c in found})
    agreements = _active_agreements(curs, everyone)
    curs.execute("SELECT id, client_name FROM sla_client WHERE id = ANY(%s)", (everyone,))
    names = {row["id"]: row["client_name"] for row in curs.fetchall()}
    found: list[dict[str, Any]] = []
    for incident in incidents:
        clients = clients_of.get(incident["id"], set())
        if not clients or (client_id is not None and client_id not in clients):
            continue
        for client in sorted(clients, key=str):
            agreement = agreements.get(client)
            if agreement is None:
                continue
            row = _row(incident, client, names.get(client), agreement)
            if row["response_sla_breach"] or row["resolution_sla_breach"]:
                found.append(row)
    return found


def _row(
    incident: dict[str, Any], client: UUID, name: str | None, agreement: dict[str, Any]
) -> dict[str, Any]:
    target = ROUND_THE_CLOCK.target(agreement["tier"], incident["severity"])
    detected = incident["detection_time"]
    row: dict[str, Any] = {
        "incident_id": incident["id"],
        "number": incident["number"],
        "client_id": client,
        "client_name": name,
        "sla_tier": agreement["tier"],
        "sla_id": agreement["id"],
        "status": incident["status"],
        "severity": incident["severity"],
        "detection_time": detected,
        "acknowledged_at": incident["acknowledged_at"],
        "resolved_at": incident["resolved_at"],
        "closed_at": incident["closed_at"],
    }
    ends = {
        "response": (incident["acknowledged_at"], target.response),
        "resolution": (incident["resolved_at"] or incident["closed_at"], target.resolution),
    }
    for name_, (end, expected) in ends.items():
        actual = None if end is None else _minutes(detected, end)
        breached = actual is not None and actual > expected
        row[f"{name_}_sla_breach"] = breached
        row[f"expected_{name_}_minutes"] = expected if breached else None
        row[f"actual_{name_}_minutes"] = round(actual, 2) if breached and actual else None
        row[f"{name_}_breach_by_minutes"] = (
            round(actual - expected, 2) if breached and actual else None
        )
    return row
