"""SPEC 8 and SOP 21: `GET /sla/breaches?mode=reference` gives what the SOP's
`fetch_sla_breach_incidents` tool returned, on a small hand-made data set: the same data is held
both in the ledger and as the legacy tables the tool read, and an independent rendition of the
tool's rules (written here, over those tables) must agree with the endpoint, and both with the
figures worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.service import Service
from domain.configuration_item import ConfigurationItem
from domain.incident import Incident
from domain.sla import UpdateSLAAgreement
from tests.conftest import Actor
from tests.integration.sla_world import SETUP, SLAWorld, at, make_world

DETECTED = at("2025-05-05T08:00:00+00:00")
RTC = {  # SPEC 8 round the clock: (response, resolution) for P1..P4
    "premium": [(30, 240), (120, 1440), (480, 4320), (2880, 7680)],
    "standard": [(120, 1440), (480, 2880), (1440, 7200), (4320, 10080)],
    "basic": [(480, 2880), (1440, 7200), (4320, 14400), (10080, 20160)],
}


def minutes(n: float) -> str:
    return (DETECTED + timedelta(minutes=n)).isoformat()


def tool(tables: dict[str, dict[str, dict[str, Any]]], **filters: str) -> list[dict[str, Any]]:
    """The reference rules over legacy tables: current CIs and clients, each client's first active
    agreement, round-the-clock targets, a clock breached only once it stopped past its target."""
    active: dict[str, dict[str, Any]] = {}
    for agreement in tables["sla_agreements"].values():
        if agreement["status"] == "active":
            active.setdefault(agreement["client_id"], agreement)
    start = filters.get("start_date")
    end = filters.get("end_date")
    rows = []
    for incident_id, incident in tables["incidents"].items():
        if "status" in filters and incident["status"] != filters["status"]:
            continue
        detected = datetime.fromisoformat(incident["detection_time"])
        day = detected.date().isoformat()
        if (start and day < start) or (end and day > end):
            continue
        cis = {
            link["ci_id"]
            for link in tables["incident_configuration_items"].values()
            if link["incident_id"] == incident_id
        }
        clients = {
            a["client_id"] for a in tables["ci_client_assignments"].values() if a["ci_id"] in cis
        }
        if not clients or ("client_id" in filters and filters["client_id"] not in clients):
            continue
        for client in sorted(clients):
            agreement = active.get(client)
            if agreement is None:
                continue
            response, resolution = RTC[agreement["tier"]][int(incident["severity"][1]) - 1]
            row = {
                "incident_id": incident_id,
                "client_id": client,
                "sla_tier": agreement["tier"],
                "sla_id": agreement["sla_id"],
            }
            ends = {
                "response": (incident["acknowledged_at"], response),
                "resolution": (incident["resolved_at"] or incident["closed_at"], resolution),
            }
            for name, (stop, expected) in ends.items():
                actual = None
                if stop:
                    actual = (datetime.fromisoformat(stop) - detected).total_seconds() / 60
                breached = actual is not None and actual > expected
                row[f"{name}_sla_breach"] = breached
                if breached and actual is not None:
                    row[f"expected_{name}_minutes"] = expected
                    row[f"actual_{name}_minutes"] = round(actual, 2)
                    row[f"{name}_breach_by_minutes"] = round(actual - expected, 2)
            if row["response_sla_breach"] or row["resolution_sla_breach"]:
                rows.append(row)
    return rows


@dataclass
class DataSet:
    tables: dict[str, dict[str, dict[str, Any]]]
    clients: dict[str, UUID]
    numbers: dict[str, str]
    ids: dict[str, str]
    """Incident label → its id (the legacy tables use the ledger's ids)."""


@pytest.fixture(scope="module")
def world(service: Service, client: TestClient, make_user: Callable[..., Actor]) -> SLAWorld:
    return make_world(service, client, make_user)


@pytest.fixture(scope="module")
def data(world: SLAWorld) -> DataSet:
    t: dict[str, dict[str, dict[str, Any]]] = {
        "incidents": {},
        "sla_agreements": {},
        "incident_configuration_items": {},
        "ci_client_assignments": {},
    }
    hours = {d: ["09:00-17:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
    calendar = world.calendar("Europe/Paris", hours, [])
    clients = {
        "A": world.customer(None),
        "B": world.customer(None),
        "C": world.customer(None),
        "D": world.customer(None, "business_hours", calendar),
    }

    def agreement(label: str, tier: str, status: str, coverage: str = "24x7") -> UUID:
        made = world.agreement(clients[label], tier, coverage, status=status)
        t["sla_agreements"][str(made)] = {
            "sla_id": str(made),
            "client_id": str(clients[label]),
            "tier": tier,
            "status": status,
        }
        return made

    agreement("A", "premium", "active")
    agreement("B", "basic", "inactive")
    agreement("B", "standard", "active")
    agreement("C", "basic", "inactive")
    agreement("D", "premium", "active", "business_hours")
    cis = {
        "CI1": world.ci(clients["A"]),
        "CI2": world.ci(clients["A"], clients["B"]),
        "CI3": world.ci(clients["C"]),
        "CI4": world.ci(clients["D"]),
        "CI5": world.ci(clients["A"]),
    }
    numbers, ids = {}, {}

    def incident(
        label: str,
        severity: str,
        ci: str,
        offset: float,
        ack: float | None,
        *moves: tuple[str, float],
    ) -> None:
        detected = DETECTED + timedelta(minutes=offset)
        number = world.incident(severity, detected, cis[ci])
        if ack is not None:
            world.ack(number, detected + timedelta(minutes=ack))
        world.move(number, *((s, detected + timedelta(minutes=m)) for s, m in moves))
        found = world.service.ledger.find(Incident, number, "incident")
        numbers[label], ids[label] = number, str(found.id)
        t["incidents"][str(found.id)] = {
            "status": found.status.value,
            "severity": severity,
            "detection_time": detected.isoformat(),
            "acknowledged_at": found.acknowledged_at and found.acknowledged_at.isoformat(),
            "resolved_at": found.resolved_at and found.resolved_at.isoformat(),
            "closed_at": found.closed_at and found.closed_at.isoformat(),
        }
        t["incident_configuration_items"][label] = {
            "incident_id": str(found.id),
            "ci_id": str(cis[ci]),
        }

    incident("I1", "P1", "CI1", 0, 31, ("resolved", 200))
    incident("I2", "P2", "CI2", 1, 130, ("resolved", 1500))
    incident("I3", "P1", "CI3", 2, 1000)
    incident("I4", "P2", "CI4", 3, 100)
    incident("I5", "P1", "CI5", 4, 200)
    incident("I6", "P3", "CI1", 5, None)
    incident("I7", "P1", "CI1", 1440 * 2, 10, ("resolved", 300), ("in_progress", 400))
    incident("I8", "P4", "CI2", 1440 * 3, 3000, ("resolved", 7000), ("closed", 8000))
    # CI5 moves from A to B after I5's detection: the tool only knew the current assignment
    world.unassign(cis["CI5"], clients["A"], DETECTED + timedelta(hours=1))
    world.assign(cis["CI5"], clients["B"], DETECTED + timedelta(hours=1))
    for label, ci in cis.items():
        item = world.service.ledger.find(ConfigurationItem, ci, "configuration_item")
        for client_id in item.client_ids:
            t["ci_client_assignments"][f"{label}-{client_id}"] = {
                "ci_id": str(ci),
                "client_id": str(client_id),
            }
    world.service.project()
    return DataSet(t, clients, numbers, ids)


def reference(world: SLAWorld, data: DataSet, **params: Any) -> list[dict[str, Any]]:
    """The endpoint's rows for the data set's clients (the session holds other tests' data)."""
    rows = []
    for client in data.clients.values():
        found = world.get("/sla/breaches", mode="reference", client=str(client), **params)
        assert found["success"] is True
        assert found["count"] == len(found["breach_incidents"])
        rows += [r for r in found["breach_incidents"] if r["client_id"] == str(client)]
    return sorted(rows, key=lambda r: (r["number"], r["client_id"]))


COMPARED = (
    "incident_id",
    "client_id",
    "sla_tier",
    "sla_id",
    "response_sla_breach",
    "resolution_sla_breach",
)


def as_tool(row: dict[str, Any]) -> dict[str, Any]:
    shown = {k: row[k] for k in COMPARED}
    for name in ("response", "resolution"):
        if row[f"{name}_sla_breach"]:
            for key in (
                f"expected_{name}_minutes",
                f"actual_{name}_minutes",
                f"{name}_breach_by_minutes",
            ):
                shown[key] = row[key]
    return shown


def test_reference_mode_reproduces_tool_when_data_set_hand_made(
    world: SLAWorld, data: DataSet
) -> None:
    found = reference(world, data)

    expected = sorted(tool(data.tables), key=lambda r: (r["incident_id"], r["client_id"]))
    assert sorted(map(as_tool, found), key=lambda r: (r["incident_id"], r["client_id"])) == expected
    by_hand = {
        ("I1", "A"): (1.0, None),  # premium P1: acknowledged at 31 > 30
        ("I2", "A"): (10.0, 60.0),  # premium P2: 130 > 120, 1500 > 1440 (B standard: met)
        ("I5", "B"): (80.0, None),  # CI5 is B's now: standard P1, 200 > 120
        ("I7", "A"): (None, 60.0),  # reopened: its last resolution (300 > 240) still counts
        ("I8", "A"): (120.0, None),  # premium P4: 3000 > 2880; resolved at 7000 < 7680
    }
    names = {v: k for k, v in data.numbers.items()}
    clients = {str(v): k for k, v in data.clients.items()}
    assert {
        (names[r["number"]], clients[r["client_id"]]): (
            r["response_breach_by_minutes"],
            r["resolution_breach_by_minutes"],
        )
        for r in found
    } == by_hand
    # I3 (C has no active agreement), I4 (round the clock: 100 <= 120 whatever the calendar)
    # and I6 (never acknowledged) are not breaches for the tool
    assert not {names[r["number"]] for r in found} & {"I3", "I4", "I6"}


@pytest.mark.parametrize(
    ("params", "tool_filters"),
    [
        ({"status": "resolved"}, {"status": "resolved"}),
        ({"status": "closed"}, {"status": "closed"}),
        (
            {"detected_from": "2025-05-07", "detected_to": "2025-05-08"},
            {"start_date": "2025-05-07", "end_date": "2025-05-08"},
        ),
        ({"detected_to": "2025-05-05"}, {"end_date": "2025-05-05"}),
    ],
    ids=["resolved", "closed", "two-days", "first-day"],
)
def test_reference_mode_reproduces_tool_when_filtered(
    world: SLAWorld, data: DataSet, params: dict[str, str], tool_filters: dict[str, str]
) -> None:
    found = reference(world, data, **params)

    expected = tool(data.tables, **tool_filters)
    assert sorted((r["incident_id"], r["client_id"]) for r in found) == sorted(
        (r["incident_id"], r["client_id"]) for r in expected
    )
    assert found


def test_reference_mode_differs_from_default_where_ledger_knows_better(
    world: SLAWorld, data: DataSet
) -> None:
    later = at("2025-07-01T00:00:00+00:00")
    default = {
        (p["number"], p["client_id"])
        for client in data.clients.values()
        for p in world.pairs(client, later)
        if p["sla_status"] == "breached"
    }
    a, b = str(data.clients["A"]), str(data.clients["B"])
    assert (data.numbers["I5"], a) in default  # CI5 was A's at detection
    assert (data.numbers["I5"], b) not in default
    assert (data.numbers["I6"], a) in default  # never acknowledged: breached by now
    assert (data.numbers["I7"], a) in default  # reopened and still unresolved


def test_reference_mode_follows_agreement_deactivation(world: SLAWorld, data: DataSet) -> None:
    second = next(
        UUID(sla_id)
        for sla_id, a in data.tables["sla_agreements"].items()
        if a["client_id"] == str(data.clients["B"]) and a["status"] == "active"
    )
    before = {
        r["number"] for r in reference(world, data) if r["client_id"] == str(data.clients["B"])
    }
    world.run(
        UpdateSLAAgreement(
            agreement=second, status="inactive", occurred_at=SETUP + timedelta(days=400)
        )
    )
    world.service.project()
    try:
        after = reference(world, data)
        assert before == {data.numbers["I5"]}
        assert str(data.clients["B"]) not in {r["client_id"] for r in after}
    finally:
        world.run(UpdateSLAAgreement(agreement=second, status="active"))
        world.service.project()
