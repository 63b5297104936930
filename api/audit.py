"""Auditors' reads of the ledger itself: the ordered event feed (`GET /events`) and the integrity
check (`GET /integrity`). Both read the events table, never a view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from psycopg.sql import SQL, Identifier
from pydantic import AwareDatetime, BaseModel, Field

from api.deps import CurrentUser, ServiceDep
from api.errors import ERROR_RESPONSES
from api.exports import export
from api.integrity import Verdict, check, ledger_as_stored
from api.queries import VIEW_POSITION, MinPosition
from api.read_models import TimelineEntry
from api.service import Service
from api.store import CHAIN_TABLE
from domain.base import DomainEvent, Role
from domain.errors import Forbidden, InvalidInput
from domain.user import User
from projections.folds import payload

router = APIRouter(tags=["audit"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    s: ERROR_RESPONSES[s] for s in (401, 403, 422, 429, 503)
}
"""The audit's reads name no record (no 404)."""
AUDITORS = frozenset({Role.AUDITOR, Role.SYSTEM_ADMINISTRATOR})


def auditor(user: CurrentUser) -> None:
    if user.role not in AUDITORS:
        raise Forbidden(
            "role.forbidden", "Only auditors and administrators read the ledger's events."
        )


class FeedEvent(BaseModel):
    position: int = Field(description="The event's place in the ledger (resume after it).")
    record_id: UUID
    record_type: str
    version: int
    type: str = Field(description="Record type and event, e.g. Incident.Acknowledged.")
    actor: UUID | None
    occurred_at: datetime
    recorded_at: datetime
    command: str
    command_id: UUID
    payload: dict[str, Any]
    hash: str | None = Field(description="The event's chain hash (hex); see GET /integrity.")


class Feed(BaseModel):
    items: list[FeedEvent]
    next_after: int = Field(description="Pass as `after` for the next page.")


class Integrity(BaseModel):
    ok: bool
    count: int
    head_position: int | None
    head_hash: str | None
    first_bad: dict[str, Any] | None


def _events(
    service: Service,
    after: int,
    limit: int,
    record_type: str | None,
    event_type: str | None,
) -> list[dict[str, Any]]:
    recorder: Any = service.ledger.recorder
    where = [SQL("e.notification_id > %s")]
    params: list[Any] = [after]
    if record_type:
        where.append(SQL("split_part(split_part(e.topic, ':', 2), '.', 1) = %s"))
        params.append(record_type)
    if event_type:
        where.append(SQL("split_part(e.topic, ':', 2) = %s"))
        params.append(event_type)
    statement = SQL(
        "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state, "
        "c.hash FROM {} e LEFT JOIN {} c ON c.notification_id = e.notification_id "
        "WHERE {} ORDER BY e.notification_id LIMIT %s"
    ).format(
        Identifier(recorder.events_table_name),
        Identifier(CHAIN_TABLE),
        SQL(" AND ").join(where),
    )
    with recorder.datastore.transaction(commit=False) as curs:
        curs.execute(statement, [*params, limit])
        rows = curs.fetchall()
    items = []
    for row in rows:
        event = service.ledger.mapper.to_domain_event(
            StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
        )
        assert isinstance(event, DomainEvent)
        name = type(event).__qualname__
        items.append(
            {
                "position": row["notification_id"],
                "record_id": event.originator_id,
                "record_type": name.partition(".")[0],
                "version": event.originator_version,
                "type": name,
                "actor": event.meta.actor,
                "occurred_at": event.meta.occurred_at,
                "recorded_at": event.timestamp,
                "command": event.meta.command,
                "command_id": event.meta.command_id,
                "payload": payload(event),
                "hash": None if row["hash"] is None else bytes(row["hash"]).hex(),
            }
        )
    return items


@router.get(
    "/events",
    summary="The ledger's events in order, resumable (auditors and administrators)",
    response_model=Feed,
    responses={
        **RESPONSES,
        200: {
            "model": Feed,
            "description": "A page of events; with `format=ndjson`, one event per line.",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
    },
    dependencies=[Depends(auditor)],
)
def events(
    service: ServiceDep,
    after: Annotated[int, Query(ge=0, description="Events after this position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    record_type: Annotated[str | None, Query(max_length=100)] = None,
    event_type: Annotated[
        str | None, Query(max_length=200, description="e.g. Incident.Acknowledged")
    ] = None,
    format: Literal["json", "ndjson"] = "json",
) -> Any:
    items = _events(service, after, limit, record_type, event_type)
    next_after = items[-1]["position"] if items else after
    if format == "ndjson":

        def lines() -> Iterator[str]:
            for item in items:
                yield FeedEvent.model_validate(item).model_dump_json() + "\n"

        return StreamingResponse(
            lines(), media_type="application/x-ndjson", headers={"Next-After": str(next_after)}
        )
    return {"items": items, "next_after": next_after}


@router.get(
    "/integrity",
    summary="Recompute the hash chain: the head, or the first event that does not match",
    response_model=Integrity,
    responses=RESPONSES,
    dependencies=[Depends(auditor)],
)
def integrity(service: ServiceDep) -> dict[str, Any]:
    with ledger_as_stored(service.ledger.recorder) as stored:
        verdict: Verdict = check(stored)
    return verdict.as_dict()


AUDIT_READERS = frozenset(
    {Role.AUDITOR, Role.ANALYST, Role.SYSTEM_ADMINISTRATOR, Role.INCIDENT_MANAGER, Role.EXECUTIVE}
)
AUDIT_FIELDS = (
    "position", "occurred_at", "recorded_at", "event_type", "record_type", "record_id",
    "record_version", "actor_id", "actor_name", "actor_role", "command", "command_id",
    "idempotency_key", "source", "changes",
)  # fmt: skip


class AuditPage(BaseModel):
    items: list[TimelineEntry]
    next_after: int = Field(description="Pass as `after` for the next page.")


def audit_reader(user: CurrentUser) -> User:
    if user.role not in AUDIT_READERS:
        raise Forbidden("role.forbidden", f"Your role ({user.role.value}) may not read the audit.")
    return user


@router.get(
    "/audit",
    summary="Ledger-wide audit: every step by actor, event type, record type and period",
    response_model=None,
    responses={
        **RESPONSES,
        200: {
            "model": AuditPage,
            "description": "A page (JSON), or every matching entry streamed as CSV or NDJSON.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
    },
)
def audit(
    service: ServiceDep,
    reader: Annotated[User, Depends(audit_reader)],
    wanted: MinPosition,
    actor: Annotated[str | None, Query(description="A user's id, or `me`.")] = None,
    event_type: Annotated[str | None, Query(max_length=200)] = None,
    record_type: Annotated[str | None, Query(max_length=100)] = None,
    occurred_from: AwareDatetime | None = None,
    occurred_to: AwareDatetime | None = None,
    recorded_from: AwareDatetime | None = None,
    recorded_to: AwareDatetime | None = None,
    after: Annotated[int, Query(ge=0, description="Entries after this position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size (JSON only).")] = 100,
    format: Literal["json", "csv", "ndjson"] = "json",
) -> Any:
    actor_id: UUID | None = None
    if actor is not None:
        try:
            actor_id = reader.id if actor == "me" else UUID(actor)
        except ValueError:
            raise InvalidInput("query.invalid", "actor must be a user's id, or `me`.") from None
    where = ["notification_id > %s"]
    params: list[Any] = [after]
    for column, value in (("actor_id", actor_id), ("event_type", event_type),
                          ("record_type", record_type)):  # fmt: skip
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    for column, low, high in (
        ("occurred_at", occurred_from, occurred_to),
        ("recorded_at", recorded_from, recorded_to),
    ):
        if low is not None:
            where.append(f"{column} >= %s")
            params.append(low)
        if high is not None:
            where.append(f"{column} <= %s")
            params.append(high)
    query = (
        "SELECT notification_id AS position, event_type, record_type, record_id, "
        "record_version, actor_id, actor_name, actor_role, occurred_at, recorded_at, command, "
        "command_id, idempotency_key, source, changes FROM timeline_entry WHERE "
        + " AND ".join(where)
        + " ORDER BY notification_id"
    )
    if wanted:
        service.reader.wait_for("timeline", wanted, service.settings.read_wait_seconds)
    if format == "json":
        with service.read_view("timeline", None) as (curs, position):
            curs.execute(query + " LIMIT %s", [*params, limit])
            items = curs.fetchall()
        return JSONResponse(
            jsonable_encoder(
                {"items": items, "next_after": items[-1]["position"] if items else after}
            ),
            headers={VIEW_POSITION: str(position)},
        )

    def rows() -> Iterator[dict[str, Any]]:
        with service.read_view("timeline", None) as (curs, _position):
            yield from curs.stream(query, params)

    return export(rows(), format, fields=AUDIT_FIELDS, filename="audit")
