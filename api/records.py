"""Reads of every record type, generated from one table: `GET /<collection>/{id or number}` (the
record from its own events, now or `as_of_version`) and `GET /<collection>` (exact-match filters
on its fields, time ranges, keyset pagination; the records view finds the ids, each record is
then shown as of the version the view matched)."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, cast, get_args
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, create_model

from api.deps import CurrentUser, ServiceDep
from api.queries import VIEW_POSITION, VIEW_RESPONSES, MinPosition
from api.record_models import (
    ApprovalRecord,
    AttachmentRecord,
    BridgeRecord,
    ChangeRecord,
    ClientRecord,
    CommunicationRecord,
    ConfigurationItemRecord,
    EscalationRecord,
    IncidentReportRecord,
    PostIncidentReviewRecord,
    ProblemRecord,
    RecordState,
    RollbackRecord,
    RootCauseAnalysisRecord,
    UserRecord,
    WorkNoteRecord,
)
from domain.approval import Approval
from domain.attachment import Attachment
from domain.base import Aggregate, DomainEvent, Role
from domain.bridge import Bridge
from domain.change import Change
from domain.client import Client
from domain.communication import Communication
from domain.configuration_item import ConfigurationItem
from domain.errors import Forbidden, InvalidInput, NotFound
from domain.escalation import Escalation
from domain.pir import PostIncidentReview
from domain.problem import Problem
from domain.rca import RootCauseAnalysis
from domain.report import IncidentReport
from domain.rollback import Rollback
from domain.user import User
from domain.work_note import WorkNote
from projections.folds import changes_of
from projections.queries import BadQuery, list_records

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class Collection:
    path: str
    aggregate: type[Aggregate]
    what: str
    """The record's name in error codes (`<what>.not_found`) and in the path parameter."""
    model: type[RecordState]
    tag: str
    filters: tuple[str, ...] = ()
    """Fields a list filters on by exact match (a user field also takes `me`)."""
    times: tuple[str, ...] = ()
    """Time fields a list filters on by range (`<field>_from`, `<field>_to`)."""


COLLECTIONS = [
    Collection(
        "/users",
        User,
        "user",
        UserRecord,
        "users",
        ("first_name", "last_name", "email", "role", "timezone", "status", "client_id"),
    ),
    Collection(
        "/clients",
        Client,
        "client",
        ClientRecord,
        "clients",
        (
            "client_name",
            "registration_number",
            "company_type",
            "support_coverage",
            "preferred_communication",
            "status",
        ),
    ),
    Collection(
        "/configuration-items",
        ConfigurationItem,
        "configuration_item",
        ConfigurationItemRecord,
        "configuration items",
        ("ci_name", "ci_type", "environment", "operational_status", "responsible_owner"),
    ),
    Collection(
        "/problems",
        Problem,
        "problem",
        ProblemRecord,
        "problems",
        ("number", "title", "category", "status", "reported_by", "assigned_to"),
        ("detected_at",),
    ),
    Collection(
        "/changes",
        Change,
        "change",
        ChangeRecord,
        "changes",
        (
            "number",
            "change_type",
            "risk_level",
            "requested_by",
            "incident_id",
            "problem_id",
            "status",
            "approved_by",
        ),
        ("implementation_date",),
    ),
    Collection(
        "/rollbacks",
        Rollback,
        "rollback",
        RollbackRecord,
        "rollbacks",
        ("number", "change_id", "incident_id", "requested_by", "status", "approved_by"),
        ("executed_at",),
    ),
    Collection(
        "/approvals",
        Approval,
        "approval",
        ApprovalRecord,
        "approvals",
        (
            "reference_type",
            "reference_id",
            "requested_action",
            "requested_by",
            "approver",
            "status",
            "incident_id",
            "problem_id",
        ),
        ("requested_at",),
    ),
    Collection(
        "/bridges",
        Bridge,
        "bridge",
        BridgeRecord,
        "bridges",
        ("number", "incident_id", "bridge_type", "host", "status"),
        ("start_time", "end_time"),
    ),
    Collection(
        "/root-cause-analyses",
        RootCauseAnalysis,
        "rca",
        RootCauseAnalysisRecord,
        "root-cause analyses",
        (
            "number",
            "incident_id",
            "problem_id",
            "assigned_to",
            "analysis_method",
            "status",
            "approved_by",
        ),
        ("due_date",),
    ),
    Collection(
        "/post-incident-reviews",
        PostIncidentReview,
        "pir",
        PostIncidentReviewRecord,
        "post-incident reviews",
        ("incident_id", "facilitator", "status"),
        ("scheduled_date",),
    ),
    Collection(
        "/incident-reports",
        IncidentReport,
        "report",
        IncidentReportRecord,
        "incident reports",
        ("number", "incident_id", "report_type", "status"),
    ),
    Collection(
        "/escalations",
        Escalation,
        "escalation",
        EscalationRecord,
        "escalations",
        ("incident_id", "escalated_from", "escalated_to", "status"),
    ),
    Collection(
        "/work-notes",
        WorkNote,
        "work_note",
        WorkNoteRecord,
        "work notes",
        ("incident_id", "problem_id", "note_type"),
    ),
    Collection(
        "/communications",
        Communication,
        "communication",
        CommunicationRecord,
        "communications",
        (
            "incident_id",
            "problem_id",
            "communication_type",
            "recipient_type",
            "sender",
            "recipient",
            "delivery_method",
            "delivery_status",
        ),
    ),
    Collection(
        "/attachments",
        Attachment,
        "attachment",
        AttachmentRecord,
        "attachments",
        ("reference_type", "reference_id", "incident_id", "file_type", "sha256"),
    ),
]
BY_TYPE = {c.aggregate.__name__: c for c in COLLECTIONS}


def location(record_type: str, record_id: str) -> str | None:
    """Where a record of this type is read (a created record's `Location`)."""
    if record_type == "Incident":
        return f"/incidents/{record_id}"
    found = BY_TYPE.get(record_type)
    return f"{found.path}/{record_id}" if found else None


def _may_read(user: CurrentUser) -> None:
    """A client contact reads only their client's incidents (and themselves, at /me)."""
    if user.role == Role.CLIENT_CONTACT:
        raise Forbidden("role.forbidden", "A client contact may read only their incidents.")


def _is_user_field(model: type[BaseModel], name: str) -> bool:
    return UUID in (
        model.model_fields[name].annotation,
        *get_args(model.model_fields[name].annotation),
    )


def _filter_value(collection: Collection, name: str, value: str, user: CurrentUser) -> Any:
    if "\x00" in value:
        raise InvalidInput("query.invalid", f"{name} cannot contain a NUL character.")
    if _is_user_field(collection.model, name):
        if value == "me":
            return str(user.id)
        try:
            return str(UUID(value))
        except ValueError:
            raise InvalidInput("query.invalid", f"{name} must be a UUID (or `me`).") from None
    return value


def _state(collection: Collection, found: Aggregate) -> dict[str, Any]:
    return collection.model.model_validate(found.state()).model_dump(mode="json")


AsOfVersion = Annotated[
    int | None, Query(ge=1, description="The record as it was at this version.")
]
AsOf = Annotated[
    datetime | None,
    Query(
        description="The record as it was at this moment (ISO 8601), rebuilt from its events: "
        "by default from the events recorded by then; with `as_of_basis=occurred`, from its "
        "events (in order) up to the first that occurred after it."
    ),
]
AsOfBasis = Annotated[
    Literal["recorded", "occurred"],
    Query(
        description="recorded: when the ledger stored each event (what the ledger showed at "
        "that moment); occurred: when each step happened in the world (backdated steps count "
        "from when they happened)."
    ),
]


def as_of_state(
    service: ServiceDep,
    found: A,
    what: str,
    version: int | None,
    moment: datetime | None,
    basis: str,
) -> A:
    """The record at a version, or as of a moment, rebuilt from its own events (never a view)."""
    if version is not None and moment is not None:
        raise InvalidInput("query.invalid", "Give as_of_version or as_of, not both.")
    if moment is not None:
        if moment.tzinfo is None:
            raise InvalidInput("query.invalid", "as_of must carry its time zone (e.g. Z).")
        version = 0
        for event in cast(Iterable[DomainEvent], service.ledger.events.get(found.id)):
            when = event.timestamp if basis == "recorded" else event.meta.occurred_at
            if when > moment:
                break
            version = event.originator_version
        if version == 0:
            raise NotFound(
                f"{what}.not_found_as_of",
                f"The record did not exist yet at {moment.isoformat()} ({basis} time).",
            )
    if version is None or version == found.version:
        return found
    if version > found.version:
        raise NotFound(
            f"{what}.version_not_found",
            f"The record is at version {found.version}; there is no version {version} yet.",
            current_version=found.version,
        )
    return cast(A, service.ledger.repository.get(found.id, version=version))


class RecordStep(BaseModel):
    """One event of a record, and the record's state after it."""

    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    actor: UUID | None
    command: str
    command_id: UUID
    changes: dict[str, Any] = Field(description="What it changed: field → [before, after].")
    state: dict[str, Any] = Field(description="The record after this event.")


def step_through(service: ServiceDep, record_id: UUID) -> list[dict[str, Any]]:
    """Every event of one record, in order, each with the state it left (from the events)."""
    aggregate: Any = None
    steps = []
    for event in cast(Iterable[DomainEvent], service.ledger.events.get(record_id)):
        aggregate = event.mutate(aggregate)  # type: ignore[attr-defined]
        steps.append(
            {
                "version": event.originator_version,
                "type": type(event).__qualname__,
                "occurred_at": event.meta.occurred_at,
                "recorded_at": event.timestamp,
                "actor": event.meta.actor,
                "command": event.meta.command,
                "command_id": event.meta.command_id,
                "changes": changes_of(event),
                "state": aggregate.state(),
            }
        )
    return steps


def get_steps(collection: Collection) -> Any:
    def endpoint(reading_service: ServiceDep, reader: CurrentUser, **path: str) -> Any:
        ref = path[collection.what]
        if not (collection.aggregate is User and ref == str(reader.id)):
            _may_read(reader)
        found: Aggregate = reading_service.ledger.find(collection.aggregate, ref, collection.what)
        return step_through(reading_service, found.id)

    base = inspect.signature(endpoint)
    endpoint.__signature__ = base.replace(  # type: ignore[attr-defined]
        parameters=[
            inspect.Parameter(
                collection.what,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[str, Path(description="Its id, or its number.")],
            ),
            *(p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD),
        ]
    )
    return endpoint


def get_one(collection: Collection) -> Any:
    def endpoint(
        reading_service: ServiceDep,
        reader: CurrentUser,
        http_response: Response,
        as_of_version: AsOfVersion = None,
        as_of: AsOf = None,
        as_of_basis: AsOfBasis = "recorded",
        **path: str,
    ) -> dict[str, Any]:
        ref = path[collection.what]
        if not (collection.aggregate is User and ref == str(reader.id)):
            _may_read(reader)
        found: Aggregate = reading_service.ledger.find(collection.aggregate, ref, collection.what)
        found = as_of_state(
            reading_service, found, collection.what, as_of_version, as_of, as_of_basis
        )
        http_response.headers["ETag"] = f'"{found.version}"'
        return _state(collection, found)

    base = inspect.signature(endpoint)
    params = [
        inspect.Parameter(
            collection.what,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, Path(description="Its id, or its number if it has one.")],
        ),
        *(p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD),
    ]
    endpoint.__signature__ = base.replace(parameters=params)  # type: ignore[attr-defined]
    return endpoint


def get_many(collection: Collection) -> Any:
    page_model = create_model(
        f"{collection.aggregate.__name__}Page",
        items=(list[collection.model], ...),  # type: ignore[name-defined]
        next_cursor=(
            str | None,
            Field(description="Pass as `cursor` for the next page; null: the last page."),
        ),
    )

    def endpoint(
        reading_service: ServiceDep,
        reader: CurrentUser,
        http_response: Response,
        wanted_position: MinPosition,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
        order: Literal["asc", "desc"] = "desc",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
        **given: Any,
    ) -> dict[str, Any]:
        _may_read(reader)
        contains = {
            name: _filter_value(collection, name, given[name], reader)
            for name in collection.filters
            if given.get(name) is not None
        }
        ranges = {
            "created_at": (created_from, created_to),
            "updated_at": (updated_from, updated_to),
            **{t: (given.get(f"{t}_from"), given.get(f"{t}_to")) for t in collection.times},
        }
        try:
            with reading_service.read_view("records", wanted_position) as (curs, position):
                rows, next_cursor = list_records(
                    curs,
                    collection.aggregate.__name__,
                    contains=contains,
                    ranges=ranges,
                    descending=order == "desc",
                    limit=limit,
                    cursor=cursor,
                )
        except BadQuery as exc:
            raise InvalidInput("query.invalid", str(exc)) from None
        items = []
        for row in rows:
            found = reading_service.ledger.cached_or_none(row["id"])
            if found is None or found.version != row["version"]:
                found = reading_service.ledger.repository.get(row["id"], version=row["version"])
            items.append(_state(collection, found))
        http_response.headers[VIEW_POSITION] = str(position)
        return {"items": items, "next_cursor": next_cursor}

    base = inspect.signature(endpoint)
    params = [p for p in base.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    for name in collection.filters:
        hint = " (a user's id, or `me`)" if _is_user_field(collection.model, name) else ""
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[
                    str | None, Query(max_length=300, description=f"Exact match{hint}.")
                ],
                default=None,
            )
        )
    for name in collection.times:
        for end in ("from", "to"):
            params.append(
                inspect.Parameter(
                    f"{name}_{end}",
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=datetime | None,
                    default=None,
                )
            )
    endpoint.__signature__ = base.replace(  # type: ignore[attr-defined]
        parameters=sorted(params, key=lambda p: p.kind)
    )
    endpoint.__annotations__["return"] = page_model
    return endpoint, page_model


def records_router() -> APIRouter:
    router = APIRouter()
    for collection in COLLECTIONS:
        listing, page_model = get_many(collection)
        router.add_api_route(
            collection.path,
            listing,
            methods=["GET"],
            response_model=page_model,
            tags=[collection.tag],
            summary=f"List {collection.tag} with filters and pagination",
            name=f"list_{collection.what}s",
            responses=VIEW_RESPONSES,
        )
        router.add_api_route(
            f"{collection.path}/{{{collection.what}}}",
            get_one(collection),
            methods=["GET"],
            response_model=collection.model,
            tags=[collection.tag],
            summary=f"One {collection.what.replace('_', ' ')}: its current state (or as of a "
            "version)",
            name=f"get_{collection.what}",
            responses=VIEW_RESPONSES,
        )
        router.add_api_route(
            f"{collection.path}/{{{collection.what}}}/events",
            get_steps(collection),
            methods=["GET"],
            response_model=list[RecordStep],
            tags=[collection.tag],
            summary=f"Step through one {collection.what.replace('_', ' ')}'s events, each with "
            "the state it left",
            name=f"step_{collection.what}",
            responses=VIEW_RESPONSES,
        )
    return router
