"""Shared by the HTTP contract tests: one minimal valid body per command class, real records to
fill paths and references, the request a route answers, and a walk over each route's body schema
(every leaf field with its JSON type and maximum length)."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from fastapi.testclient import TestClient

from api.routes import ROUTES, CommandRoute, body_model
from domain.api_key import IssueApiKey, RevokeApiKey
from domain.attachment import AddAttachment
from domain.base import Command, Role
from domain.business_calendar import AssignBusinessCalendar, RecordBusinessCalendar
from domain.client import RegisterClient, UpdateClient
from domain.communication import SendCommunication
from domain.configuration_item import (
    AssignCIToClient,
    RegisterConfigurationItem,
    UnassignCIFromClient,
    UpdateConfigurationItem,
)
from domain.escalation import Escalate, UpdateEscalationStatus
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    LinkCIToIncident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.sla import RecordSLAAgreement, UpdateSLAAgreement
from domain.sla_policy import BUSINESS_HOURS, ROUND_THE_CLOCK, RecordSLAPolicy
from domain.user import DeactivateUser, ReactivateUser, RegisterUser, UpdateUser
from domain.work_note import AddWorkNote, UpdateWorkNote
from tests.conftest import Actor

ROUTE_IDS = [f"{route.method} {route.path}" for route in ROUTES]
WRITERS = (
    Role.SYSTEM_ADMINISTRATOR,
    Role.INCIDENT_MANAGER,
    Role.TECHNICAL_SUPPORT,
    Role.ACCOUNT_MANAGER,
)


@dataclass(frozen=True)
class Records:
    """One actor per role and one real record of each kind a path or a body names."""

    actors: dict[Role, Actor]
    user: str
    client: str
    configuration_item: str
    incident: str  # its number, as people type it
    detection_time: datetime
    escalation: str
    work_note: str
    api_key: str  # the key id of a key issued to `user`
    agreement: str  # an inactive SLA agreement of `client`
    business_calendar: str

    def allowed(self, route: CommandRoute) -> Actor:
        """An actor whose role may issue the route's command."""
        return next(self.actors[r] for r in WRITERS if r in route.command.roles)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_records(client: TestClient, make_user: Callable[..., Actor], admin: Actor) -> Records:
    """Create the records through the API (once per test module)."""
    client_id = _created(client.post("/clients", json=_client_body(), headers=admin.headers))["id"]
    actors = {
        role: make_user(role.value, client_id=client_id)
        if role == Role.CLIENT_CONTACT
        else make_user(role.value)
        for role in Role
    }
    manager = actors[Role.INCIDENT_MANAGER]
    user = make_user("analyst").id
    ci = _created(client.post("/configuration-items", json=_ci_body(user), headers=admin.headers))[
        "id"
    ]
    detected = datetime.now(UTC) - timedelta(days=2)
    incident = _created(
        client.post(
            "/incidents",
            json=_incident_body(manager.id, detected.isoformat()),
            headers=manager.headers,
        )
    )["number"]
    escalation = _created(
        client.post(
            f"/incidents/{incident}/escalations",
            json={"escalated_to": user, "reason": "needs a decision"},
            headers=manager.headers,
        )
    )["id"]
    note = _created(
        client.post(
            f"/incidents/{incident}/work-notes",
            json={"note_type": "progress_update", "note_text": "looking"},
            headers=manager.headers,
        )
    )["id"]
    api_key = _created(client.post(f"/users/{user}/api-keys", json={}, headers=admin.headers))[
        "extra"
    ]["key_id"]
    agreement = _created(
        client.post(
            "/sla-agreements",
            json={**_agreement_body(client_id), "status": "inactive"},
            headers=admin.headers,
        )
    )["id"]
    calendar = _created(
        client.post("/business-calendars", json=_calendar_body(), headers=admin.headers)
    )["id"]
    return Records(
        actors,
        user,
        client_id,
        ci,
        incident,
        detected,
        escalation,
        note,
        api_key,
        agreement,
        calendar,
    )


def _agreement_body(client_id: str) -> dict[str, Any]:
    return {
        "client": client_id,
        "tier": "standard",
        "support_coverage": "24x7",
        "effective_date": "2025-01-01",
    }


def _calendar_body() -> dict[str, Any]:
    return {
        "name": "Office hours",
        "time_zone": "Europe/Madrid",
        "working_hours": {"monday": ["09:00-14:00", "15:00-18:00"], "friday": ["08:00-15:00"]},
        "holidays": ["2025-12-25"],
    }


def _client_body() -> dict[str, Any]:
    return {
        "client_name": f"Contract {uuid4().hex[:6]}",
        "registration_number": uuid4().hex[:10],
        "company_type": "smb",
        "support_coverage": "business_hours",
        "preferred_communication": "email",
    }


def _ci_body(owner: str) -> dict[str, Any]:
    return {
        "ci_name": f"ci-{uuid4().hex[:8]}",
        "ci_type": "service",
        "environment": "production",
        "responsible_owner": owner,
    }


def _incident_body(reporter: str, detection_time: str) -> dict[str, Any]:
    return {
        "title": "Search is slow",
        "description": "p95 above 2s",
        "category": "software",
        "impact": "low",
        "urgency": "low",
        "reported_by": reporter,
        "detection_time": detection_time,
        "severity": "P4",
    }


def valid_body(command: type[Command], rec: Records) -> dict[str, Any]:
    """A minimal well-formed command of this class, path fields included."""
    manager = rec.actors[Role.INCIDENT_MANAGER].id
    incident = {"incident": rec.incident}
    bodies: dict[type[Command], dict[str, Any]] = {
        RegisterUser: {
            "first_name": "Ada",
            "last_name": "Byron",
            "email": f"ada.{uuid4().hex[:8]}@example.test",
            "role": "analyst",
            "timezone": "Europe/London",
        },
        UpdateUser: {"user": rec.user, "first_name": "Renamed"},
        DeactivateUser: {"user": rec.user},
        ReactivateUser: {"user": rec.user},
        IssueApiKey: {"user": rec.user, "label": "laptop"},
        RevokeApiKey: {"user": rec.user, "api_key": rec.api_key},
        RegisterClient: _client_body(),
        UpdateClient: {"client": rec.client, "client_name": "Renamed"},
        RegisterConfigurationItem: _ci_body(rec.user),
        UpdateConfigurationItem: {"configuration_item": rec.configuration_item, "ci_name": "x"},
        AssignCIToClient: {"configuration_item": rec.configuration_item, "client": rec.client},
        UnassignCIFromClient: {"configuration_item": rec.configuration_item, "client": rec.client},
        OpenIncident: _incident_body(
            manager, (rec.detection_time + timedelta(hours=1)).isoformat()
        ),
        UpdateIncidentDetails: incident | {"title": "Renamed"},
        AcknowledgeIncident: incident,
        AssignIncident: incident | {"assigned_to": manager},
        ChangeIncidentStatus: incident | {"status": "in_progress"},
        LinkCIToIncident: incident | {"configuration_item": rec.configuration_item},
        Escalate: incident | {"escalated_to": rec.user, "reason": "needs budget"},
        UpdateEscalationStatus: {"escalation": rec.escalation, "status": "approved"},
        AddWorkNote: incident | {"note_type": "troubleshooting", "note_text": "read the logs"},
        UpdateWorkNote: {"work_note": rec.work_note, "note_text": "corrected"},
        SendCommunication: incident
        | {
            "communication_type": "status_update",
            "recipient_type": "client",
            "delivery_method": "email",
            "message_content": "We are on it.",
        },
        RecordSLAAgreement: _agreement_body(rec.client),
        UpdateSLAAgreement: {"agreement": rec.agreement, "tier": "premium"},
        RecordSLAPolicy: {
            "name": "Stricter",
            "round_the_clock": ROUND_THE_CLOCK.model_dump(),
            "business_hours": BUSINESS_HOURS.model_dump(),
        },
        RecordBusinessCalendar: _calendar_body(),
        AssignBusinessCalendar: {"client": rec.client, "business_calendar": rec.business_calendar},
        AddAttachment: {
            "reference_type": "incident",
            "reference": rec.incident,
            "file_name": "trace.txt",
            "file_url": "https://files.example.test/trace.txt",
            "file_type": "text/plain",
            "file_size_bytes": 12,
        },
    }
    return dict(bodies[command])


def path_params(route: CommandRoute) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(route.path) if name]


def request_for(route: CommandRoute, rec: Records, **changes: Any) -> tuple[str, dict[str, Any]]:
    """The route's URL (path filled from the command's fields) and its JSON body, with changes."""
    full = valid_body(route.command, rec)
    url = route.path.format(**{p: full[route.path_fields.get(p, p)] for p in path_params(route)})
    fields = body_model(route).model_fields
    return url, {k: v for k, v in full.items() if k in fields} | changes


def send(
    client: TestClient,
    route: CommandRoute,
    url: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return client.request(route.method, url, json=body, headers=headers)


def send_raw(
    client: TestClient, route: CommandRoute, url: str, raw: str, headers: dict[str, str]
) -> httpx.Response:
    """Send JSON text as written (e.g. with a `\\ud800` escape no encoder would produce)."""
    return client.request(
        route.method,
        url,
        content=raw.encode(),
        headers={**headers, "Content-Type": "application/json"},
    )


# --- the body schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One scalar field of a body, nested fields joined by dots as in `errors[].field`."""

    field: str
    type: str  # JSON type: string, integer or boolean
    format: str | None = None
    max_length: int | None = None
    enum: bool = False

    @property
    def free_text(self) -> bool:
        return self.type == "string" and self.format is None and not self.enum


def leaves(route: CommandRoute) -> list[Leaf]:
    schema = body_model(route).model_json_schema()
    found = {leaf.field: leaf for leaf in _walk(schema, schema.get("$defs", {}), ())}
    return list(found.values())


def _walk(schema: dict[str, Any], defs: dict[str, Any], path: tuple[str, ...]) -> Iterator[Leaf]:
    if "$ref" in schema:
        schema = {**defs[schema["$ref"].rsplit("/", 1)[-1]], **schema}
    for branch in schema.get("anyOf", ()):
        yield from _walk(branch, defs, path)
    kind = schema.get("type")
    if kind == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from _walk(sub, defs, (*path, name))
    elif kind == "array":
        yield from _walk(schema["items"], defs, (*path, "0"))
    elif kind in ("string", "integer", "boolean"):
        yield Leaf(
            ".".join(path),
            kind,
            schema.get("format"),
            schema.get("maxLength"),
            "enum" in schema,
        )


def with_value(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """A copy of the body with `value` at a dotted field (`assessment.x`, `items.0`)."""
    head, _, rest = field.partition(".")
    if not rest:
        return body | {head: value}
    if rest == "0":
        return body | {head: [value]}
    inner = body.get(head)
    return body | {head: with_value(inner if isinstance(inner, dict) else {}, rest, value)}


def json_with_escape(body: dict[str, Any], field: str, escape: str) -> str:
    """The body as JSON text with the raw escape sequence (e.g. `\\ud800`) inside `field`."""
    marker = "MARKER" + uuid4().hex
    text = json.dumps(with_value(body, field, f"a{marker}b"))
    return text.replace(marker, escape)
