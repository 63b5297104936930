"""The analysts' reads (SPEC 6.2, 6.3): SLA breaches (and the SOP tool's reference result), one
incident's clocks explained, the SLA policies, MTTA / MTTR with provenance. JSON, or CSV where a
table makes sense (cells that a spreadsheet would run as a formula are made safe).

Readers: analyst, auditor, incident_manager, executive, system_administrator; a client_contact
reads only their own client's clocks and figures (naming another client is 403)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response

from api.analytics_models import (
    ClockStatus,
    MetricsReport,
    SLABreachPage,
    SLAExplanation,
    SLAPolicyList,
    SLAReferenceResult,
)
from api.csv_export import csv_answer, flat
from api.deps import CurrentUser, Scope, ServiceDep
from api.exports import export
from api.queries import VIEW_POSITION, VIEW_RESPONSES, MinPosition
from api.service import Service
from domain.base import Role
from domain.client import Client
from domain.errors import Forbidden, InvalidInput
from domain.incident import IncidentStatus
from domain.user import User
from projections.facts import load
from projections.metric_filters import DIMENSIONS, MetricFilters
from projections.metrics import report
from projections.queries import BadQuery
from projections.sla_explain import explain
from projections.sla_queries import Filters, breaches, list_policies
from projections.sla_reference import reference_breaches
from projections.waiting import ViewUnavailable

router = APIRouter(tags=["analytics"])
READERS = frozenset(
    {
        Role.ANALYST,
        Role.AUDITOR,
        Role.INCIDENT_MANAGER,
        Role.EXECUTIVE,
        Role.SYSTEM_ADMINISTRATOR,
        Role.CLIENT_CONTACT,
    }
)
DAY = r"^\d{4}-\d{2}-\d{2}$"
DayParam = Annotated[
    str | None,
    Query(pattern=DAY, description="Detection date (UTC), YYYY-MM-DD, inclusive."),
]
NowParam = Annotated[
    datetime | None,
    Query(description="Measure running clocks at this time (default: now; no zone: UTC)."),
]
Format = Literal["json", "csv", "ndjson"]
CSV_RESPONSE = {
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    }
}
GroupBy = Literal[
    "severity", "client", "tier", "category", "ci", "assignee", "day", "week", "month"
]


def _reader(user: User) -> None:
    if user.role not in READERS:
        raise Forbidden("role.forbidden", f"Your role ({user.role.value}) may not read this.")


def _client(service: Service, user: User, client: UUID | None) -> UUID | None:
    """The client the read is limited to: the one named (404 if unknown), or a client
    contact's own."""
    _reader(user)
    if client is not None:
        service.ledger.find(Client, client, "client")
    if user.role == Role.CLIENT_CONTACT:
        if client is not None and client != user.client_id:
            raise Forbidden("role.forbidden", "A client contact reads only their own client.")
        return user.client_id
    return client


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput("query.invalid", f"{name} {value!r} is not a date.") from None
    if not 1970 <= day.year <= 2200:
        raise InvalidInput("query.invalid", f"{name} must lie between 1970 and 2200.")
    return day


def _days(first: str | None, last: str | None) -> tuple[datetime | None, datetime | None]:
    """The detection range: from the first day's start to the start of the day after the last
    (UTC), both days included."""
    start, end = _day(first, "detected_from"), _day(last, "detected_to")
    if start and end and start > end:
        raise InvalidInput("query.invalid", "detected_from is after detected_to.")
    return (
        datetime.combine(start, time(), UTC) if start else None,
        datetime.combine(end + timedelta(days=1), time(), UTC) if end else None,
    )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    try:  # a year 1 or 9999 time with an offset has no UTC time at all
        in_utc = now.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not 1970 <= in_utc.year <= 2200:
        raise InvalidInput("query.invalid", "now must lie between 1970 and 2200.")
    return in_utc


@router.get(
    "/sla/breaches",
    summary="SLA clocks per (incident, client): breached, at risk, running or met",
    response_model=None,
    responses={
        **VIEW_RESPONSES,
        200: {"model": SLABreachPage | SLAReferenceResult, **CSV_RESPONSE},
    },
)
def get_breaches(
    service: ServiceDep,
    user: CurrentUser,
    response: Response,
    wanted: MinPosition,
    client: Annotated[UUID | None, Query(description="Only this client's clocks.")] = None,
    detected_from: DayParam = None,
    detected_to: DayParam = None,
    status: Annotated[IncidentStatus | None, Query(description="Incident status.")] = None,
    sla_status: Annotated[
        list[ClockStatus] | None,
        Query(description="Pairs in these states (default: breached and at_risk)."),
    ] = None,
    now: NowParam = None,
    mode: Annotated[
        Literal["default", "reference"],
        Query(description="`reference`: the SOP tool's result (fetch_sla_breach_incidents)."),
    ] = "default",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    format: Format = "json",
) -> Any:
    """Per (incident, affected client) pair: tier, policy and calendar as of detection, the
    response and resolution clocks measured at `now`. `mode=reference` reproduces the SOP tool:
    current CIs and clients, the client's single active agreement, round-the-clock targets, and
    only stopped clocks counted as breached."""
    limited = _client(service, user, client)
    start, before = _days(detected_from, detected_to)
    moment = _now(now)
    status_value = status.value if status else None
    with service.read_view("analytics", wanted) as (curs, position):
        if mode == "reference":
            found = reference_breaches(
                curs,
                client_id=limited,
                detected_from=start,
                detected_before=before,
                status=status_value,
            )
        else:
            filters = Filters(moment, limited, start, before, status_value)
            try:
                summary, items, next_cursor = breaches(
                    curs, filters, tuple(sla_status or ("breached", "at_risk")), limit, cursor
                )
            except BadQuery as exc:
                raise InvalidInput("query.invalid", str(exc)) from None
    response.headers[VIEW_POSITION] = str(position)
    if mode == "reference":
        result = SLAReferenceResult(
            mode="reference",
            success=True,
            count=len(found),
            breach_incidents=found,
        ).model_dump(mode="json")
        if format == "csv":
            return csv_answer(result["breach_incidents"], "sla-reference.csv", position)
        if format == "ndjson":
            return _lines(result["breach_incidents"], "sla-reference", position)
        return result
    page = SLABreachPage.model_validate(
        {
            "mode": "default",
            "now": moment,
            "summary": summary,
            "items": items,
            "next_cursor": next_cursor,
        }
    ).model_dump(mode="json")
    if format == "csv":
        return csv_answer([flat(i) for i in page["items"]], "sla-breaches.csv", position)
    if format == "ndjson":
        return _lines(page["items"], "sla-breaches", position)
    return page


@router.get(
    "/sla/incidents/{incident}",
    summary="One incident's SLA clocks, explained step by step",
    response_model=SLAExplanation,
    responses=VIEW_RESPONSES,
)
def get_incident_clocks(
    incident: str,
    service: ServiceDep,
    user: CurrentUser,
    scope: Scope,
    response: Response,
    wanted: MinPosition,
    now: NowParam = None,
) -> dict[str, Any]:
    limited = _client(service, user, None)
    found = scope.incident(incident)
    moment = _now(now)
    with service.read_view("analytics", wanted) as (curs, position):
        facts, refs = load(curs, [found.id])
        curs.execute("SELECT id, client_name FROM sla_client")
        names = {r["id"]: r["client_name"] for r in curs.fetchall()}
    response.headers[VIEW_POSITION] = str(position)
    if not facts:
        raise ViewUnavailable(
            "view.behind",
            f"The analytics view has not reached incident {found.number} yet; retry shortly "
            "(or send Ledger-Min-Position).",
        )
    events = service.ledger.events.get(found.id)
    explained = explain(facts[0], refs, names, events, moment)  # type: ignore[arg-type]
    if limited is not None:
        explained["clients"] = [c for c in explained["clients"] if c["client_id"] == limited]
    return explained


@router.get(
    "/sla-policies",
    tags=["sla"],
    summary="The SLA policies recorded, with when each takes effect",
    response_model=SLAPolicyList,
    responses=VIEW_RESPONSES,
)
def get_policies(
    service: ServiceDep, user: CurrentUser, response: Response, wanted: MinPosition
) -> dict[str, Any]:
    _reader(user)
    with service.read_view("analytics", wanted) as (curs, position):
        items = list_policies(curs, datetime.now(UTC))
    response.headers[VIEW_POSITION] = str(position)
    return {"items": items}


@router.get(
    "/metrics/mtta-mttr",
    summary="MTTA / MTTR (mean, median, p90, count), reopen rate and SLA compliance by group",
    response_model=None,
    responses={**VIEW_RESPONSES, 200: {"model": MetricsReport, **CSV_RESPONSE}},
)
def get_metrics(
    service: ServiceDep,
    user: CurrentUser,
    response: Response,
    wanted: MinPosition,
    detected_from: DayParam = None,
    detected_to: DayParam = None,
    group_by: Annotated[
        list[GroupBy] | None, Query(description="Up to 3 groupings, e.g. week and severity.")
    ] = None,
    client: Annotated[UUID | None, Query(description="Incidents affecting this client.")] = None,
    severity: Annotated[Literal["P1", "P2", "P3", "P4"] | None, Query()] = None,
    now: NowParam = None,
    provenance: Annotated[
        bool, Query(description="List the incidents behind every figure.")
    ] = True,
    format: Format = "json",
) -> Any:
    """MTTA = detection → first acknowledgment; MTTR = detection → last resolution (resolved or
    closed incidents); minutes. Each figure lists the incidents (and minutes) behind it."""
    limited = _client(service, user, client)
    start, before = _days(detected_from, detected_to)
    dims = list(dict.fromkeys(group_by or []))
    if len(dims) > 3:
        raise InvalidInput("query.invalid", "group_by takes at most 3 groupings.")
    assert all(d in DIMENSIONS for d in dims)
    filters = MetricFilters(_now(now), start, before, limited, severity)
    with service.read_view("analytics", wanted) as (curs, position):
        overall, groups = report(curs, filters, dims, provenance)
    response.headers[VIEW_POSITION] = str(position)
    answer = MetricsReport.model_validate(
        {
            "now": filters.now,
            "detected_from": detected_from,
            "detected_to": detected_to,
            "group_by": dims,
            "overall": {"key": {}} | overall,
            "groups": groups,
        }
    ).model_dump(mode="json")
    if format == "csv":
        rows = [flat(g) for g in [answer["overall"], *answer["groups"]]]
        return csv_answer(rows, "mtta-mttr.csv", position)
    if format == "ndjson":  # one group a line, with its provenance
        return _lines([answer["overall"], *answer["groups"]], "mtta-mttr", position)
    return answer


def _lines(rows: list[dict[str, Any]], filename: str, position: int) -> Any:
    return export(
        rows, "ndjson", fields=(), filename=filename, headers={VIEW_POSITION: str(position)}
    )
