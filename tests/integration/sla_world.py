"""Shared by the SLA and MTTx tests: clients with agreements (and calendars), CIs assigned to them,
incidents opened, acknowledged and moved at chosen times, all through the in-process service (as
the administrator and a manager), dated in the past so that the hand-computed figures hold."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from api.service import Service
from domain.base import Command
from domain.bridge import CloseBridge
from domain.business_calendar import AssignBusinessCalendar, RecordBusinessCalendar
from domain.client import RegisterClient
from domain.configuration_item import (
    AssignCIToClient,
    RegisterConfigurationItem,
    UnassignCIFromClient,
)
from domain.incident import AcknowledgeIncident, ChangeIncidentStatus, Incident, OpenIncident
from domain.sla import RecordSLAAgreement
from domain.user import RegisterUser
from tests.conftest import Actor, admin_id

SETUP = datetime(2024, 12, 1, tzinfo=UTC)
"""When the clients' agreements, calendars and CI assignments are recorded (before any incident)."""
_serial = itertools.count(1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class SLAWorld:
    service: Service
    client: TestClient
    admin: UUID
    manager: UUID
    headers: dict[str, str]
    """An analyst's."""

    def run(self, command: Command, actor: UUID | None = None) -> Any:
        return self.service.execute(command, actor or self.admin)

    def customer(
        self,
        tier: str | None,
        coverage: str = "24x7",
        calendar: UUID | None = None,
        name: str | None = None,
    ) -> UUID:
        """A client with an active agreement of this tier (none if `tier` is None)."""
        n = next(_serial)
        client = self.run(
            RegisterClient(
                client_name=name or f"SLA client {n}",
                registration_number=f"SLA-{n}-{UUID(int=n).hex[-6:]}",
                company_type="enterprise",
                support_coverage=coverage,
                preferred_communication="email",
                occurred_at=SETUP,
            )
        ).id
        if tier is not None:
            self.agreement(client, tier, coverage)
        if calendar is not None:
            self.run(
                AssignBusinessCalendar(client=client, business_calendar=calendar, occurred_at=SETUP)
            )
        return UUID(str(client))

    def agreement(self, client: UUID, tier: str, coverage: str = "24x7", **fields: Any) -> UUID:
        command = RecordSLAAgreement(
            client=client,
            tier=tier,
            support_coverage=coverage,
            effective_date=fields.pop("effective_date", "2024-01-01"),
            occurred_at=fields.pop("occurred_at", SETUP),
            **fields,
        )
        return UUID(str(self.run(command).id))

    def calendar(self, time_zone: str, hours: dict[str, list[str]], holidays: list[str]) -> UUID:
        week = {
            day: hours.get(day, [])
            for day in (
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            )
        }
        command = RecordBusinessCalendar(
            name=f"Calendar {next(_serial)}",
            time_zone=time_zone,
            working_hours=week,
            holidays=holidays,
        )
        return UUID(str(self.run(command).id))

    def ci(self, *clients: UUID, when: datetime = SETUP) -> UUID:
        ci = UUID(
            str(
                self.run(
                    RegisterConfigurationItem(
                        ci_name=f"sla-ci-{next(_serial)}",
                        ci_type="service",
                        environment="production",
                        responsible_owner=self.manager,
                    )
                ).id
            )
        )
        for client in clients:
            self.assign(ci, client, when)
        return ci

    def assign(self, ci: UUID, client: UUID, when: datetime) -> None:
        self.run(AssignCIToClient(configuration_item=ci, client=client, occurred_at=when))

    def unassign(self, ci: UUID, client: UUID, when: datetime) -> None:
        self.run(UnassignCIFromClient(configuration_item=ci, client=client, occurred_at=when))

    def incident(self, severity: str, detected: datetime, *cis: UUID, **fields: Any) -> str:
        opened = self.run(
            OpenIncident(
                title=f"SLA case {next(_serial)}",
                description="hand-computed",
                category=fields.pop("category", "network"),
                impact="high",
                urgency="high",
                reported_by=self.manager,
                detection_time=detected,
                severity=severity,
                configuration_items=list(cis),
                occurred_at=detected,
                **fields,
            ),
            self.manager,
        )
        assert opened.number is not None
        return str(opened.number)

    def ack(self, number: str, when: datetime) -> None:
        self.run(AcknowledgeIncident(incident=number, occurred_at=when), self.manager)

    def move(self, number: str, *steps: tuple[str, datetime]) -> None:
        for status, when in steps:
            if status == "closed":  # SOP 5 first: an incident does not close with its bridge open
                incident = self.service.ledger.find(Incident, number, "incident")
                if incident.active_bridge_id is not None:
                    bridge = CloseBridge(bridge=str(incident.active_bridge_id), occurred_at=when)
                    self.run(bridge, self.manager)
            command = ChangeIncidentStatus(incident=number, status=status, occurred_at=when)
            self.run(command, self.manager)

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=headers or self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def pairs(self, client: UUID, now: datetime, **params: Any) -> list[dict[str, Any]]:
        """Every pair of the client, whatever its status, newest detection first."""
        page = self.get(
            "/sla/breaches",
            client=str(client),
            now=now.isoformat(),
            sla_status=["met", "breached", "running", "at_risk"],
            **params,
        )
        assert page["next_cursor"] is None
        return list(page["items"])


def make_world(service: Service, client: TestClient, make_user: Any) -> SLAWorld:
    admin = admin_id(service)
    n = next(_serial)
    manager = service.execute(
        RegisterUser(
            first_name="Sla",
            last_name=f"Manager{n}",
            email=f"sla.manager{n}.{UUID(int=n).hex[-4:]}@example.test",
            role="incident_manager",
            timezone="UTC",
            occurred_at=SETUP - timedelta(days=1),
        ),
        admin,
    ).id
    analyst: Actor = make_user("analyst")
    return SLAWorld(service, client, admin, UUID(str(manager)), analyst.headers)
