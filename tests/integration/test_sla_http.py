"""The SLA routes over HTTP against the real PostgreSQL service: agreements, policies, business
calendars (201/200, a refusal with its status and code and nothing appended, 422 for malformed
bodies), and who may read the SLA clocks and metrics."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from domain.sla_policy import BUSINESS_HOURS, ROUND_THE_CLOCK
from tests.conftest import Actor, Refuse

HOURS = {"monday": ["09:00-17:00"], "tuesday": ["09:00-17:00"]}


def created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def customer(client: TestClient, admin: Actor) -> str:
    body = {
        "client_name": f"HTTP SLA {uuid4().hex[:6]}",
        "registration_number": uuid4().hex[:10],
        "company_type": "mid_market",
        "support_coverage": "business_hours",
        "preferred_communication": "portal",
    }
    return str(created(client.post("/clients", json=body, headers=admin.headers))["id"])


def agreement_body(customer: str, **fields: Any) -> dict[str, Any]:
    return {
        "client": customer,
        "tier": "standard",
        "support_coverage": "business_hours",
        "effective_date": "2025-01-01",
        "expiration_date": "2026-12-31",
    } | fields


def test_agreement_recorded_updated_and_second_active_refused(
    client: TestClient, admin: Actor, customer: str, refuse: Refuse
) -> None:
    made = created(
        client.post("/sla-agreements", json=agreement_body(customer), headers=admin.headers)
    )
    assert (made["type"], made["status"], made["tier"], made["client_id"]) == (
        "SLAAgreement", "active", "standard", customer
    )  # fmt: skip
    assert made["effective_date"] == "2025-01-01"

    refused = refuse(
        lambda: client.post(
            "/sla-agreements", json=agreement_body(customer, tier="premium"), headers=admin.headers
        ),
        409,
        "sla_agreement.active_exists",
    )
    assert refused["active_agreement"] == made["id"]

    updated = client.patch(
        f"/sla-agreements/{made['id']}",
        json={"tier": "premium"},
        headers={**admin.headers, "If-Match": '"1"'},
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["tier"], updated.json()["version"]) == ("premium", 2)
    refuse(
        lambda: client.patch(
            f"/sla-agreements/{made['id']}",
            json={"expiration_date": "2024-06-30"},
            headers=admin.headers,
        ),
        409,
        "sla_agreement.invalid_dates",
    )
    refuse(
        lambda: client.patch(
            f"/sla-agreements/{uuid4()}", json={"tier": "basic"}, headers=admin.headers
        ),
        404,
        "sla_agreement.not_found",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"tier": "gold"},
        {"support_coverage": "weekends"},
        {"effective_date": "2025-13-01"},
        {"effective_date": "01/02/2025"},
        {"status": "paused"},
        {"client": "not-a-uuid"},
        {"sla_id": "7"},
    ],
)
def test_agreement_refused_when_body_malformed(
    client: TestClient, admin: Actor, customer: str, refuse: Refuse, change: dict[str, Any]
) -> None:
    refuse(
        lambda: client.post(
            "/sla-agreements", json=agreement_body(customer) | change, headers=admin.headers
        ),
        422,
        "request.invalid",
    )


def test_agreement_refused_for_roles_other_than_administrator(
    client: TestClient, customer: str, make_user: Callable[..., Actor], refuse: Refuse
) -> None:
    for role in ("incident_manager", "analyst", "auditor"):
        actor = make_user(role)
        refuse(
            lambda a=actor: client.post(
                "/sla-agreements", json=agreement_body(customer), headers=a.headers
            ),
            403,
            "role.forbidden",
        )


def test_policy_recorded_and_listed_and_past_refused(
    client: TestClient, admin: Actor, refuse: Refuse
) -> None:
    body = {
        "name": "Next year",
        "effective_from": "2199-01-01T00:00:00Z",
        "round_the_clock": ROUND_THE_CLOCK.model_dump(),
        "business_hours": BUSINESS_HOURS.model_dump(),
    }
    made = created(client.post("/sla-policies", json=body, headers=admin.headers))
    assert made["effective_from"] == "2199-01-01T00:00:00Z"

    listed = client.get("/sla-policies", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    policies = {p["id"]: p for p in listed.json()["items"]}
    assert policies[made["id"]]["in_force_now"] is False
    assert policies[made["id"]]["round_the_clock"]["basic"]["P4"] == {
        "response": 10080, "resolution": 20160
    }  # fmt: skip
    assert sum(p["default"] for p in policies.values()) == 1
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refuse(
        lambda: client.post(
            "/sla-policies", json=body | {"effective_from": past}, headers=admin.headers
        ),
        409,
        "sla_policy.effective_in_past",
    )
    partial = {**body, "business_hours": {"premium": body["business_hours"]["premium"]}}
    refuse(
        lambda: client.post("/sla-policies", json=partial, headers=admin.headers),
        422,
        "request.invalid",
    )


def test_business_calendar_recorded_and_given_to_client(
    client: TestClient, admin: Actor, customer: str, refuse: Refuse
) -> None:
    body = {
        "name": "Lisbon",
        "time_zone": "Europe/Lisbon",
        "working_hours": HOURS,
        "holidays": ["2025-06-13"],
    }
    made = created(client.post("/business-calendars", json=body, headers=admin.headers))
    assert made["working_hours"]["monday"] == ["09:00-17:00"]
    assert made["working_hours"]["sunday"] == []

    given = client.post(
        f"/clients/{customer}/business-calendar",
        json={"business_calendar": made["id"]},
        headers=admin.headers,
    )
    assert given.status_code == 200, given.text
    assert given.json()["business_calendar_id"] == made["id"]
    refuse(
        lambda: client.post(
            f"/clients/{customer}/business-calendar",
            json={"business_calendar": made["id"]},
            headers=admin.headers,
        ),
        409,
        "business_calendar.already_assigned",
    )
    refuse(
        lambda: client.post(
            f"/clients/{customer}/business-calendar",
            json={"business_calendar": str(uuid4())},
            headers=admin.headers,
        ),
        404,
        "business_calendar.not_found",
    )
    removed = client.post(
        f"/clients/{customer}/business-calendar",
        json={"business_calendar": None},
        headers=admin.headers,
    )
    assert removed.status_code == 200, removed.text
    assert removed.json()["business_calendar_id"] is None


@pytest.mark.parametrize(
    "change",
    [
        {"time_zone": "Moon/Base"},
        {"working_hours": {"monday": ["9-17"]}},
        {"working_hours": {"monday": ["09:00-17:00", "12:00-13:00"]}},
        {"working_hours": {}},
        {"holidays": ["2025-02-30"]},
    ],
)
def test_business_calendar_refused_when_malformed(
    client: TestClient, admin: Actor, refuse: Refuse, change: dict[str, Any]
) -> None:
    body = {"name": "Bad", "time_zone": "UTC", "working_hours": HOURS} | change
    refuse(
        lambda: client.post("/business-calendars", json=body, headers=admin.headers),
        422,
        "request.invalid",
    )


@pytest.mark.parametrize("path", ["/sla/breaches", "/metrics/mtta-mttr", "/sla-policies"])
def test_analytics_readable_by_readers_and_refused_to_others(
    client: TestClient, make_user: Callable[..., Actor], path: str
) -> None:
    for role in ("analyst", "auditor", "incident_manager", "executive", "system_administrator"):
        answer = client.get(path, headers=make_user(role).headers)
        assert answer.status_code == 200, (role, answer.text)
    for role in ("technical_support", "account_manager"):
        answer = client.get(path, headers=make_user(role).headers)
        assert (answer.status_code, answer.json()["code"]) == (403, "role.forbidden")


def test_client_contact_reads_own_client_only(
    client: TestClient, customer: str, admin: Actor, make_user: Callable[..., Actor]
) -> None:
    contact = make_user("client_contact", client_id=customer)
    other = created(client.post("/clients", json={
        "client_name": "Other", "registration_number": uuid4().hex[:10],
        "company_type": "smb", "support_coverage": "24x7", "preferred_communication": "email",
    }, headers=admin.headers))["id"]  # fmt: skip

    own = client.get("/sla/breaches", params={"client": customer}, headers=contact.headers)
    unnamed = client.get("/metrics/mtta-mttr", headers=contact.headers)
    foreign = client.get("/sla/breaches", params={"client": other}, headers=contact.headers)

    assert own.status_code == unnamed.status_code == 200, (own.text, unnamed.text)
    assert (foreign.status_code, foreign.json()["code"]) == (403, "role.forbidden")


def test_incident_clocks_unknown_incident_is_404(client: TestClient, admin: Actor) -> None:
    answer = client.get("/sla/incidents/INC9999998", headers=admin.headers)
    assert (answer.status_code, answer.json()["code"]) == (404, "incident.not_found")


def test_metrics_refused_when_grouping_unknown_or_period_malformed(
    client: TestClient, admin: Actor
) -> None:
    for params in (
        {"group_by": "planet"},
        {"detected_from": "yesterday"},
        {"group_by": ["day", "week", "month", "severity"]},
        {"now": "soon"},
    ):
        answer = client.get("/metrics/mtta-mttr", params=params, headers=admin.headers)
        assert answer.status_code == 422, (params, answer.text)


@pytest.mark.parametrize("now", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
@pytest.mark.parametrize("path", ["/sla/breaches", "/metrics/mtta-mttr"])
def test_a_now_with_no_utc_time_is_refused_not_a_server_error(
    client: TestClient, admin: Actor, path: str, now: str
) -> None:
    answer = client.get(path, params={"now": now}, headers=admin.headers)
    assert (answer.status_code, answer.json()["code"]) == (422, "query.invalid")


def test_a_forged_breach_cursor_is_refused(client: TestClient, admin: Actor) -> None:
    forged = base64.urlsafe_b64encode(b'["2024-01-01T00:00:00+00:00", 1, 2]').decode()
    answer = client.get("/sla/breaches", params={"cursor": forged}, headers=admin.headers)
    assert (answer.status_code, answer.json()["code"]) == (422, "query.invalid")
