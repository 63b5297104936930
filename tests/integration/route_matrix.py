"""Shared by the HTTP contract tests: one minimal valid body per command class, real records to
fill paths and references, the request a route answers, and a walk over each route's body schema
(every leaf field with its JSON type and maximum length)."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
from fastapi.testclient import TestClient

from api.routes import ROUTES, CommandRoute, body_model
from domain.api_key import IssueApiKey, RevokeApiKey
from domain.approval import DecideApproval, RequestApproval
from domain.attachment import AddAttachment
from domain.base import Command, Role
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
    problem: str  # its number
    change: str  # a requested change's number
    implemented_change: str
    rollback: str  # a requested rollback's number
    approval: str  # a pending approval request's id
    agreement: str  # an inactive SLA agreement of `client`
    business_calendar: str
    more: dict[str, str] = field(default_factory=dict)
    """Records of the later procedures, by kind (bridge, rca, pir, report, ...)."""

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
    problem = _created(
        client.post(
            "/problems",
            json=_problem_body(manager.id, detected.isoformat()),
            headers=manager.headers,
        )
    )["number"]
    changes = [
        _created(client.post("/changes", json=_change_body(), headers=manager.headers))["number"]
        for _ in range(2)
    ]
    for status in ("approved", "scheduled", "implemented"):
        moved = client.post(
            f"/changes/{changes[1]}/status", json={"status": status}, headers=manager.headers
        )
        assert moved.status_code == 200, moved.text
    rollback = _created(
        client.post(
            f"/changes/{changes[1]}/rollbacks",
            json={"title": "Undo", "reason": "errors", "incident": incident},
            headers=manager.headers,
        )
    )["number"]
    approval = _created(
        client.post(
            "/approvals",
            json=_approval_body(changes[0], actors[Role.EXECUTIVE].id),
            headers=manager.headers,
        )
    )["id"]
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
        problem=problem,
        change=changes[0],
        implemented_change=changes[1],
        rollback=rollback,
        approval=approval,
        agreement=agreement,
        business_calendar=calendar,
        more=_bridge_and_improvement_records(client, manager, user, detected),
    )


def _change_body() -> dict[str, Any]:
    return {
        "title": "Raise the pool size",
        "description": "max_connections 200 → 400",
        "change_type": "normal",
        "risk_level": "low",
    }


def _approval_body(change: str, approver: str) -> dict[str, Any]:
    return {
        "reference_type": "change",
        "reference": change,
        "requested_action": "create_change_request",
        "approver": approver,
    }


def _bridge_and_improvement_records(
    client: TestClient, manager: Actor, user: str, detected: datetime
) -> dict[str, str]:
    """A P2 incident with its bridge; a resolved P2 incident with an RCA and a report; a closed
    one with a PIR."""

    def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
        return _created(client.post(url, json=body, headers=manager.headers))

    def incident(**fields: Any) -> dict[str, Any]:
        body = _incident_body(manager.id, detected.isoformat()) | {"severity": "P2", **fields}
        return post("/incidents", body)

    def move(number: str, *statuses: str) -> None:
        for status in statuses:
            moved = client.post(
                f"/incidents/{number}/status", json={"status": status}, headers=manager.headers
            )
            assert moved.status_code == 200, moved.text

    bridged = incident(assigned_to=manager.id)
    resolved, closed = incident()["number"], incident()["number"]
    move(resolved, "resolved")
    move(closed, "resolved", "closed")
    due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    rca = post("/root-cause-analyses", _rca_body(resolved, user, due))
    report = post("/incident-reports", _report_body(resolved))
    pir = post("/post-incident-reviews", _pir_body(closed, user, due))
    return {
        "bridge": bridged["extra"]["bridge_number"],
        "resolved_incident": resolved,
        "closed_incident": closed,
        "rca": rca["number"],
        "report": report["number"],
        "pir": pir["id"],
        "due": due,
    }


def _rca_body(incident: str, user: str, due: str) -> dict[str, Any]:
    return {
        "incident": incident,
        "rca_title": "Why",
        "assigned_to": user,
        "due_date": due,
        "analysis_method": "5_whys",
    }


def _report_body(incident: str) -> dict[str, Any]:
    return {
        "incident": incident,
        "report_type": "compliance",
        "report_title": "Summary",
        "report_content": "What happened.",
    }


def _pir_body(incident: str, user: str, due: str) -> dict[str, Any]:
    return {"incident": incident, "scheduled_date": due, "facilitator": user}


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


def _problem_body(assignee: str, detected_at: str) -> dict[str, Any]:
    return {
        "title": "Pool exhaustion",
        "description": "connections leak under load",
        "category": "database",
        "assigned_to": assignee,
        "detected_at": detected_at,
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
        RequestChange: _change_body() | incident,
        UpdateChangeStatus: {"change": rec.change, "status": "approved"},
        RequestRollback: {
            "change": rec.implemented_change,
            "title": "Undo",
            "reason": "errors",
            "new_incident": _incident_body(
                manager, (rec.detection_time + timedelta(hours=1)).isoformat()
            ),
        },
        UpdateRollbackStatus: {"rollback": rec.rollback, "status": "approved"},
        RequestApproval: _approval_body(rec.change, rec.actors[Role.EXECUTIVE].id),
        DecideApproval: {"approval": rec.approval, "decision": "approved", "comment": "ok"},
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
        OpenProblem: _problem_body(manager, rec.detection_time.isoformat()),
        UpdateProblem: {"problem": rec.problem, "title": "Renamed"},
        LinkIncidentToProblem: {"problem": rec.problem, "incident": rec.incident},
        LinkCIToProblem: {"problem": rec.problem, "configuration_item": rec.configuration_item},
    }
    more = rec.more
    bridge = {"bridge": more["bridge"]}
    joining = {"participants": [{"user": rec.user, "role_in_bridge": "technical_support"}]}
    bodies |= {
        OpenBridge: incident | {"bridge_type": "technical"} | joining,
        AddBridgeParticipants: bridge | joining,
        RemoveBridgeParticipant: bridge | {"user": rec.user},
        CloseBridge: bridge,
        StartRootCauseAnalysis: _rca_body(more["resolved_incident"], rec.user, more["due"]),
        UpdateRootCauseAnalysis: {"rca": more["rca"], "findings": "Pool exhausted"},
        SchedulePostIncidentReview: _pir_body(more["closed_incident"], rec.user, more["due"]),
        UpdatePostIncidentReview: {"pir": more["pir"], "review_notes": "Walked the timeline"},
        GenerateIncidentReport: _report_body(more["resolved_incident"]),
        UpdateIncidentReport: {"report": more["report"], "report_title": "Renamed"},
    }
    return dict(bodies[command])


def _on_problem(route: CommandRoute, body: dict[str, Any], rec: Records) -> dict[str, Any]:
    """A note, communication or attachment body made for an incident, moved to the problem a
    `/problems/{problem}/...` route names."""
    if not route.path.startswith("/problems/{problem}/") or route.command not in (
        AddWorkNote,
        SendCommunication,
        AddAttachment,
    ):
        return body
    if route.command is AddAttachment:
        return body | {"reference_type": "problem", "reference": rec.problem}
    return {k: v for k, v in body.items() if k != "incident"} | {"problem": rec.problem}


def path_params(route: CommandRoute) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(route.path) if name]


def request_for(route: CommandRoute, rec: Records, **changes: Any) -> tuple[str, dict[str, Any]]:
    """The route's URL (path filled from the command's fields) and its JSON body, with changes."""
    full = _on_problem(route, valid_body(route.command, rec), rec)
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
    if rest.startswith("0."):  # a field of the first object of a list
        first = inner[0] if isinstance(inner, list) and inner else {}
        return body | {head: [with_value(first, rest[2:], value)]}
    return body | {head: with_value(inner if isinstance(inner, dict) else {}, rest, value)}


def json_with_escape(body: dict[str, Any], field: str, escape: str) -> str:
    """The body as JSON text with the raw escape sequence (e.g. `\\ud800`) inside `field`."""
    marker = "MARKER" + uuid4().hex
    text = json.dumps(with_value(body, field, f"a{marker}b"))
    return text.replace(marker, escape)
