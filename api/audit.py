"""Auditors' reads of the ledger itself: the ordered event feed (`GET /events`) and the integrity
check (`GET /integrity`). Both read the events table, never a view."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from psycopg.sql import SQL, Identifier
from pydantic import BaseModel, Field

from api.deps import CurrentUser, ServiceDep
from api.errors import ERROR_RESPONSES
from api.integrity import Verdict, check, ledger_as_stored
from api.service import Service
from api.store import CHAIN_TABLE
from domain.base import DomainEvent, Role
from domain.errors import Forbidden
from projections.folds import payload

router = APIRouter(tags=["audit"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    s: ERROR_RESPONSES[s] for s in (401, 403, 422, 429, 503)
}
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
