"""Issue 10, obligations (SPEC 6.5): each kind appears while the SOP's step is owed, with the record
and since when, and goes when the step happens. Two kinds cannot arise through today's commands
(a closed incident always gets its draft report; an incident cannot close while its bridge is
active): they are recorded here as legacy data would be imported, straight into the ledger."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient

from api.service import Service
from domain.base import Meta
from domain.bridge import Bridge, BridgeType
from domain.incident import Category, Incident, IncidentStatus, Level
from domain.severity import Severity
from tests.conftest import Actor, Refuse


def owed(client: TestClient, reader: Actor, incident: str, position: int) -> list[dict[str, Any]]:
    answer = client.get(
        "/obligations",
        params={"incident": incident, "min_position": position},
        headers=reader.headers,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def test_each_kind_is_owed_until_its_step_happens(
    client: TestClient,
    manager: Actor,
    make_user: Callable[..., Actor],
    open_incident: Callable[..., dict[str, Any]],
    refuse: Refuse,
) -> None:
    analyst = make_user("analyst")
    executive = make_user("executive")
    p1 = open_incident(severity="P1", assigned_to=None)  # recorded, but nobody to host a bridge
    kinds = [o["kind"] for o in owed(client, analyst, p1["id"], p1["position"])]
    assert kinds == ["major_incident_without_bridge"]
    (first,) = owed(client, analyst, p1["id"], p1["position"])
    assert (first["record_id"], first["number"]) == (p1["id"], p1["number"])
    assert datetime.fromisoformat(first["since"]) == datetime.fromisoformat(p1["created_at"])
    client.post(
        f"/incidents/{p1['id']}/assign", json={"assigned_to": manager.id}, headers=manager.headers
    )
    bridged = client.post(
        f"/incidents/{p1['id']}/bridges",
        json={"bridge_type": "major_incident"},
        headers=manager.headers,
    )
    assert bridged.status_code == 201, bridged.text
    assert owed(client, analyst, p1["id"], bridged.json()["position"]) == []

    change = client.post(
        "/changes",
        json={
            "title": "Fail over",
            "description": "promote the replica",
            "incident": p1["id"],
            "change_type": "emergency",
            "risk_level": "high",
            "approver": executive.id,
        },
        headers=manager.headers,
    ).json()
    (pending,) = owed(client, analyst, p1["id"], change["position"])
    assert (pending["kind"], pending["record_id"]) == (
        "emergency_change_without_approval",
        change["id"],
    )
    granted = client.post(
        f"/approvals/{change['extra']['approval_id']}/decision",
        json={"decision": "approved"},
        headers=executive.headers,
    )
    assert granted.status_code == 200, granted.text
    assert owed(client, analyst, p1["id"], granted.json()["position"]) == []

    resolved = client.post(
        f"/incidents/{p1['id']}/status", json={"status": "resolved"}, headers=manager.headers
    ).json()
    (rca_owed,) = owed(client, analyst, p1["id"], resolved["position"])
    assert rca_owed["kind"] == "major_incident_without_rca"
    assert rca_owed["since"] is not None
    started = client.post(
        "/root-cause-analyses",
        json={
            "incident": p1["id"],
            "rca_title": "Why",
            "assigned_to": manager.id,
            "due_date": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
            "analysis_method": "fishbone",
        },
        headers=manager.headers,
    )
    assert started.status_code == 201, started.text
    assert owed(client, analyst, p1["id"], started.json()["position"]) == []

    exported = client.get(
        "/obligations",
        params={"format": "csv", "kind": "major_incident_without_rca"},
        headers=analyst.headers,
    )
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert all(r["kind"] == "major_incident_without_rca" for r in rows)
    support = make_user("technical_support")
    refuse(lambda: client.get("/obligations", headers=support.headers), 403, "role.forbidden")
    refuse(
        lambda: client.get("/obligations?kind=other", headers=analyst.headers),
        422,
        "request.invalid",
    )


def test_legacy_shapes_a_command_cannot_make_are_owed_too(
    client: TestClient, service: Service, make_user: Callable[..., Actor], manager: Actor
) -> None:
    auditor = make_user("auditor")
    now = datetime.now(UTC)
    meta = Meta(actor=None, occurred_at=now, command_id=uuid4(), command="Import")
    number = f"INC9{uuid4().int % 10**6:06d}"
    incident = Incident(
        meta=meta,
        number=number,
        title="Legacy outage",
        description="imported",
        category=Category.NETWORK,
        severity=Severity.P3,
        impact=Level.HIGH,
        urgency=Level.HIGH,
        reported_by=manager.id,
        assigned_to=manager.id,
        detection_time=now - timedelta(hours=2),
        assessment=None,
        decision=None,
    )
    bridge = Bridge(
        meta=meta,
        number=f"BRG9{uuid4().int % 10**6:06d}",
        incident_id=incident.id,
        bridge_type=BridgeType.TECHNICAL,
        host=manager.id,
        start_time=now - timedelta(hours=1),
    )
    incident.change_status(meta, IncidentStatus.RESOLVED)
    incident.change_status(meta, IncidentStatus.CLOSED)
    recordings = service.ledger.save(incident, bridge)
    position = recordings[-1].notification.id
    kinds = sorted(o["kind"] for o in owed(client, auditor, str(incident.id), position))
    assert kinds == ["bridge_active_on_closed_incident", "closed_incident_without_report"]
