"""The analytics view's facts: the pure fold (event → rows of the fact tables) and the loader that
reads back, for some incidents, everything their SLA clocks depend on (on the projector's cursor,
shadow tables in a rebuild, or a reader's cursor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Identifier

from domain.base import DomainEvent
from domain.business_calendar import BusinessCalendar
from domain.client import Client
from domain.configuration_item import ConfigurationItem
from domain.incident import Incident
from domain.sla import ClientSLA, SLAAgreement
from domain.sla_policy import SLAPolicy
from projections.business_time import Calendar
from projections.folds import Increment, Row, payload
from projections.sla_rules import Fact, IncidentFacts, Policy, References

INCIDENT_FIELDS = ("number", "severity", "category", "assigned_to", "detection_time")


def incident_fact_rows(event: DomainEvent) -> list[Row]:
    key = {"id": event.originator_id}
    at = event.meta.occurred_at
    match event:
        case Incident.Opened():
            values = {name: getattr(event, name) for name in INCIDENT_FIELDS}
            values |= {"status": "open", "reopen_count": 0}
            return [Row("sla_incident", key, values, op="insert")]
        case Incident.Acknowledged():
            return [Row("sla_incident", key, {"acknowledged_at": at})]
        case Incident.Assigned(assigned_to=assigned_to):
            return [Row("sla_incident", key, {"assigned_to": assigned_to})]
        case Incident.StatusChanged(status=status, previous=previous):
            moved: dict[str, Any] = {"status": status.value}
            if status == "resolved":
                moved["resolved_at"] = at
            if status == "closed":
                moved["closed_at"] = at
            if previous == "resolved" and status == "in_progress":
                moved["reopen_count"] = Increment(1)
            return [Row("sla_incident", key, moved)]
        case Incident.DetailsUpdated(changes=changes) if "category" in changes:
            return [Row("sla_incident", key, {"category": changes["category"][1]})]
        case Incident.Reprioritised(severity=severity):
            return [Row("sla_incident", key, {"severity": severity.value})]
        case Incident.ConfigurationItemLinked(ci_id=ci_id):
            link = {"incident_id": event.originator_id, "ci_id": ci_id}
            return [Row("sla_link", link, op="upsert")]
    return []


def sla_fact_rows(event: DomainEvent, position: int) -> list[Row]:
    """The fact rows of one event (pure)."""
    at = event.meta.occurred_at
    at_position = {"position": position}
    match event:
        case (
            ConfigurationItem.AssignedToClient(client_id=client)
            | ConfigurationItem.UnassignedFromClient(client_id=client)
        ):
            assigned = isinstance(event, ConfigurationItem.AssignedToClient)
            values = {"ci_id": event.originator_id, "client_id": client, "occurred_at": at}
            return [Row("sla_ci_history", at_position, values | {"assigned": assigned}, "insert")]
        case SLAAgreement.Recorded(client_id=client):
            fields = payload(event)
            history = {"agreement_id": event.originator_id, "occurred_at": at, "fields": fields}
            return [
                Row(
                    "sla_agreement_ref",
                    {"id": event.originator_id},
                    {"client_id": client},
                    "insert",
                ),
                Row("sla_agreement_history", at_position, history, "insert"),
            ]
        case SLAAgreement.Updated(changes=changes):
            fields = {name: after for name, (_before, after) in changes.items()}
            history = {"agreement_id": event.originator_id, "occurred_at": at, "fields": fields}
            return [Row("sla_agreement_history", at_position, history, "insert")]
        case ClientSLA.BusinessCalendarAssigned(client_id=client, business_calendar_id=calendar):
            values = {"client_id": client, "occurred_at": at, "calendar_id": calendar}
            return [Row("sla_client_calendar", at_position, values, "insert")]
        case BusinessCalendar.Recorded():
            data = payload(event)
            values = {k: data[k] for k in ("name", "time_zone", "working_hours", "holidays")}
            return [Row("sla_business_calendar", {"id": event.originator_id}, values, "insert")]
        case SLAPolicy.Recorded():
            data = payload(event)
            values = {
                "name": data["name"],
                "effective_from": event.effective_from,
                "position": position,
                "recorded_at": event.timestamp,
                "is_default": event.default,
                "round_the_clock": data["round_the_clock"],
                "business_hours": data["business_hours"],
            }
            return [Row("sla_policy", {"id": event.originator_id}, values, "insert")]
        case Client.Registered(client_name=name):
            return [Row("sla_client", {"id": event.originator_id}, {"client_name": name}, "upsert")]
        case Client.Updated(changes=changes) if "client_name" in changes:
            name = changes["client_name"][1]
            return [Row("sla_client", {"id": event.originator_id}, {"client_name": name})]
    return incident_fact_rows(event)


# --- reading the facts back ----------------------------------------------------------------------

LINKS = "SELECT ci_id FROM {link} WHERE incident_id = ANY(%(ids)b)"
CLIENTS = f"SELECT client_id FROM {{ci_history}} WHERE ci_id IN ({LINKS})"
QUERIES = {
    "incidents": "SELECT * FROM {incident} WHERE id = ANY(%(ids)b) ORDER BY id",
    "links": "SELECT * FROM {link} WHERE incident_id = ANY(%(ids)b)",
    "policies": "SELECT * FROM {policy} ORDER BY effective_from, position",
    "ci_history": f"SELECT * FROM {{ci_history}} WHERE ci_id IN ({LINKS})",
    "agreements": "SELECT h.*, r.client_id FROM {agreement_history} h "
    f"JOIN {{agreement_ref}} r ON r.id = h.agreement_id WHERE r.client_id IN ({CLIENTS})",
    "calendar_history": f"SELECT * FROM {{client_calendar}} WHERE client_id IN ({CLIENTS})",
    "calendars": "SELECT * FROM {calendar} WHERE id IN (SELECT calendar_id FROM "
    f"{{client_calendar}} WHERE client_id IN ({CLIENTS}))",
}
"""Everything the clocks of some incidents depend on: one round trip (a pipeline)."""
TABLES = {
    "incident": "sla_incident",
    "link": "sla_link",
    "policy": "sla_policy",
    "ci_history": "sla_ci_history",
    "agreement_history": "sla_agreement_history",
    "agreement_ref": "sla_agreement_ref",
    "client_calendar": "sla_client_calendar",
    "calendar": "sla_business_calendar",
}


def _fetch(curs: Cursor[DictRow], ids: list[UUID], suffix: str) -> dict[str, list[dict[str, Any]]]:
    tables = {name: Identifier(table + suffix) for name, table in TABLES.items()}
    conn = curs.connection
    cursors = {}
    with conn.pipeline():
        for name, sql in QUERIES.items():
            cursors[name] = conn.cursor(row_factory=dict_row)
            cursors[name].execute(SQL(sql).format(**tables), {"ids": ids})
    found = {name: list(c.fetchall()) for name, c in cursors.items()}
    for c in cursors.values():
        c.close()
    return found


def policies(rows: Sequence[dict[str, Any]]) -> list[Policy]:
    return [
        Policy(
            r["id"],
            r["name"],
            r["effective_from"],
            r["position"],
            r["round_the_clock"],
            r["business_hours"],
        )
        for r in rows
    ]


def incident_facts(row: dict[str, Any], ci_ids: Sequence[UUID]) -> IncidentFacts:
    return IncidentFacts(
        id=row["id"],
        number=row["number"],
        severity=row["severity"],
        category=row["category"],
        status=row["status"],
        assigned_to=row["assigned_to"],
        detection_time=row["detection_time"],
        acknowledged_at=row["acknowledged_at"],
        resolved_at=row["resolved_at"],
        closed_at=row["closed_at"],
        reopen_count=row["reopen_count"],
        ci_ids=tuple(sorted(ci_ids, key=str)),
    )


def load(
    curs: Cursor[DictRow], incident_ids: Sequence[UUID], suffix: str = ""
) -> tuple[list[IncidentFacts], References]:
    """The incidents' facts and every reference fact their clocks can depend on."""
    found = _fetch(curs, list(incident_ids), suffix)
    links: dict[UUID, list[UUID]] = {}
    for r in found["links"]:
        links.setdefault(r["incident_id"], []).append(r["ci_id"])
    refs = References(policies=policies(found["policies"]))
    for r in found["ci_history"]:
        fact = Fact(r["position"], r["occurred_at"], r["ci_id"], r["client_id"], r["assigned"])
        refs.ci_facts.setdefault(r["ci_id"], []).append(fact)
    for r in found["agreements"]:
        fact = Fact(
            r["position"], r["occurred_at"], r["client_id"], r["agreement_id"], fields=r["fields"]
        )
        refs.agreement_facts.setdefault(r["client_id"], []).append(fact)
    for r in found["calendar_history"]:
        fact = Fact(r["position"], r["occurred_at"], r["client_id"], r["calendar_id"])
        refs.calendar_facts.setdefault(r["client_id"], []).append(fact)
    for r in found["calendars"]:
        refs.calendars[r["id"]] = Calendar.of(
            r["id"], r["name"], r["time_zone"], r["working_hours"], r["holidays"]
        )
    return [incident_facts(r, links.get(r["id"], [])) for r in found["incidents"]], refs
