"""Hardening 7: schema-driven fuzzing of every operation of the OpenAPI document (schemathesis,
in process, on the session's embedded PostgreSQL). Each case acts as an administrator or an
incident manager (now and then with no key), mixes data that fits the documented schema with
data that does not and, two times in three, names real records in its path and body. Every
answer must be documented for its operation, match the documented schema and content type, and
never be a server error: 503 only where documented (a view that is behind, the database gone).

Bounded and reproducible: MAX_EXAMPLES cases per operation, no deadline, derandomized; about a
minute for the whole module on two cores."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.app import create_app
from api.service import Service
from api.settings import Settings
from tests.conftest import Actor

log = logging.getLogger(__name__)

MAX_EXAMPLES = 30
"""Cases per operation: about 100 operations in about 2 minutes here."""
READ_WAIT_SECONDS = 0.2
"""A fuzzed `Ledger-Min-Position` far ahead of the ledger is answered 503 view.behind this soon
(instead of after the default 5 s)."""

OPERATIONS = [
    (method.upper(), path)
    for path, item in create_app(Settings.model_construct()).openapi()["paths"].items()
    for method in item
]
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "seed": 7,
        # Only 503 among the 5xx: status_code_conformance then insists it is documented there.
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ACTORS = ["administrator", "incident manager"] * 3 + ["anonymous"]
"""Who sends a case: mostly an administrator or an incident manager, now and then no key."""
USER_FIELDS = (
    "reported_by",
    "assigned_to",
    "escalated_to",
    "recipient",
    "responsible_owner",
    "approver",
    "facilitator",
)
BODY_FIELDS = {
    **dict.fromkeys(USER_FIELDS, "body_user"),
    "client_id": "client",
    "client": "client",
    "configuration_item": "configuration_item",
    "configuration_items": "configuration_item",
    "reference": "incident",
    "incident": "incident",
    "incidents": "incident",
    "business_calendar": "business_calendar",
}
"""Body fields that name a record, and the pool of real records that fills them."""
_emails = itertools.count()


@dataclass(frozen=True)
class Pool:
    """The fuzzing actors, and real records by path parameter (or body field) kind."""

    actors: dict[str, Actor]
    ids: dict[str, list[str]]


def _created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def pool(client: TestClient, make_user: Callable[..., Actor]) -> Pool:
    """Actors of their own (in no pool, so no case deactivates or demotes them, nor the
    session's administrator) and a few records of every kind a path names."""
    admin = make_user("system_administrator")
    manager = make_user("incident_manager")
    users = [make_user(role).id for role in ("incident_manager", "technical_support", "analyst")]

    def post(url: str, body: dict[str, Any], actor: Actor = admin) -> dict[str, Any]:
        return _created(client.post(url, json=body, headers=actor.headers))

    clients = [
        post(
            "/clients",
            {
                "client_name": f"Fuzz client {n}",
                "registration_number": uuid.uuid4().hex[:10],
                "company_type": "smb",
                "support_coverage": "business_hours",
                "preferred_communication": "email",
            },
        )["id"]
        for n in range(2)
    ]
    cis = [
        post(
            "/configuration-items",
            {
                "ci_name": f"fuzz-ci-{n}",
                "ci_type": "service",
                "environment": "production",
                "responsible_owner": users[0],
            },
        )["id"]
        for n in range(2)
    ]
    assigned = client.post(
        f"/configuration-items/{cis[0]}/clients", json={"client": clients[0]}, headers=admin.headers
    )
    assert assigned.status_code == 200, assigned.text
    detected = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    incidents = [
        post(
            "/incidents",
            {
                "title": f"Fuzz incident {severity}",
                "description": "opened for the fuzzer",
                "category": "software",
                "impact": "low",
                "urgency": "low",
                "reported_by": manager.id,
                "assigned_to": users[n % 2],
                "detection_time": detected,
                "severity": severity,
                "configuration_items": cis[:1],
            },
            manager,
        )
        for n, severity in enumerate(("P2", "P3", "P4"))
    ]
    numbers = [incident["number"] for incident in incidents]
    escalations = [
        post(
            f"/incidents/{number}/escalations",
            {"escalated_to": users[0], "reason": "needs a decision"},
            manager,
        )["id"]
        for number in numbers[:2]
    ]
    notes = [
        post(
            f"/incidents/{number}/work-notes",
            {"note_type": "progress_update", "note_text": "looking"},
            manager,
        )["id"]
        for number in numbers[:2]
    ]
    communications = [
        post(
            f"/incidents/{number}/communications",
            {
                "communication_type": "status_update",
                "recipient_type": "internal",
                "delivery_method": "email",
                "delivery_status": "sent",
                "message_content": "on it",
            },
            manager,
        )["id"]
        for number in numbers[:2]
    ]
    attachments = [
        post(
            f"/incidents/{number}/attachments",
            {
                "file_name": "trace.txt",
                "file_url": "https://files.example.test/trace.txt",
                "file_type": "text/plain",
                "file_size_bytes": 10,
            },
            manager,
        )["id"]
        for number in numbers[:2]
    ]
    keys = [post(f"/users/{user}/api-keys", {})["extra"]["key_id"] for user in users]
    problems = [
        post(
            "/problems",
            {
                "title": f"Fuzz problem {n}",
                "description": "opened for the fuzzer",
                "category": "software",
                "assigned_to": users[n % 2],
                "detected_at": detected,
            },
            manager,
        )
        for n in range(2)
    ]
    # Changes (one implemented, one requested), a rollback and an approval request (SOP 12-20).
    change_body = {
        "title": "Fuzz change",
        "description": "for the fuzzer",
        "change_type": "normal",
        "risk_level": "low",
    }
    changes = [post("/changes", change_body, manager)["number"] for _ in range(2)]
    for status in ("approved", "scheduled", "implemented"):
        moved = client.post(
            f"/changes/{changes[0]}/status", json={"status": status}, headers=manager.headers
        )
        assert moved.status_code == 200, moved.text
    rollback_body = {"title": "Fuzz rollback", "reason": "for the fuzzer", "incident": numbers[0]}
    rollbacks = [post(f"/changes/{changes[0]}/rollbacks", rollback_body, manager)["number"]]
    approval_body = {
        "reference_type": "change",
        "reference": changes[1],
        "requested_action": "create_change_request",
        "approver": users[0],
    }
    approvals = [post("/approvals", approval_body, manager)["id"]]
    improvement = _improvement_records(client, manager, users[0], detected)
    agreements = [
        post(
            "/sla-agreements",
            {
                "client": clients[n],
                "tier": tier,
                "support_coverage": "business_hours",
                "effective_date": "2025-01-01",
                "status": "inactive",
            },
        )["id"]
        for n, tier in enumerate(("premium", "basic"))
    ]
    calendars = [
        post(
            "/business-calendars",
            {
                "name": "Fuzz hours",
                "time_zone": "Europe/Paris",
                "working_hours": {"monday": ["09:00-17:00"], "thursday": ["10:00-16:00"]},
            },
        )["id"]
    ]
    return Pool(
        actors={"administrator": admin, "incident manager": manager},
        ids={
            "user": users,
            "body_user": [*users, manager.id],
            "api_key": keys,
            "client": clients,
            "configuration_item": cis,
            "incident": numbers + [incident["id"] for incident in incidents],
            "escalation": escalations,
            "work_note": notes,
            "communication": communications,
            "attachment": attachments,
            "problem": [p["number"] for p in problems] + [p["id"] for p in problems],
            "change": changes,
            "rollback": rollbacks,
            "approval": approvals,
            # The P2 incident assigned to an incident manager opened its bridge.
            "bridge": [incidents[0]["extra"]["bridge_number"], incidents[0]["extra"]["bridge_id"]],
            **improvement,
            "agreement": agreements,
            "business_calendar": calendars,
        },
    )


def _improvement_records(
    client: TestClient, manager: Actor, analyst: str, detected: str
) -> dict[str, list[str]]:
    """An RCA, a report and a PIR on a P2 incident resolved, then closed."""

    def send(method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.request(method, url, json=body, headers=manager.headers)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    number = send(
        "POST",
        "/incidents",
        {
            "title": "Fuzz incident to review",
            "description": "resolved for the fuzzer",
            "category": "network",
            "impact": "high",
            "urgency": "high",
            "reported_by": manager.id,
            "detection_time": detected,
            "severity": "P2",
        },
    )["number"]
    send("POST", f"/incidents/{number}/status", {"status": "resolved"})
    due = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    rca = send(
        "POST",
        "/root-cause-analyses",
        {
            "incident": number,
            "rca_title": "Fuzz analysis",
            "assigned_to": analyst,
            "due_date": due,
            "analysis_method": "timeline",
        },
    )
    report = send(
        "POST",
        "/incident-reports",
        {
            "incident": number,
            "report_type": "client_impact",
            "report_title": "Fuzz report",
            "report_content": "for the fuzzer",
        },
    )
    send("POST", f"/incidents/{number}/status", {"status": "closed"})
    pir = send(
        "POST",
        "/post-incident-reviews",
        {"incident": number, "scheduled_date": due, "facilitator": analyst},
    )
    return {
        "rca": [rca["number"], rca["id"]],
        "report": [report["number"], report["id"]],
        "pir": [pir["id"]],
    }


@pytest.fixture(scope="module")
def api(service: Service) -> Iterator[OpenApiSchema]:
    """The OpenAPI schema of an app on the session's service, its view reads waiting briefly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            service,
            "settings",
            service.settings.model_copy(update={"read_wait_seconds": READ_WAIT_SECONDS}),
        )
        app = create_app(service.settings, service=service)
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


def _real(data: st.DataObject, pool: Pool, kind: str, value: Any) -> tuple[Any, bool]:
    """`value`, or (two times in three) a real record of that kind in its place; and whether
    it is a real one."""
    ids = pool.ids.get(kind)
    if not ids or data.draw(st.integers(0, 2), label=f"generated {kind}") == 2:
        return value, False
    if isinstance(value, list):
        return data.draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)), True
    return data.draw(st.sampled_from(ids), label=kind), True


def _plausible(data: st.DataObject, case: Any) -> None:
    """Half the time, values that take a case past the input checks to the ledger's rules: no
    random If-Match (412), times or versions (422, 409), emails or time zones (422)."""
    if data.draw(st.booleans(), label="as generated"):
        return
    if case.headers:
        case.headers.pop("If-Match", None)
    if isinstance(case.body, dict):
        for name in ("occurred_at", "expected_version"):
            case.body.pop(name, None)
        plausible = {
            "detection_time": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "timezone": "Europe/London",
            "email": f"fuzz.{next(_emails)}@example.test",
        }
        case.body.update({k: v for k, v in plausible.items() if k in case.body})
        if "detection_time" in case.body and not case.body.get("assessment"):
            case.body.setdefault("severity", "P3")  # an incident needs one or the other


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_answers_as_documented(
    method: str, path: str, api: OpenApiSchema, pool: Pool
) -> None:
    operation = api[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    seen: list[tuple[bool, int]] = []
    """(every path parameter a real record, status) of each case sent."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, actor=st.sampled_from(ACTORS), data=st.data())
    def fuzz(case: Any, actor: str, data: st.DataObject) -> None:
        real = True
        for name, value in list((case.path_parameters or {}).items()):
            case.path_parameters[name], named = _real(data, pool, name, value)
            real = real and named
        if isinstance(case.body, dict):
            for name in sorted(BODY_FIELDS.keys() & case.body.keys()):
                case.body[name], _ = _real(data, pool, BODY_FIELDS[name], case.body[name])
        _plausible(data, case)
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)  # one generated from the security scheme: ours
        if actor in pool.actors:
            headers |= pool.actors[actor].headers
        case.headers = headers
        response = case.call()
        seen.append((real, response.status_code))
        assert response.status_code < 500 or response.status_code == 503, response.text
        case.validate_response(response, checks=CHECKS, headers=headers)

    started = time.monotonic()
    fuzz()
    statuses = Counter(status for _, status in seen)
    log.info(
        "%s %s: %d cases in %.1f s, %s",
        method,
        path,
        len(seen),
        time.monotonic() - started,
        dict(sorted(statuses.items())),
    )
    assert seen
    if "{" in path:  # real records take some cases past the lookup
        assert any(real and status != 404 for real, status in seen), statuses
