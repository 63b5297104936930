"""SPEC 6.3: GET /metrics/mtta-mttr. A hand-computed case (a reopened incident's MTTR from its last
resolution, reopen rate, SLA compliance, provenance), and agreement with an independent computation
written here from the raw events (not from any view) on a generated set of 1,200 incidents."""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.database import Database
from api.service import Service
from api.settings import Settings
from domain.base import DomainEvent
from domain.configuration_item import ConfigurationItem
from domain.incident import Incident
from domain.sla import SLAAgreement
from tests.conftest import ADMIN_KEY, Actor, unique
from tests.integration.databases import fresh_database, url
from tests.integration.sla_world import SLAWorld, at, make_world

LATER = at("2026-01-01T00:00:00+00:00")


@pytest.fixture(scope="module")
def world(service: Service, client: TestClient, make_user: Callable[..., Actor]) -> SLAWorld:
    return make_world(service, client, make_user)


def test_mttr_counts_reopened_incident_from_last_resolution(world: SLAWorld) -> None:
    customer = world.customer("premium")  # P1: 30 / 240
    ci = world.ci(customer)
    x = world.incident("P1", at("2025-10-06T10:00:00+00:00"), ci)
    world.ack(x, at("2025-10-06T10:10:00+00:00"))
    world.move(
        x,
        ("resolved", at("2025-10-06T11:00:00+00:00")),
        ("in_progress", at("2025-10-06T11:30:00+00:00")),
        ("resolved", at("2025-10-06T12:30:00+00:00")),
    )
    y = world.incident("P1", at("2025-10-06T11:00:00+00:00"), ci)
    world.ack(y, at("2025-10-06T11:20:00+00:00"))
    world.move(y, ("resolved", at("2025-10-06T12:40:00+00:00")))
    z = world.incident("P1", at("2025-10-07T09:00:00+00:00"), ci)
    world.ack(z, at("2025-10-07T09:40:00+00:00"))
    world.service.project()

    report = world.get(
        "/metrics/mtta-mttr",
        detected_from="2025-10-06",
        detected_to="2025-10-07",
        client=str(customer),
        group_by="day",
        now=LATER.isoformat(),
    )

    overall = report["overall"]
    assert overall["incidents"] == 3
    assert {k: overall["mtta"][k] for k in ("count", "mean", "median", "p90")} == {
        "count": 3, "mean": 23.33, "median": 20.0, "p90": 40.0  # 10, 20, 40
    }  # fmt: skip
    assert {k: overall["mttr"][k] for k in ("count", "mean", "median", "p90")} == {
        "count": 2, "mean": 125.0, "median": 125.0, "p90": 150.0  # x 150 (last), y 100
    }  # fmt: skip
    assert {(p["number"], p["minutes"]) for p in overall["mttr"]["provenance"]} == {
        (x, 150.0),
        (y, 100.0),
    }
    assert overall["reopen_rate"] | {"provenance": None} == {
        "rate": 50.0, "reopened": 1, "resolved": 2, "provenance": None
    }  # fmt: skip
    assert {(p["number"], p["reopen_count"]) for p in overall["reopen_rate"]["provenance"]} == {
        (x, 1),
        (y, 0),
    }
    compliance = overall["sla_compliance"]
    assert (compliance["percent"], compliance["compliant"], compliance["decided"]) == (
        66.67,
        2,
        3,
    )  # z acknowledged after 40 > 30 minutes
    assert [p["number"] for p in compliance["provenance"] if not p["compliant"]] == [z]
    assert [(g["key"], g["incidents"], g["mtta"]["mean"]) for g in report["groups"]] == [
        ({"day": "2025-10-06"}, 2, 15.0),
        ({"day": "2025-10-07"}, 1, 40.0),
    ]
    csv_text = world.client.get(
        "/metrics/mtta-mttr",
        params={
            "detected_from": "2025-10-06",
            "detected_to": "2025-10-07",
            "client": str(customer),
            "group_by": "day",
            "format": "csv",
        },
        headers=world.headers,
    ).text
    assert len(csv_text.strip().splitlines()) == 4  # header, overall, two days
    assert "mtta_mean" in csv_text.splitlines()[0]
    lines = world.client.get(
        "/metrics/mtta-mttr",
        params={"detected_from": "2025-10-06", "detected_to": "2025-10-07",
                "client": str(customer), "group_by": "day", "format": "ndjson"},
        headers=world.headers,
    ).text.splitlines()  # fmt: skip
    groups = [json.loads(line) for line in lines]
    assert [g["key"] for g in groups] == [{}, {"day": "2025-10-06"}, {"day": "2025-10-07"}]
    assert all(g["mtta"]["provenance"] is not None for g in groups)  # with the incidents behind


# --- 1,200 generated incidents against an independent computation from the raw events ----------

FIRST_DAY = at("2025-08-01T00:00:00+00:00")
DAYS = 61  # August and September 2025


@dataclass
class Facts:
    """One incident as its events tell it."""

    number: str
    severity: str = ""
    category: str = ""
    assignee: str | None = None
    detected: datetime | None = None
    acknowledged: datetime | None = None
    resolved: datetime | None = None
    status: str = "open"
    reopened: int = 0
    cis: list[str] = field(default_factory=list)
    clients: dict[str, str | None] = field(default_factory=dict)
    """The clients of its CIs at detection, with their tier then."""


def from_events(events: list[DomainEvent], wanted: set[UUID]) -> dict[UUID, Facts]:
    found: dict[UUID, Facts] = {}
    for event in events:
        if event.originator_id not in wanted:
            continue
        match event:
            case Incident.Opened():
                found[event.originator_id] = Facts(
                    event.number, event.severity.value, event.category.value,
                    str(event.assigned_to) if event.assigned_to else None, event.detection_time,
                )  # fmt: skip
                continue
        facts = found[event.originator_id]
        match event:
            case Incident.Acknowledged():
                facts.acknowledged = facts.acknowledged or event.meta.occurred_at
            case Incident.StatusChanged(status=status, previous=previous):
                facts.status = status.value
                if status.value == "resolved":
                    facts.resolved = event.meta.occurred_at
                if previous.value == "resolved" and status.value == "in_progress":
                    facts.reopened += 1
            case Incident.Reprioritised(severity=severity):
                facts.severity = severity.value
            case Incident.ConfigurationItemLinked(ci_id=ci):
                facts.cis.append(str(ci))
    return found


def add_clients(events: list[DomainEvent], found: dict[UUID, Facts]) -> None:
    """Each incident's clients at detection (its CIs' assignments until then) and their tiers
    (their agreements active then)."""
    assignments = [
        e
        for e in events
        if isinstance(
            e, ConfigurationItem.AssignedToClient | ConfigurationItem.UnassignedFromClient
        )
    ]
    agreements = [e for e in events if isinstance(e, SLAAgreement.Recorded)]
    for facts in found.values():
        assert facts.detected is not None
        current: dict[tuple[str, str], bool] = {}
        for e in assignments:
            if e.meta.occurred_at <= facts.detected and str(e.originator_id) in facts.cis:
                key = (str(e.originator_id), str(e.client_id))
                current[key] = isinstance(e, ConfigurationItem.AssignedToClient)
        for (_ci, client), assigned in current.items():
            if assigned:
                tiers = [
                    a.tier.value
                    for a in agreements
                    if str(a.client_id) == client
                    and a.status.value == "active"
                    and a.meta.occurred_at <= facts.detected
                ]
                facts.clients[client] = tiers[-1] if tiers else None


def figures(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None}
    ordered = sorted(values)
    return {
        "count": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "p90": ordered[math.ceil(0.9 * len(values)) - 1],
    }


def expected(incidents: list[Facts], key: Callable[[Facts], list[str | None]]) -> dict[Any, Any]:
    groups: dict[Any, list[Facts]] = defaultdict(list)
    for facts in incidents:
        for value in key(facts):
            groups[value].append(facts)
    out = {}
    for value, members in groups.items():
        assert all(f.detected is not None for f in members)
        mtta = [
            (f.acknowledged - f.detected).total_seconds() / 60
            for f in members
            if f.acknowledged and f.detected
        ]
        mttr = [
            (f.resolved - f.detected).total_seconds() / 60
            for f in members
            if f.resolved and f.detected and f.status in ("resolved", "closed")
        ]
        resolved = [f for f in members if f.resolved is not None]
        out[value] = {
            "incidents": len(members),
            "mtta": figures(mtta),
            "mttr": figures(mttr),
            "reopened": sum(1 for f in resolved if f.reopened),
            "resolved": len(resolved),
            "mttr_minutes": sorted(
                (f.number, round((f.resolved - f.detected).total_seconds() / 60, 2))
                for f in members
                if f.resolved and f.detected and f.status in ("resolved", "closed")
            ),
        }
    return out


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 0.011)


def agrees(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = []
    if got["incidents"] != want["incidents"]:
        problems.append(f"incidents {got['incidents']} != {want['incidents']}")
    for name in ("mtta", "mttr"):
        for k in ("count", "mean", "median", "p90"):
            if not close(got[name][k], want[name][k]):
                problems.append(f"{name}.{k} {got[name][k]} != {want[name][k]}")
    rate = got["reopen_rate"]
    if (rate["reopened"], rate["resolved"]) != (want["reopened"], want["resolved"]):
        problems.append(f"reopen {rate} != {want['reopened']}/{want['resolved']}")
    return problems


@pytest.fixture(scope="module")
def own_world(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SLAWorld]:
    """A ledger of its own for the 1,200 generated incidents, so the session's ledger (which the
    rebuild tests refold whole) stays small."""
    with fresh_database(database) as db:
        settings = Settings(
            database_url=url(db),
            allow_superuser=True,
            data_dir=tmp_path_factory.mktemp("mttx"),
            admin_key=ADMIN_KEY,
            auth_failure_limit=100_000,
        )
        service = Service.start(settings)
        try:
            service.bootstrap_admin()
            admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
            with TestClient(create_app(settings, service=service)) as client:

                def make_user(role: str) -> Actor:
                    name = unique(role.replace("_", ""))
                    body = {"first_name": name.title(), "last_name": "Tester", "role": role,
                            "email": f"{name}@example.test", "timezone": "UTC"}  # fmt: skip
                    user = client.post("/users", json=body, headers=admin).json()["id"]
                    key = client.post(f"/users/{user}/api-keys", json={}, headers=admin).json()
                    return Actor(user, {"Authorization": f"Bearer {key['key']}"})

                yield make_world(service, client, make_user)
        finally:
            service.close()


@pytest.fixture(scope="module")
def generated(own_world: SLAWorld) -> dict[UUID, Facts]:
    world = own_world
    rng = random.Random(10)
    clients = [world.customer(tier) for tier in ("premium", "standard", "basic", "premium")]
    cis = [world.ci(*rng.sample(clients, rng.randint(1, 2))) for _ in range(6)]
    assignees = [world.manager]
    ids: set[UUID] = set()
    for _ in range(1200):
        detected = FIRST_DAY + timedelta(minutes=rng.randrange(DAYS * 1440 - 1))
        number = world.incident(
            rng.choice(["P1", "P2", "P3", "P4"]),
            detected,
            *rng.sample(cis, rng.randint(0, 2)),
            category=rng.choice(["software", "hardware", "network", "database"]),
            assigned_to=rng.choice([*assignees, None]),
        )
        ids.add(world.service.ledger.find(Incident, number, "incident").id)
        clock = detected
        if rng.random() < 0.85:
            clock += timedelta(minutes=rng.randint(1, 600), seconds=rng.randint(0, 59))
            world.ack(number, clock)
        if rng.random() < 0.7:
            clock += timedelta(minutes=rng.randint(1, 3000))
            steps = [("resolved", clock)]
            if rng.random() < 0.15:
                steps += [("in_progress", clock + timedelta(minutes=5))]
                if rng.random() < 0.6:
                    steps += [("resolved", clock + timedelta(minutes=rng.randint(6, 900)))]
            if steps[-1][0] == "resolved" and rng.random() < 0.4:
                steps += [("closed", steps[-1][1] + timedelta(minutes=30))]
            world.move(number, *steps)
    world.service.project()
    events = [
        world.service.ledger.mapper.to_domain_event(n)
        for n in world.service.ledger.recorder.select_notifications(start=1, limit=10**9)
    ]
    ours = [e for e in events if isinstance(e, DomainEvent)]
    found = from_events(ours, ids)
    add_clients(ours, found)
    return found


GROUPINGS: dict[str, Callable[[Facts], list[str | None]]] = {
    "severity": lambda f: [f.severity],
    "category": lambda f: [f.category],
    "assignee": lambda f: [f.assignee],
    "ci": lambda f: list(dict.fromkeys(f.cis)) or [None],
    "week": lambda f: [
        (f.detected.date() - timedelta(days=f.detected.weekday())).isoformat()
        if f.detected
        else None
    ],
    "month": lambda f: [f.detected.strftime("%Y-%m") if f.detected else None],
    "client": lambda f: list(f.clients) or [None],
    "tier": lambda f: list(dict.fromkeys(f.clients.values())) or [None],
}


@pytest.mark.parametrize("group_by", [None, *GROUPINGS])
def test_mttx_agrees_with_raw_events_when_1200_incidents_generated(
    own_world: SLAWorld, generated: dict[UUID, Facts], group_by: str | None
) -> None:
    params: dict[str, Any] = {
        "detected_from": "2025-08-01",
        "detected_to": "2025-09-30",
        "now": LATER.isoformat(),
    }
    if group_by:
        params["group_by"] = group_by
    report = own_world.get("/metrics/mtta-mttr", **params)

    incidents = list(generated.values())
    assert len(incidents) == 1200
    overall = expected(incidents, lambda f: ["all"])["all"]
    assert agrees(report["overall"], overall) == []
    got_minutes = sorted(
        (p["number"], p["minutes"]) for p in report["overall"]["mttr"]["provenance"]
    )
    assert got_minutes == overall["mttr_minutes"]
    if group_by:
        want = expected(incidents, GROUPINGS[group_by])
        got = {g["key"][group_by]: g for g in report["groups"]}
        assert set(got) == set(want)
        assert {k: agrees(got[k], want[k]) for k in want} == {k: [] for k in want}
        for k in want:
            mttr = sorted((p["number"], p["minutes"]) for p in got[k]["mttr"]["provenance"])
            assert mttr == want[k]["mttr_minutes"]
