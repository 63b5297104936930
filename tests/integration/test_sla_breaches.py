"""SPEC 6.2 and 8, hand-computed: GET /sla/breaches measures each (incident, affected client)
clock against the client's tier, the policy and the calendar as of detection, at a given `now`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.service import Service
from domain.sla import UpdateSLAAgreement
from domain.sla_policy import BUSINESS_HOURS, ROUND_THE_CLOCK, RecordSLAPolicy, table
from projections.sla_queries import pair_status
from projections.sla_rules import clock_of, status, worst
from tests.conftest import Actor
from tests.integration.sla_world import SLAWorld, at, make_world

LATER = at("2025-06-01T00:00:00+00:00")
"""A `now` long after every hand-made incident: their stopped clocks are final."""


@pytest.fixture(scope="module")
def world(service: Service, client: TestClient, make_user: Callable[..., Actor]) -> SLAWorld:
    return make_world(service, client, make_user)


def statuses(pair: dict[str, Any]) -> tuple[str, str]:
    return pair["response"]["status"], pair["resolution"]["status"]


# tier, severity, minutes to acknowledge, minutes to resolve, expected statuses
# (targets of SPEC 8 round the clock: premium P1 30/240, standard P2 480/2880, basic P3
# 4320/14400, premium P4 2880/7680, basic P1 480/2880, standard P3 1440/7200)
CASES = [
    ("premium", "P1", 31, 240, ("breached", "met")),
    ("premium", "P1", 30, 241, ("met", "breached")),
    ("standard", "P2", 480, 2881, ("met", "breached")),
    ("standard", "P2", 481, 2880, ("breached", "met")),
    ("basic", "P3", 4321, 14400, ("breached", "met")),
    ("basic", "P3", 4320, 14401, ("met", "breached")),
    ("premium", "P4", 2881, 7681, ("breached", "breached")),
    ("basic", "P1", 479, 2879, ("met", "met")),
    ("standard", "P3", 1441, 7201, ("breached", "breached")),
]


@pytest.mark.parametrize(
    ("tier", "severity", "ack", "resolve", "expected"),
    CASES,
    ids=[f"{t}-{s}-ack{a}-resolve{r}" for t, s, a, r, _ in CASES],
)
def test_clock_breached_only_past_target_when_tier_and_severity_set_it(
    world: SLAWorld, tier: str, severity: str, ack: int, resolve: int, expected: tuple[str, str]
) -> None:
    customer = world.customer(tier)
    detected = at("2025-01-06T09:00:00+00:00")
    number = world.incident(severity, detected, world.ci(customer))
    world.ack(number, detected + timedelta(minutes=ack))
    world.move(number, ("resolved", detected + timedelta(minutes=resolve)))
    world.service.project()

    (pair,) = world.pairs(customer, LATER)

    target = ROUND_THE_CLOCK.target(tier, severity)
    assert (pair["number"], pair["tier"], pair["clock"]) == (number, tier, "round_the_clock")
    assert statuses(pair) == expected
    assert pair["response"]["target_minutes"] == target.response
    assert pair["resolution"]["target_minutes"] == target.resolution
    assert pair["response"]["elapsed_minutes"] == ack
    assert pair["resolution"]["elapsed_minutes"] == resolve
    assert pair["sla_status"] == ("breached" if "breached" in expected else "met")


def test_clock_at_risk_when_75_percent_of_target_used(world: SLAWorld) -> None:
    customer = world.customer("premium")
    detected = at("2025-01-07T10:00:00+00:00")
    number = world.incident("P2", detected, world.ci(customer))  # premium P2: 120 / 1440
    world.service.project()

    (before,) = world.pairs(customer, detected + timedelta(minutes=89, seconds=59))
    (at_75,) = world.pairs(customer, detected + timedelta(minutes=90))

    assert before["number"] == at_75["number"] == number
    assert statuses(before) == ("running", "running")
    assert statuses(at_75) == ("at_risk", "running")  # 90 of 120 used; 90 of 1440 is 6 %
    assert at_75["response"]["used_percent"] == 75.0
    assert at_75["response"]["at_risk_at"] == "2025-01-07T11:30:00Z"
    assert at_75["sla_status"] == "at_risk"


def test_running_clock_breaches_when_now_moves_past_target(world: SLAWorld) -> None:
    customer = world.customer("standard")
    detected = at("2025-01-08T08:00:00+00:00")
    world.incident("P1", detected, world.ci(customer))  # standard P1: 120 / 1440
    world.service.project()

    at_target = world.pairs(customer, detected + timedelta(minutes=120))[0]
    past = world.pairs(customer, detected + timedelta(minutes=120, seconds=1))[0]
    later = world.pairs(customer, detected + timedelta(minutes=1441))[0]

    assert statuses(at_target) == ("at_risk", "running")  # 100 % used, not yet more
    assert statuses(past) == ("breached", "running")
    assert statuses(later) == ("breached", "breached")
    assert later["resolution"]["elapsed_minutes"] == 1441
    assert past["response"]["due_at"] == "2025-01-08T10:00:00Z"


def test_stopped_clock_still_running_when_now_before_it_stopped(world: SLAWorld) -> None:
    customer = world.customer("premium")
    detected = at("2025-01-09T08:00:00+00:00")
    number = world.incident("P1", detected, world.ci(customer))
    world.ack(number, detected + timedelta(minutes=40))
    world.service.project()

    (then,) = world.pairs(customer, detected + timedelta(minutes=25))
    (after,) = world.pairs(customer, detected + timedelta(minutes=50))

    assert then["response"]["status"] == "at_risk"  # 25 of 30 minutes at the time
    assert then["response"]["stopped_at"] is None
    assert after["response"]["status"] == "breached"
    assert after["response"]["elapsed_minutes"] == 40


def test_reopened_incident_resolution_clock_runs_again_until_last_resolution(
    world: SLAWorld,
) -> None:
    customer = world.customer("premium")
    detected = at("2025-01-10T08:00:00+00:00")
    number = world.incident("P1", detected, world.ci(customer))  # resolution target 240
    world.ack(number, detected + timedelta(minutes=10))
    world.move(
        number,
        ("resolved", detected + timedelta(minutes=100)),
        ("in_progress", detected + timedelta(minutes=150)),
    )
    world.service.project()
    (reopened,) = world.pairs(customer, detected + timedelta(minutes=200))
    world.move(number, ("resolved", detected + timedelta(minutes=250)))
    world.service.project()

    (resolved_again,) = world.pairs(customer, LATER)

    assert reopened["resolution"]["status"] == "at_risk"  # 200 of 240 minutes, running again
    assert reopened["reopen_count"] == 1
    assert resolved_again["resolution"]["elapsed_minutes"] == 250
    assert resolved_again["resolution"]["status"] == "breached"


def test_incident_on_two_clients_of_different_tiers_gives_two_rows(world: SLAWorld) -> None:
    premium, basic = world.customer("premium"), world.customer("basic")
    shared = world.ci(premium, basic)
    detected = at("2025-01-13T09:00:00+00:00")
    number = world.incident("P2", detected, shared)
    world.ack(number, detected + timedelta(minutes=130))
    world.service.project()

    (first,) = world.pairs(premium, LATER)
    (second,) = world.pairs(basic, LATER)

    assert first["number"] == second["number"] == number
    assert (first["tier"], first["response"]["target_minutes"]) == ("premium", 120)
    assert (second["tier"], second["response"]["target_minutes"]) == ("basic", 1440)
    assert first["response"]["status"] == "breached"  # 130 > 120
    assert second["response"]["status"] == "met"  # 130 <= 1440
    both = world.get(
        "/sla/breaches",
        now=LATER.isoformat(),
        detected_from="2025-01-13",
        detected_to="2025-01-13",
        sla_status=["met", "breached", "running", "at_risk"],
    )
    assert sorted(p["client_id"] for p in both["items"] if p["number"] == number) == sorted(
        [str(premium), str(basic)]
    )


def test_ci_reassigned_after_detection_keeps_original_client_row(world: SLAWorld) -> None:
    original, other = world.customer("premium"), world.customer("standard")
    ci = world.ci(original)
    detected = at("2025-01-14T09:00:00+00:00")
    number = world.incident("P3", detected, ci)
    moved = detected + timedelta(hours=3)
    world.unassign(ci, original, moved)
    world.assign(ci, other, moved)
    later = world.incident("P3", moved + timedelta(hours=1), ci)
    world.service.project()

    kept = world.pairs(original, LATER)
    gained = world.pairs(other, LATER)

    assert [p["number"] for p in kept] == [number]
    assert kept[0]["tier"] == "premium"
    assert [p["number"] for p in gained] == [later]
    assert gained[0]["tier"] == "standard"


def test_agreement_changed_after_detection_keeps_tier_at_detection(world: SLAWorld) -> None:
    customer = world.customer(None)
    first = world.agreement(customer, "basic")
    detected = at("2025-01-15T09:00:00+00:00")
    number = world.incident("P1", detected, world.ci(customer))
    changed = detected + timedelta(days=1)
    world.run(UpdateSLAAgreement(agreement=first, status="inactive", occurred_at=changed))
    world.agreement(customer, "premium", occurred_at=changed, effective_date="2025-01-16")
    world.service.project()

    (pair,) = world.pairs(customer, LATER)

    assert (pair["number"], pair["tier"], pair["agreement_id"]) == (number, "basic", str(first))


def test_policy_recorded_after_detection_applies_only_to_later_incidents(
    world: SLAWorld,
) -> None:
    customer = world.customer("premium")
    ci = world.ci(customer)
    now = datetime.now(UTC)
    earlier = world.incident("P1", now - timedelta(hours=2), ci)
    rows = {
        tier: [
            (t.response, t.resolution)
            for t in (getattr(getattr(ROUND_THE_CLOCK, tier), f"P{n}") for n in range(1, 5))
        ]
        for tier in ("premium", "standard", "basic")
    }
    rows["premium"][0] = (10, 240)  # premium P1: respond within 10 minutes from now on
    policy = world.run(
        RecordSLAPolicy(
            name="Faster premium P1", round_the_clock=table(rows), business_hours=BUSINESS_HOURS
        )
    )
    assert policy.state["effective_from"] >= now.isoformat()[:19]
    later = world.incident("P1", datetime.now(UTC), ci)
    world.service.project()

    pairs = {p["number"]: p for p in world.pairs(customer, datetime.now(UTC))}

    assert pairs[earlier]["response"]["target_minutes"] == 30  # the old targets hold
    assert pairs[later]["response"]["target_minutes"] == 10
    assert pairs[later]["policy_id"] == str(policy.id)
    assert pairs[earlier]["policy_id"] != str(policy.id)
    listed = world.get("/sla-policies")["items"]
    assert [p["in_force_now"] for p in listed if p["id"] == str(policy.id)] == [True]
    assert any(p["default"] and p["effective_from"] == "1970-01-01T00:00:00Z" for p in listed)


def test_business_hours_clock_skips_weekend_and_holiday_in_client_time_zone(
    world: SLAWorld,
) -> None:
    weekdays = {
        d: ["09:00-17:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")
    }
    calendar = world.calendar("Europe/Berlin", weekdays, ["2025-04-21"])  # Easter Monday
    customer = world.customer("premium", "business_hours", calendar)
    detected = at("2025-04-18T16:30:00+02:00")  # Friday, 30 working minutes left that day
    number = world.incident("P2", detected, world.ci(customer))  # premium P2 hours: 60 / 480
    world.ack(number, at("2025-04-22T09:45:00+02:00"))  # Tuesday: 30 + 45 = 75 minutes
    world.move(number, ("resolved", at("2025-04-22T15:00:00+02:00")))  # 30 + 360 = 390
    world.service.project()

    (pair,) = world.pairs(customer, LATER)

    assert (pair["number"], pair["clock"]) == (number, "business_hours")
    assert pair["business_calendar_id"] == str(calendar)
    assert (pair["response"]["target_minutes"], pair["resolution"]["target_minutes"]) == (60, 480)
    assert pair["response"]["elapsed_minutes"] == 75
    assert pair["resolution"]["elapsed_minutes"] == 390
    assert statuses(pair) == ("breached", "met")
    assert pair["response"]["due_at"] == "2025-04-22T07:30:00Z"  # Tuesday 09:30 Berlin
    explained = world.get(f"/sla/incidents/{number}", now=LATER.isoformat())
    (clocks,) = explained["clients"]
    assert [(c["start"], c["end"]) for c in clocks["response"]["counted"]] == [
        ("2025-04-18T14:30:00Z", "2025-04-18T15:00:00Z"),
        ("2025-04-22T07:00:00Z", "2025-04-22T07:45:00Z"),
    ]
    assert clocks["response"]["stopped_by"] == "acknowledged"
    assert clocks["business_calendar"]["holidays"] == ["2025-04-21"]


def test_business_hours_coverage_without_calendar_runs_round_the_clock(world: SLAWorld) -> None:
    customer = world.customer("premium", "business_hours")
    detected = at("2025-04-18T16:30:00+02:00")
    number = world.incident("P2", detected, world.ci(customer))
    world.ack(number, at("2025-04-18T18:00:00+02:00"))
    world.service.project()

    (pair,) = world.pairs(customer, LATER)

    assert pair["clock"] == "round_the_clock"
    assert pair["response"]["target_minutes"] == 120
    assert pair["response"]["elapsed_minutes"] == 90


def test_date_filter_includes_both_ends(world: SLAWorld) -> None:
    customer = world.customer("basic")
    ci = world.ci(customer)
    inside = [
        world.incident("P4", at("2025-02-01T00:00:00+00:00"), ci),
        world.incident("P4", at("2025-02-03T23:59:59+00:00"), ci),
    ]
    outside = [
        world.incident("P4", at("2025-01-31T23:59:59+00:00"), ci),
        world.incident("P4", at("2025-02-04T00:00:00+00:00"), ci),
    ]
    world.service.project()

    found = world.pairs(customer, LATER, detected_from="2025-02-01", detected_to="2025-02-03")

    assert sorted(p["number"] for p in found) == sorted(inside)
    assert not {p["number"] for p in found} & set(outside)
    assert len(world.pairs(customer, LATER)) == 4


def test_breaches_refused_when_filters_malformed_or_client_unknown(
    world: SLAWorld, client: TestClient
) -> None:
    def get(**params: Any) -> Any:
        return client.get("/sla/breaches", params=params, headers=world.headers)

    unknown = get(client="00000000-0000-4000-8000-000000000000")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "client.not_found")
    for params in (
        {"detected_from": "2025-1-01"},
        {"detected_to": "2025-02-30"},
        {"detected_from": "2025-02-02", "detected_to": "2025-02-01"},
        {"status": "on_fire"},
        {"sla_status": "late"},
        {"client": "acme"},
        {"cursor": "not-a-cursor"},
    ):
        refused = get(**params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.json()["code"] in ("request.invalid", "query.invalid")


def test_breaches_default_to_breached_and_at_risk_with_summary(world: SLAWorld) -> None:
    customer = world.customer("premium")
    ci = world.ci(customer)
    detected = at("2025-03-03T09:00:00+00:00")
    met, late, open_ = (
        world.incident("P1", detected + timedelta(minutes=n), ci) for n in (0, 1, 2)
    )
    world.ack(met, detected + timedelta(minutes=5))
    world.move(met, ("resolved", detected + timedelta(minutes=60)))
    world.ack(late, detected + timedelta(minutes=45))
    world.service.project()
    now = detected + timedelta(minutes=25)  # open_: 23 of 30 minutes used, at risk

    page = world.get("/sla/breaches", client=str(customer), now=now.isoformat())

    # met: acknowledged at 5, resolution running (25 of 240); late: 24 of 30 (80 %) unacknowledged
    # by then; open_: 23 of 30 (77 %)
    assert page["summary"] == {"met": 0, "breached": 0, "running": 1, "at_risk": 2}
    assert sorted(p["number"] for p in page["items"]) == sorted([late, open_])
    later = world.get("/sla/breaches", client=str(customer), now=LATER.isoformat())
    assert later["summary"] == {"met": 1, "breached": 2, "running": 0, "at_risk": 0}
    assert sorted(p["number"] for p in later["items"]) == sorted([late, open_])
    csv_text = world.client.get(
        "/sla/breaches",
        params={"client": str(customer), "now": LATER.isoformat(), "format": "csv"},
        headers=world.headers,
    )
    assert csv_text.status_code == 200
    assert csv_text.headers["content-type"].startswith("text/csv")
    assert csv_text.text.splitlines()[0].startswith("incident_id,number,client_id")
    assert len(csv_text.text.strip().splitlines()) == 3
    lines = world.client.get(
        "/sla/breaches",
        params={"client": str(customer), "now": LATER.isoformat(), "format": "ndjson"},
        headers=world.headers,
    )
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in lines.text.splitlines()] == later["items"]


@pytest.mark.parametrize("offset_days", [-400, -200, -30, 0, 30, 3650])
def test_pair_status_in_sql_agrees_with_worse_clock_status(
    world: SLAWorld, offset_days: int
) -> None:
    """The breach list filters in SQL on instants stored with each pair; every pair of the view
    must get the status the clocks' own rule gives (projections/sla_rules.status)."""
    now = datetime.now(UTC) + timedelta(days=offset_days)
    with world.service.reader.reading("analytics") as (curs, _position):
        curs.execute(
            f"SELECT p.*, {pair_status()} AS sla_status FROM sla_clock p "
            "WHERE p.response_target IS NOT NULL",
            {"now": now},
        )
        rows = curs.fetchall()

    assert rows
    wrong = [
        (r["number"], r["sla_status"], expected)
        for r in rows
        if r["sla_status"]
        != (
            expected := worst(
                [status(clock_of(r, "response"), now), status(clock_of(r, "resolution"), now)]
            )
        )
    ]
    assert wrong == []


def test_csv_cells_made_safe_when_text_starts_with_formula_character(world: SLAWorld) -> None:
    customer = world.customer("basic", name='=HYPERLINK("http://evil.example","x")')
    detected = at("2025-03-04T09:00:00+00:00")
    number = world.incident("P1", detected, world.ci(customer))
    world.service.project()

    answer = world.client.get(
        "/sla/breaches",
        params={"client": str(customer), "now": LATER.isoformat(), "format": "csv"},
        headers=world.headers,
    )

    assert answer.status_code == 200, answer.text
    (row,) = list(csv.DictReader(io.StringIO(answer.text)))
    assert row["number"] == number
    assert row["client_name"] == "'" + '=HYPERLINK("http://evil.example","x")'
    assert row["response_elapsed_minutes"].replace(".", "").isdigit()
