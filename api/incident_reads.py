"""Reads of one incident from its own events: its state now, at a version or as of a moment, and
a step through its events (client contacts: only incidents of their client)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import Scope, ServiceDep
from api.queries import READ_RESPONSES
from api.read_models import IncidentState
from api.replay import AsOf, AsOfBasis, AsOfVersion, RecordStep, as_of_state, step_through
from domain.incident import Incident

router = APIRouter()


def incident_state(incident: Incident) -> dict[str, Any]:
    return {
        "id": str(incident.id),
        "number": incident.number,
        "version": incident.version,
        "title": incident.title,
        "description": incident.description,
        "category": incident.category,
        "severity": incident.severity,
        "impact": incident.impact,
        "urgency": incident.urgency,
        "status": incident.status,
        "reported_by": str(incident.reported_by),
        "assigned_to": str(incident.assigned_to) if incident.assigned_to else None,
        "detection_time": incident.detection_time,
        "acknowledged_at": incident.acknowledged_at,
        "resolved_at": incident.resolved_at,
        "closed_at": incident.closed_at,
        "reopen_count": incident.reopen_count,
        "problem_id": str(incident.problem_id) if incident.problem_id else None,
        "configuration_items": [str(c) for c in incident.ci_ids],
        "created_at": incident.created_on,
        "updated_at": incident.modified_on,
    }


@router.get(
    "/incidents/{incident}",
    tags=["incidents"],
    summary="An incident's current state (or as of a version or a moment)",
    response_model=IncidentState,
    responses=READ_RESPONSES,
)
def get_incident(
    incident: str,
    service: ServiceDep,
    scope: Scope,
    response: Response,
    as_of_version: AsOfVersion = None,
    as_of: AsOf = None,
    as_of_basis: AsOfBasis = "recorded",
) -> dict[str, Any]:
    found = scope.incident(incident)  # in scope now: every earlier version is readable too
    found = as_of_state(service, found, "incident", as_of_version, as_of, as_of_basis)
    response.headers["ETag"] = f'"{found.version}"'
    return incident_state(found)


@router.get(
    "/incidents/{incident}/events",
    tags=["incidents"],
    summary="Step through an incident's events, each with the state it left",
    response_model=list[RecordStep],
    responses=READ_RESPONSES,
)
def incident_steps(incident: str, service: ServiceDep, scope: Scope) -> list[dict[str, Any]]:
    return step_through(service, scope.incident(incident).id)
