"""Command routes, generated from one table: path, method, command class. Each route parses the
body into the command, runs it through the ledger and answers with the record's new version."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request, Response
from pydantic import BaseModel, ConfigDict, create_model
from starlette.concurrency import run_in_threadpool

from api.collections import location
from api.deps import CommandActorDep, ServiceDep
from api.errors import ERROR_RESPONSES, ErrorBody, PreconditionFailed
from domain.api_key import IssueApiKey, RevokeApiKey
from domain.approval import DecideApproval, RequestApproval
from domain.attachment import AddAttachment
from domain.base import Command, RecordCommand
from domain.bridge import AddBridgeParticipants, CloseBridge, OpenBridge, RemoveBridgeParticipant
from domain.business_calendar import AssignBusinessCalendar, RecordBusinessCalendar
from domain.change import RequestChange, UpdateChangeStatus
from domain.client import RegisterClient, UpdateClient
from domain.communication import SendCommunication
from domain.configuration_item import (
    AssignCIToClient,
    RegisterConfigurationItem,
    UnassignCIFromClient,
    UpdateConfigurationItem,
)
from domain.errors import ConcurrencyConflict
from domain.escalation import Escalate, UpdateEscalationStatus
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    LinkCIToIncident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.pir import SchedulePostIncidentReview, UpdatePostIncidentReview
from domain.problem import LinkCIToProblem, LinkIncidentToProblem, OpenProblem, UpdateProblem
from domain.rca import StartRootCauseAnalysis, UpdateRootCauseAnalysis
from domain.report import GenerateIncidentReport, UpdateIncidentReport
from domain.rollback import RequestRollback, UpdateRollbackStatus
from domain.sla import RecordSLAAgreement, UpdateSLAAgreement
from domain.sla_policy import RecordSLAPolicy
from domain.user import DeactivateUser, ReactivateUser, RegisterUser, UpdateUser
from domain.work_note import AddWorkNote, UpdateWorkNote


class CommandResult(BaseModel):
    """The record a command created or changed: its state as `GET` on it shows it (every field
    of the record, at this version), plus the command's `position` in the ledger, `extra` facts
    about its follow-ups, and `key` (a new API key, shown once)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str
    version: int
    number: str | None = None
    status: str | None = None
    severity: str | None = None
    position: int | None = None
    key: str | None = None
    extra: dict[str, Any] = {}


@dataclass(frozen=True)
class CommandRoute:
    method: str
    path: str
    command: type[Command]
    tag: str
    status_code: int = 200
    fixed: dict[str, Any] = field(default_factory=dict)
    """Command fields set by the route itself (e.g. an attachment's reference_type)."""
    path_fields: dict[str, str] = field(default_factory=dict)
    """Path parameters named differently from the command field they fill."""


ROUTES = [
    CommandRoute("POST", "/users", RegisterUser, "users", 201),
    CommandRoute("PATCH", "/users/{user}", UpdateUser, "users"),
    CommandRoute("POST", "/users/{user}/deactivate", DeactivateUser, "users"),
    CommandRoute("POST", "/users/{user}/reactivate", ReactivateUser, "users"),
    CommandRoute("POST", "/users/{user}/api-keys", IssueApiKey, "users", 201),
    CommandRoute("DELETE", "/users/{user}/api-keys/{api_key}", RevokeApiKey, "users"),
    CommandRoute("POST", "/clients", RegisterClient, "clients", 201),
    CommandRoute("PATCH", "/clients/{client}", UpdateClient, "clients"),
    CommandRoute(
        "POST", "/configuration-items", RegisterConfigurationItem, "configuration items", 201
    ),
    CommandRoute(
        "PATCH",
        "/configuration-items/{configuration_item}",
        UpdateConfigurationItem,
        "configuration items",
    ),
    CommandRoute(
        "POST",
        "/configuration-items/{configuration_item}/clients",
        AssignCIToClient,
        "configuration items",
    ),
    CommandRoute(
        "DELETE",
        "/configuration-items/{configuration_item}/clients/{client}",
        UnassignCIFromClient,
        "configuration items",
    ),
    CommandRoute("POST", "/incidents", OpenIncident, "incidents", 201),
    CommandRoute("PATCH", "/incidents/{incident}", UpdateIncidentDetails, "incidents"),
    CommandRoute("POST", "/incidents/{incident}/acknowledge", AcknowledgeIncident, "incidents"),
    CommandRoute("POST", "/incidents/{incident}/assign", AssignIncident, "incidents"),
    CommandRoute("POST", "/incidents/{incident}/status", ChangeIncidentStatus, "incidents"),
    CommandRoute(
        "POST", "/incidents/{incident}/configuration-items", LinkCIToIncident, "incidents"
    ),
    CommandRoute("POST", "/incidents/{incident}/escalations", Escalate, "escalations", 201),
    CommandRoute("POST", "/escalations/{escalation}/status", UpdateEscalationStatus, "escalations"),
    CommandRoute("POST", "/incidents/{incident}/work-notes", AddWorkNote, "work notes", 201),
    CommandRoute("PATCH", "/work-notes/{work_note}", UpdateWorkNote, "work notes"),
    CommandRoute(
        "POST", "/incidents/{incident}/communications", SendCommunication, "communications", 201
    ),
    CommandRoute(
        "POST",
        "/incidents/{incident}/attachments",
        AddAttachment,
        "attachments",
        201,
        fixed={"reference_type": "incident"},
        path_fields={"incident": "reference"},
    ),
    CommandRoute("POST", "/attachments", AddAttachment, "attachments", 201),
    # Problems (SOP 6-9) and the records on them
    CommandRoute("POST", "/problems", OpenProblem, "problems", 201),
    CommandRoute("PATCH", "/problems/{problem}", UpdateProblem, "problems"),
    CommandRoute("POST", "/problems/{problem}/incidents", LinkIncidentToProblem, "problems"),
    CommandRoute("POST", "/problems/{problem}/configuration-items", LinkCIToProblem, "problems"),
    CommandRoute("POST", "/problems/{problem}/work-notes", AddWorkNote, "work notes", 201),
    CommandRoute(
        "POST", "/problems/{problem}/communications", SendCommunication, "communications", 201
    ),
    CommandRoute(
        "POST",
        "/problems/{problem}/attachments",
        AddAttachment,
        "attachments",
        201,
        fixed={"reference_type": "problem"},
        path_fields={"problem": "reference"},
    ),
    # --- changes, rollbacks and approvals (SOP 12, 13, 19, 20) ---
    CommandRoute("POST", "/changes", RequestChange, "changes", 201),
    CommandRoute("POST", "/changes/{change}/status", UpdateChangeStatus, "changes"),
    CommandRoute("POST", "/changes/{change}/rollbacks", RequestRollback, "rollbacks", 201),
    CommandRoute("POST", "/rollbacks/{rollback}/status", UpdateRollbackStatus, "rollbacks"),
    CommandRoute("POST", "/approvals", RequestApproval, "approvals", 201),
    CommandRoute("POST", "/approvals/{approval}/decision", DecideApproval, "approvals"),
    CommandRoute("POST", "/incidents/{incident}/bridges", OpenBridge, "bridges", 201),
    CommandRoute("POST", "/bridges/{bridge}/participants", AddBridgeParticipants, "bridges"),
    CommandRoute(
        "POST", "/bridges/{bridge}/participants/{user}/leave", RemoveBridgeParticipant, "bridges"
    ),
    CommandRoute("POST", "/bridges/{bridge}/close", CloseBridge, "bridges"),
    CommandRoute(
        "POST", "/root-cause-analyses", StartRootCauseAnalysis, "root-cause analyses", 201
    ),
    CommandRoute(
        "PATCH", "/root-cause-analyses/{rca}", UpdateRootCauseAnalysis, "root-cause analyses"
    ),
    CommandRoute(
        "POST",
        "/post-incident-reviews",
        SchedulePostIncidentReview,
        "post-incident reviews",
        201,
    ),
    CommandRoute(
        "PATCH",
        "/post-incident-reviews/{pir}",
        UpdatePostIncidentReview,
        "post-incident reviews",
    ),
    CommandRoute("POST", "/incident-reports", GenerateIncidentReport, "incident reports", 201),
    CommandRoute("PATCH", "/incident-reports/{report}", UpdateIncidentReport, "incident reports"),
    CommandRoute("POST", "/sla-agreements", RecordSLAAgreement, "sla", 201),
    CommandRoute("PATCH", "/sla-agreements/{agreement}", UpdateSLAAgreement, "sla"),
    CommandRoute("POST", "/sla-policies", RecordSLAPolicy, "sla", 201),
    CommandRoute("POST", "/business-calendars", RecordBusinessCalendar, "sla", 201),
    CommandRoute("POST", "/clients/{client}/business-calendar", AssignBusinessCalendar, "sla"),
]


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def body_model(route: CommandRoute) -> type[BaseModel]:
    """The command's fields less those the path or the route fills."""
    params = _path_params(route.path)
    taken = {route.path_fields.get(p, p) for p in params} | set(route.fixed)
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in route.command.model_fields.items()
        if name not in taken
    }
    return create_model(
        f"{route.command.__name__}Body",
        __config__=ConfigDict(extra="forbid", title=route.command.__name__),
        __doc__=route.command.__doc__,
        **fields,
    )


def request_hash(route: CommandRoute, path: dict[str, Any], raw: bytes) -> str:
    """What an idempotency key promises: the same route, path and body, every field of it
    (secrets included), whatever the key order or spacing of the JSON."""
    body = json.loads(raw) if raw.strip() else None
    text = json.dumps([route.method, route.path, path, body], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _if_match(value: str | None) -> int | None:
    """The version an `If-Match: "N"` header names (the ETag the API sent)."""
    if value is None:
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise PreconditionFailed(
            "precondition.invalid",
            f'If-Match must be an ETag this API sent, like "3"; got {value}.',
        )
    return int(tag)


def parse_command(route: CommandRoute, path: dict[str, str], raw: bytes) -> Command:
    """The command from the path and the raw JSON body, validated strictly (JSON types only:
    `"5"` is not 5, `"yes"` is not true). FastAPI has already checked the body's shape."""
    data = json.loads(raw) if raw.strip() else None
    if data is None:  # no body, or JSON `null` where the body is optional: no fields given
        data = {}
    data |= {route.path_fields.get(k, k): v for k, v in path.items()} | route.fixed
    return route.command.model_validate_json(json.dumps(data), strict=True)


def make_endpoint(route: CommandRoute) -> Any:
    model = body_model(route)
    required = any(info.is_required() for info in model.model_fields.values())

    async def endpoint(
        request: Request,
        response: Response,
        acting_service: ServiceDep,
        acting: CommandActorDep,
        body: Any = None,
        idempotency_key: str | None = None,
        if_match: str | None = None,
        **path: str,
    ) -> CommandResult:
        raw = await request.body()
        command = parse_command(route, path, raw)
        expected = _if_match(if_match)
        if expected is not None and isinstance(command, RecordCommand):
            command = command.model_copy(update={"expected_version": expected})
        key = f"{acting.user.id}:{idempotency_key}" if idempotency_key else None
        try:
            outcome = await run_in_threadpool(
                acting_service.execute,
                command,
                acting.user.id,
                idempotency_key=key,
                request_hash=request_hash(route, path, raw) if key else None,
                api_key=acting.api_key,
            )
        except ConcurrencyConflict as exc:
            if expected is not None and exc.code == "concurrency.version_mismatch":
                raise PreconditionFailed(
                    "precondition.failed", exc.message, **exc.details
                ) from None
            raise
        response.headers["ETag"] = f'"{outcome.version}"'
        where = location(outcome.type, str(outcome.id))
        if route.status_code == 201 and where is not None:
            response.headers["Location"] = where
        if outcome.position is not None:
            response.headers["Ledger-Position"] = str(outcome.position)
        if outcome.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return CommandResult(
            **outcome.state
            | {
                "id": str(outcome.id),
                "type": outcome.type,
                "version": outcome.version,
                "number": outcome.number,
                "status": outcome.status,
                "severity": outcome.severity,
                "position": outcome.position,
                "key": outcome.secret,
                "extra": outcome.extra,
            }
        )

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("response", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Response),
        inspect.Parameter("acting_service", inspect.Parameter.KEYWORD_ONLY, annotation=ServiceDep),
        inspect.Parameter("acting", inspect.Parameter.KEYWORD_ONLY, annotation=CommandActorDep),
        *(
            inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=str)
            for p in _path_params(route.path)
        ),
        inspect.Parameter(
            "body",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[model, Body()] if required else Annotated[model | None, Body()],
            **({} if required else {"default": None}),
        ),
        inspect.Parameter(
            "idempotency_key",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                str | None,
                Header(
                    alias="Idempotency-Key",
                    description="Retry safely: same key and body, "
                    "same answer, nothing appended twice.",
                ),
            ],
            default=None,
        ),
        inspect.Parameter(
            "if_match",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                str | None,
                Header(
                    alias="If-Match",
                    description='Only if the record is at this version (its ETag, e.g. "3"); '
                    "else 412 precondition.failed.",
                ),
            ],
            default=None,
        ),
    ]
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = route.command.__name__
    return endpoint


def command_router() -> APIRouter:
    router = APIRouter()
    for route in ROUTES:
        router.add_api_route(
            route.path,
            make_endpoint(route),
            methods=[route.method],
            status_code=route.status_code,
            response_model=CommandResult,
            summary=(route.command.__doc__ or route.command.__name__).strip().splitlines()[0],
            tags=[route.tag],
            name=route.command.__name__,
            responses={
                **ERROR_RESPONSES,
                412: {"model": ErrorBody, "description": "If-Match named another version."},
            },
        )
    return router
