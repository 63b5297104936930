"""`GET /obligations` (SPEC 6.5): what the SOP requires and has not happened yet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from api.audit import RESPONSES, audit_reader
from api.deps import ServiceDep
from api.exports import export
from api.queries import VIEW_POSITION, VIEW_RESPONSES, MinPosition
from domain.user import User
from projections.obligations import KINDS, obligations

router = APIRouter(tags=["audit"])
FIELDS = ("kind", "record_type", "record_id", "number", "incident_id", "incident_number", "since",
          "description")  # fmt: skip


class Obligation(BaseModel):
    kind: Literal[
        "major_incident_without_bridge",
        "closed_incident_without_report",
        "emergency_change_without_approval",
        "bridge_active_on_closed_incident",
        "major_incident_without_rca",
    ]
    record_type: str = Field(description="The record that owes it.")
    record_id: UUID
    number: str | None
    incident_id: UUID | None
    incident_number: str | None
    since: datetime | None = Field(description="Since when it is owed.")
    description: str


class Obligations(BaseModel):
    items: list[Obligation]


@router.get(
    "/obligations",
    summary="What the SOP requires and has not happened yet, oldest first",
    response_model=None,
    responses={
        **RESPONSES,
        503: VIEW_RESPONSES[503],
        200: {
            "model": Obligations,
            "description": "Every open obligation: JSON, or streamed CSV or NDJSON.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
    },
)
def get_obligations(
    service: ServiceDep,
    reader: Annotated[User, Depends(audit_reader)],
    wanted: MinPosition,
    kind: Annotated[
        Literal[
            "major_incident_without_bridge",
            "closed_incident_without_report",
            "emergency_change_without_approval",
            "bridge_active_on_closed_incident",
            "major_incident_without_rca",
        ]
        | None,
        Query(description="Only this kind: " + "; ".join(f"{k}: {v}" for k, v in KINDS.items())),
    ] = None,
    incident: UUID | None = None,
    since_before: Annotated[
        AwareDatetime | None, Query(description="Only those owed since this moment or earlier.")
    ] = None,
    format: Literal["json", "csv", "ndjson"] = "json",
) -> Any:
    positions = []
    for view in ("current_state", "records"):  # 503 now, before the answer streams
        with service.read_view(view, wanted) as (_curs, position):
            positions.append(position)

    def rows() -> Iterator[dict[str, Any]]:
        with service.read_view("records", None) as (curs, _position):
            yield from obligations(curs, kind=kind, incident=incident, since_before=since_before)

    return export(
        rows(),
        format,
        fields=FIELDS,
        filename="obligations",
        headers={VIEW_POSITION: str(min(positions))},
    )
