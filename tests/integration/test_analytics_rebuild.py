"""SPEC 6: the analytics view rebuilt from zero (in pages cut elsewhere than the live projector's)
is identical to the live one, facts recorded late (backdated before a detection) included, and
the SLA and MTTx answers are the same before and after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from api.database import Database
from api.service import Service
from domain.sla import UpdateSLAAgreement
from domain.sla_policy import BUSINESS_HOURS, ROUND_THE_CLOCK, RecordSLAPolicy
from projections import rebuild as rebuild_module
from tests.conftest import Actor
from tests.integration.sla_world import SLAWorld, at, make_world

TABLES: dict[str, tuple[str, ...]] = {
    "sla_incident": ("id",),
    "sla_link": ("incident_id", "ci_id"),
    "sla_ci_history": ("position",),
    "sla_agreement_ref": ("id",),
    "sla_agreement_history": ("position",),
    "sla_client_calendar": ("position",),
    "sla_business_calendar": ("id",),
    "sla_policy": ("id",),
    "sla_client": ("id",),
    "sla_clock": ("incident_id", "client_id"),
}
LATER = at("2025-12-01T00:00:00+00:00")


def snapshot(database: Database) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(**database.conninfo(), row_factory=dict_row) as conn:
        return {
            table: conn.execute(
                SQL("SELECT * FROM {} ORDER BY {}").format(
                    Identifier(table), SQL(", ").join(Identifier(c) for c in keys)
                )
            ).fetchall()
            for table, keys in TABLES.items()
        }


@pytest.fixture(scope="module")
def world(service: Service, client: TestClient, make_user: Callable[..., Actor]) -> SLAWorld:
    return make_world(service, client, make_user)


@pytest.fixture(scope="module")
def activity(world: SLAWorld) -> dict[str, Any]:
    """Incidents on clients of every kind, a reopened one, a CI moved after detection, an
    agreement changed and one recorded late (backdated before a detection), a future policy."""
    hours = {d: ["08:30-12:00", "13:00-17:30"] for d in ("monday", "wednesday", "friday")}
    calendar = world.calendar("Asia/Tokyo", hours, ["2025-03-20"])
    premium = world.customer("premium", "business_hours", calendar)
    standard = world.customer("standard", "on_call")
    late = world.customer(None)
    shared, moving = world.ci(premium, standard), world.ci(standard)
    detected = at("2025-03-19T01:00:00+00:00")
    first = world.incident("P2", detected, shared)
    world.ack(first, detected + timedelta(hours=30))
    world.move(
        first,
        ("resolved", detected + timedelta(hours=40)),
        ("in_progress", detected + timedelta(hours=41)),
        ("resolved", detected + timedelta(hours=50)),
        ("closed", detected + timedelta(hours=51)),
    )
    second = world.incident("P1", detected + timedelta(hours=2), moving, world.ci(late))
    world.unassign(moving, standard, detected + timedelta(hours=3))
    world.assign(moving, premium, detected + timedelta(hours=3))
    agreement = world.agreement(late, "basic", occurred_at=detected - timedelta(days=1))
    world.run(
        UpdateSLAAgreement(
            agreement=agreement, tier="standard", occurred_at=detected + timedelta(hours=1)
        )
    )
    world.run(
        RecordSLAPolicy(
            name="Far future",
            effective_from=at("2199-06-01T00:00:00+00:00"),
            round_the_clock=ROUND_THE_CLOCK,
            business_hours=BUSINESS_HOURS,
        )
    )
    world.service.project()
    return {"first": first, "second": second, "late": late, "premium": premium}


def test_late_agreement_gives_earlier_incident_its_tier(
    world: SLAWorld, activity: dict[str, Any]
) -> None:
    (pair,) = world.pairs(activity["late"], LATER)

    assert pair["number"] == activity["second"]
    assert pair["tier"] == "standard"  # changed from basic at detection - 1 h
    premium = [p["number"] for p in world.pairs(activity["premium"], LATER)]
    assert premium == [activity["first"]]  # the CI moved to premium after the second's detection


def test_rebuild_reproduces_analytics_view_when_pages_cut_differently(
    world: SLAWorld,
    service: Service,
    database: Database,
    activity: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service.project()
    live = snapshot(database)
    params = {
        "now": LATER.isoformat(),
        "sla_status": ["met", "breached", "running", "at_risk"],
        "limit": 1000,
    }
    answers = [
        world.get("/sla/breaches", client=str(activity["premium"]), **params),
        world.get("/metrics/mtta-mttr", group_by=["tier", "week"], now=LATER.isoformat()),
        world.get(f"/sla/incidents/{activity['first']}", now=LATER.isoformat()),
    ]
    assert all(live[t] for t in TABLES), [t for t in TABLES if not live[t]]
    monkeypatch.setattr(rebuild_module, "PAGE", 37)

    service.rebuild()

    rebuilt = snapshot(database)
    assert {t: len(rebuilt[t]) for t in TABLES} == {t: len(live[t]) for t in TABLES}
    assert {t: rebuilt[t] == live[t] for t in TABLES} == dict.fromkeys(TABLES, True)
    assert [
        world.get("/sla/breaches", client=str(activity["premium"]), **params),
        world.get("/metrics/mtta-mttr", group_by=["tier", "week"], now=LATER.isoformat()),
        world.get(f"/sla/incidents/{activity['first']}", now=LATER.isoformat()),
    ] == answers
