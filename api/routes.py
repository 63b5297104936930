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

from api.deps import CurrentUser, ServiceDep
from domain.base import Command
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    LinkCIToIncident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.parties import (
    AssignCIToClient,
    DeactivateUser,
    IssueApiKey,
    ReactivateUser,
    RegisterClient,
    RegisterConfigurationItem,
    RegisterUser,
    UnassignCIFromClient,
    UpdateClient,
    UpdateConfigurationItem,
    UpdateUser,
)
from domain.records import (
    AddAttachment,
    AddWorkNote,
    Escalate,
    SendCommunication,
    UpdateEscalationStatus,
    UpdateWorkNote,
)


class CommandResult(BaseModel):
    """The record a command created or changed."""

    id: str
    type: str
    version: int
    number: str | None = None
    status: str | None = None
    severity: str | None = None
    key: str | None = None
    extra: dict[str, Any] = {}
    position: int | None = None
    """The ledger position of the command's last event (also the `Ledger-Position` header):
    send it as `Ledger-Min-Position` to read a view that includes this command."""


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


def request_hash(route: CommandRoute, path: dict[str, Any], body: BaseModel | None) -> str:
    data = body.model_dump(mode="json", exclude_unset=True) if body is not None else {}
    text = json.dumps([route.method, route.path, path, data], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def make_endpoint(route: CommandRoute) -> Any:
    model = body_model(route)
    required = any(info.is_required() for info in model.model_fields.values())

    def endpoint(
        request: Request,
        response: Response,
        acting_service: ServiceDep,
        acting_user: CurrentUser,
        body: Any = None,
        idempotency_key: str | None = None,
        **path: str,
    ) -> CommandResult:
        data = {route.path_fields.get(k, k): v for k, v in path.items()} | route.fixed
        if body is not None:
            data |= body.model_dump(exclude_unset=True)
        command = route.command.model_validate(data)
        key = f"{acting_user.id}:{idempotency_key}" if idempotency_key else None
        outcome = acting_service.execute(
            command,
            acting_user.id,
            idempotency_key=key,
            request_hash=request_hash(route, path, body) if key else None,
        )
        response.headers["ETag"] = f'"{outcome.version}"'
        if outcome.position is not None:
            response.headers["Ledger-Position"] = str(outcome.position)
        return CommandResult(
            id=str(outcome.id),
            type=outcome.type,
            version=outcome.version,
            number=outcome.number,
            status=outcome.status,
            severity=outcome.severity,
            key=outcome.secret,
            extra=outcome.extra,
            position=outcome.position,
        )

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("response", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Response),
        inspect.Parameter("acting_service", inspect.Parameter.KEYWORD_ONLY, annotation=ServiceDep),
        inspect.Parameter("acting_user", inspect.Parameter.KEYWORD_ONLY, annotation=CurrentUser),
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
        )
    return router
