"""One incident's SLA clocks explained step by step (GET /sla/incidents/{id}): the same derivation
as the view's (projections/sla_rules.py), on the same facts, with each step written out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.base import DomainEvent
from domain.incident import Incident
from projections.business_time import Calendar
from projections.folds import event_name
from projections.sla_rules import Clock, IncidentFacts, Pair, References, derive, status, worst

COUNTED_LIMIT = 200


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.isoformat()


def history(events: Iterable[DomainEvent]) -> list[dict[str, Any]]:
    """The incident's events that start, stop or size its clocks."""
    steps = []
    for event in events:
        effect = None
        match event:
            case Incident.Opened(detection_time=detected, severity=severity):
                effect = f"detected at {detected.isoformat()}, severity {severity.value}: "
                effect += "both clocks start at detection"
            case Incident.Acknowledged():
                effect = "first acknowledgment: the response clock stops"
            case Incident.StatusChanged(status=new, previous=old):
                effect = f"{old.value} → {new.value}"
                if new == "resolved":
                    effect += ": the resolution clock stops (the last resolution counts)"
                elif old == "resolved" and new == "in_progress":
                    effect += ": reopened, the resolution clock runs again from detection"
                elif new == "closed":
                    effect += ": closed"
            case Incident.Reprioritised(severity=new, previous=old):
                effect = f"severity {old.value} → {new.value}: targets of {new.value} apply"
            case Incident.ConfigurationItemLinked(ci_id=ci):
                effect = f"configuration item {ci} linked: its clients at detection are affected"
        if effect is not None:
            steps.append(
                {
                    "version": event.originator_version,
                    "event_type": event_name(event),
                    "occurred_at": event.meta.occurred_at,
                    "recorded_at": event.timestamp,
                    "effect": effect,
                }
            )
    return steps


def _counted(
    start: datetime, end: datetime, cal: Calendar | None
) -> list[tuple[datetime, datetime]]:
    if end <= start:
        return []
    if cal is None:
        return [(start, end)]
    return cal.segments(start, end, COUNTED_LIMIT + 1)


def clock_explained(
    name: str, c: Clock, incident: IncidentFacts, cal: Calendar | None, now: datetime
) -> tuple[dict[str, Any], str]:
    start = incident.detection_time
    state = status(c, now)
    stopped = c.stopped_at is not None and c.stopped_at <= now
    end = c.stopped_at if stopped and c.stopped_at else max(now, start)
    used = (cal.working(start, end) if cal else end - start) if end > start else timedelta()
    minutes = c.minutes if stopped and c.minutes is not None else used.total_seconds() / 60
    stopped_by = None
    if stopped:
        if name == "response" and incident.acknowledged_at == c.stopped_at:
            stopped_by = "acknowledged"
        else:
            stopped_by = "resolved" if incident.resolved_at == c.stopped_at else "closed"
    spans = _counted(start, end, cal)
    explained = {
        "status": state,
        "target_minutes": c.target,
        "elapsed_minutes": round(minutes, 2),
        "used_percent": round(100 * minutes / c.target, 1),
        "started_at": start,
        "stopped_at": c.stopped_at if stopped else None,
        "stopped_by": stopped_by,
        "at_risk_at": c.at_risk_at,
        "due_at": c.due_at,
        "counted": [
            {"start": a, "end": b, "minutes": round((b - a).total_seconds() / 60, 2)}
            for a, b in spans[:COUNTED_LIMIT]
        ],
        "counted_truncated": len(spans) > COUNTED_LIMIT,
    }
    kind = "working minutes" if cal else "minutes"
    if stopped:
        line = (
            f"{name} clock: detection → {stopped_by} at {_when(c.stopped_at)} = "
            f"{round(minutes, 2)} {kind} of {c.target}: {state}"
        )
    else:
        line = (
            f"{name} clock: running at now {now.isoformat()}, {round(minutes, 2)} {kind} of "
            f"{c.target} used ({explained['used_percent']} %): {state}; at risk from "
            f"{_when(c.at_risk_at)}, breached after {_when(c.due_at)}"
        )
    return explained, line


def pair_explained(pair: Pair, name: str | None, now: datetime) -> dict[str, Any]:
    incident, steps = pair.incident, []
    through = [
        {"configuration_item_id": f.subject, "assigned_at": f.occurred_at, "position": f.position}
        for f in pair.through
    ]
    for f in pair.through:
        steps.append(
            f"configuration item {f.subject} was assigned to the client at "
            f"{f.occurred_at.isoformat()} (event {f.position}), before detection"
        )
    agreement = None
    if pair.agreement is None:
        steps.append("no SLA agreement was active and in force at detection: no SLA applies")
    else:
        a = pair.agreement
        agreement = {k: v for k, v in a.items() if k != "position"}
        steps.append(
            f"agreement {a['id']} was in force at detection: {a['tier']}, "
            f"{a['support_coverage']}, effective {a['effective_date']} to "
            f"{a.get('expiration_date') or 'open-ended'}, as recorded at "
            f"{a['as_recorded_at'].isoformat()}"
        )
    policy = None
    if pair.policy is not None:
        p = pair.policy
        policy = {"id": p.id, "name": p.name, "effective_from": p.effective_from}
        steps.append(
            f"policy {p.name!r} ({p.id}) was in force at detection (since "
            f"{p.effective_from.isoformat()})"
        )
    elif pair.agreement is not None:
        steps.append("no SLA policy was in force at detection: no SLA applies")
    cal = pair.calendar
    if pair.agreement is not None and pair.policy is not None:
        if cal is not None:
            steps.append(
                f"business_hours coverage with calendar {cal.name!r} ({cal.time_zone}): "
                "working minutes against the business-hours targets"
            )
        else:
            steps.append("round-the-clock minutes against the round-the-clock targets")
    clocks: dict[str, Any] = {"response": None, "resolution": None}
    for label, c in (("response", pair.response), ("resolution", pair.resolution)):
        if c is not None:
            clocks[label], line = clock_explained(label, c, incident, cal, now)
            steps.append(line)
    statuses = [c["status"] for c in clocks.values() if c is not None]
    return {
        "client_id": pair.client_id,
        "client_name": name,
        "affected_through": through,
        "agreement": agreement,
        "policy": policy,
        "business_calendar": cal.describe() if cal else None,
        "clock": pair.kind,
        "sla_status": worst(statuses) if statuses else None,
        **clocks,
        "steps": steps,
    }


def explain(
    incident: IncidentFacts,
    refs: References,
    names: dict[UUID, str],
    events: Iterable[DomainEvent],
    now: datetime,
) -> dict[str, Any]:
    return {
        "incident_id": incident.id,
        "number": incident.number,
        "now": now,
        "detection_time": incident.detection_time,
        "severity": incident.severity,
        "status": incident.status,
        "history": history(events),
        "clients": [
            pair_explained(pair, names.get(pair.client_id), now) for pair in derive(incident, refs)
        ],
    }
