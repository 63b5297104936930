"""Read routes: health, severity assessment, incidents (current state and list), timeline.
Reads served from a view wait until it has projected the position the caller needs
(`Ledger-Min-Position`, `min_position`, or by default the caller's own last write here) and
answer the view's position in `Ledger-View-Position`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response

from api.deps import CurrentUser, Scope, ServiceDep
from api.errors import ERROR_RESPONSES, ErrorBody
from api.exports import export
from api.read_models import Health, IncidentPage, ProblemTimeline, Timeline
from domain.base import Role
from domain.errors import Forbidden, InvalidInput
from domain.problem import Problem
from domain.severity import SeverityAssessment, SeverityDecision, assess_severity
from projections.queries import (
    EXACT,
    RANGES,
    BadQuery,
    incident_timeline,
    list_incidents,
    stream_timeline,
)

router = APIRouter()
VIEW_POSITION = "Ledger-View-Position"


def wanted_position(
    service: ServiceDep,
    user: CurrentUser,
    header: Annotated[
        int | None,
        Header(
            alias="Ledger-Min-Position",
            ge=0,
            description="Serve only once the view includes this ledger position (a command's "
            "`position`). Default: your own last write through this process.",
        ),
    ] = None,
    min_position: Annotated[
        int | None, Query(ge=0, description="Same as the Ledger-Min-Position header.")
    ] = None,
) -> int | None:
    given = [p for p in (header, min_position) if p is not None]
    return max(given) if given else service.last_positions.get(user.id)


MinPosition = Annotated[int | None, Depends(wanted_position)]

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: ERROR_RESPONSES[status] for status in (401, 403, 404, 422, 429, 503)
}
"""The refusals a read documents (OpenAPI); no rule or version conflict applies to a read."""
VIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    503: {
        "model": ErrorBody,
        "description": "The view has not reached the position needed in time (`view.behind`: "
        "retry), it stopped on an event (`view.failed`), or PostgreSQL is unreachable "
        "(`database.unavailable`).",
    },
}
"""A read served from a view may also wait for it, and give up (503)."""


@router.get(
    "/health",
    tags=["service"],
    summary="Liveness, and how far each projection lags",
    response_model=Health,
    responses={
        503: {
            "model": ErrorBody,
            "description": "PostgreSQL is unreachable: `database.unavailable`, with `status` "
            "unavailable and the other keys null.",
        }
    },
)
def health(service: ServiceDep) -> dict[str, Any]:
    """`status` ok or degraded (a view failed), the event `head`, and per view its position,
    events_behind, lag_ms and error (null, or the event it stopped before and why)."""
    return service.health()


@router.post(
    "/severity-assessments",
    tags=["incidents"],
    summary="SOP 2.1: assess severity (a query; nothing is recorded)",
    response_model=SeverityDecision,
    responses={**READ_RESPONSES, 413: ERROR_RESPONSES[413]},
)
def severity_assessment(assessment: SeverityAssessment, user: CurrentUser) -> SeverityDecision:
    return assess_severity(assessment)


@router.get(
    "/incidents",
    tags=["incidents"],
    summary="List incidents with filters and pagination",
    response_model=IncidentPage,
    responses=VIEW_RESPONSES,
)
def get_incidents(
    service: ServiceDep,
    scope: Scope,
    response: Response,
    wanted: MinPosition,
    number: str | None = None,
    category: str | None = None,
    severity: str | None = None,
    impact: str | None = None,
    urgency: str | None = None,
    status: str | None = None,
    reported_by: UUID | None = None,
    assigned_to: UUID | None = None,
    problem_id: UUID | None = None,
    q: Annotated[str | None, Query(description="Free text in the title")] = None,
    detection_from: datetime | None = None,
    detection_to: datetime | None = None,
    acknowledged_from: datetime | None = None,
    acknowledged_to: datetime | None = None,
    resolved_from: datetime | None = None,
    resolved_to: datetime | None = None,
    closed_from: datetime | None = None,
    closed_to: datetime | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    sort: Literal[
        "detection_time", "created_at", "updated_at", "number", "severity"
    ] = "detection_time",
    order: Literal["asc", "desc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    given = locals()
    exact = {name: given[name] for name in EXACT if given.get(name) is not None}
    prefixes = {
        "detection_time": "detection",
        "acknowledged_at": "acknowledged",
        "resolved_at": "resolved",
        "closed_at": "closed",
        "created_at": "created",
    }
    ranges = {
        column: (given.get(f"{p}_from"), given.get(f"{p}_to"))
        for column, p in prefixes.items()
        if column in RANGES
    }
    try:
        with service.read_view("current_state", wanted) as (curs, position):
            rows, next_cursor = list_incidents(
                curs,
                exact=exact,
                ranges=ranges,
                text=q,
                sort=sort,
                descending=order == "desc",
                limit=limit,
                cursor=cursor,
                client_id=scope.client_id,
            )
    except BadQuery as exc:
        raise InvalidInput("query.invalid", str(exc)) from None
    response.headers[VIEW_POSITION] = str(position)
    return {"items": rows, "next_cursor": next_cursor}


TIMELINE_CSV_FIELDS = [
    "position", "occurred_at", "recorded_at", "event_type", "record_type", "record_id",
    "record_version", "actor_id", "actor_name", "actor_role", "command", "command_id",
    "idempotency_key", "source", "changes",
]  # fmt: skip


@router.get(
    "/incidents/{incident}/timeline",
    tags=["audit"],
    summary="Audit timeline: every event of the incident and its linked records, in order",
    response_model=None,  # documented below; served as built (JSON, or CSV with format=csv)
    responses={
        **VIEW_RESPONSES,
        200: {
            "model": Timeline,
            "description": "The timeline: JSON, or streamed CSV (`format=csv`) or NDJSON.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
    },
)
def get_timeline(
    incident: str,
    service: ServiceDep,
    scope: Scope,
    response: Response,
    wanted: MinPosition,
    format: Literal["json", "csv", "ndjson"] = "json",
) -> Any:
    found = scope.incident(incident)
    return _timeline(service, wanted, response, format, found.id, found.number, "incident")


@router.get(
    "/problems/{problem}/timeline",
    tags=["audit"],
    summary="Audit timeline of a problem: its events, its notes and communications, and each "
    "incident's link to it",
    response_model=None,
    responses={
        **VIEW_RESPONSES,
        200: {
            "model": ProblemTimeline,
            "description": "The timeline: JSON, or streamed CSV (`format=csv`) or NDJSON.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
    },
)
def get_problem_timeline(
    problem: str,
    service: ServiceDep,
    user: CurrentUser,
    response: Response,
    wanted: MinPosition,
    format: Literal["json", "csv", "ndjson"] = "json",
) -> Any:
    if user.role == Role.CLIENT_CONTACT:
        raise Forbidden("role.forbidden", "A client contact may read only their incidents.")
    found = service.ledger.find(Problem, problem, "problem")
    return _timeline(service, wanted, response, format, found.id, found.number, "problem")


def _timeline(
    service: ServiceDep,
    wanted: int | None,
    response: Response,
    format: str,
    root_id: UUID,
    number: str,
    kind: str,
) -> Any:
    if format == "json":
        with service.read_view("timeline", wanted) as (curs, position):
            entries = incident_timeline(curs, root_id)
        response.headers[VIEW_POSITION] = str(position)
        return {kind: number, f"{kind}_id": str(root_id), "entries": entries}
    with service.read_view("timeline", wanted) as (_curs, position):
        pass  # waits (or answers 503) now, before the streamed answer has begun

    def rows() -> Iterator[dict[str, Any]]:
        with service.read_view("timeline", None) as (curs, _position):
            yield from stream_timeline(curs, root_id)

    return export(
        rows(),
        "csv" if format == "csv" else "ndjson",
        fields=TIMELINE_CSV_FIELDS,
        filename=f"{number}-timeline",
        headers={VIEW_POSITION: str(position)},
    )
