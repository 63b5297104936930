"""The SOP scenarios' driver: runs commands on one ledger and answers what each appended. The
`driver` fixture gives one on the in-memory ledger and one on the PostgreSQL service's ledger, so
every scenario is written once and runs on both."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import pytest

from domain.base import Command, DomainEvent, Role
from domain.client import RegisterClient
from domain.configuration_item import RegisterConfigurationItem
from domain.context import Outcome
from domain.incident import OpenIncident
from domain.ledger import IncidentLedger
from domain.numbering import Counter
from domain.user import RegisterUser
from tests.conftest import admin_id, bootstrap

_serial = itertools.count(1)
RUN = uuid4().hex[:8]  # keeps names unique in the session's shared PostgreSQL database


def qualname(event: Any) -> str:
    return type(event).__qualname__


@dataclass(frozen=True)
class Step:
    """One accepted command: its outcome and the events its append stored, in order."""

    outcome: Outcome
    events: list[DomainEvent]

    @property
    def id(self) -> UUID:
        return self.outcome.id

    @property
    def types(self) -> list[str]:
        """Event types in order; a counter's `Started` is left out (it appears only with the
        first number of a kind in a ledger, which depends on what ran before)."""
        return [qualname(e) for e in self.events if not isinstance(e, Counter.Started)]

    def of(self, event_type: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, event_type)]

    def assert_one_command(self, actor: UUID) -> None:
        """Every event came from this one command, acting as `actor`."""
        assert self.events, "the command appended nothing"
        assert {e.meta.command_id for e in self.events} == {self.events[0].meta.command_id}
        assert {e.meta.actor for e in self.events} == {actor}


class Driver:
    """What a scenario needs from a ledger: run a command, read a record and its history."""

    def __init__(self, name: str, ledger: IncidentLedger, admin: UUID, service: Any = None) -> None:
        self.name = name
        self.ledger = ledger
        self.admin = admin
        self.service = service
        """The PostgreSQL service (its views), or None for the in-memory ledger."""

    def run(self, command: Command, actor: UUID | None = None) -> Step:
        """Run `command` (as the administrator unless told otherwise); the events it stored."""
        recorder = self.ledger.recorder
        head = recorder.max_notification_id() or 0
        outcome = self.ledger.handle(command, actor or self.admin)
        assert outcome.position is not None
        assert outcome.position > head
        stored = recorder.select_notifications(head + 1, 1_000, stop=outcome.position)
        events = [self.ledger.mapper.to_domain_event(n) for n in stored]
        assert all(isinstance(e, DomainEvent) for e in events)
        return Step(outcome, cast(list[DomainEvent], events))

    def get(self, record: UUID | str) -> Any:
        return self.ledger.repository.get(record if isinstance(record, UUID) else UUID(record))

    def history(self, record: UUID) -> list[Any]:
        return list(self.ledger.events.get(record))

    # --- setting up a world -------------------------------------------------------------------

    @staticmethod
    def unique(prefix: str) -> str:
        return f"{prefix}-{RUN}-{next(_serial)}"

    def email(self, name: str) -> str:
        return f"{self.unique(name)}@scenario.test"

    def user(self, role: Role | str, first: str = "Pat", **fields: Any) -> UUID:
        command = RegisterUser(
            **{
                "first_name": first,
                "last_name": "Tester",
                "email": self.email(first.lower()),
                "role": role,
                "timezone": "UTC",
                **fields,
            }
        )
        return self.run(command).id

    def client(self) -> UUID:
        command = RegisterClient(
            client_name=self.unique("Acme"),
            registration_number=self.unique("REG"),
            company_type="enterprise",
            support_coverage="24x7",
            preferred_communication="email",
        )
        return self.run(command).id

    def ci(self, owner: UUID, name: str = "checkout-api") -> UUID:
        command = RegisterConfigurationItem(
            ci_name=self.unique(name),
            ci_type="application",
            environment="production",
            responsible_owner=owner,
        )
        return self.run(command).id

    def open_incident(self, manager: UUID, **fields: Any) -> Step:
        """A P3 incident reported and assigned to `manager`, detected an hour ago."""
        command = OpenIncident(
            **{
                "title": "Checkout latency",
                "description": "p99 above 3s",
                "category": "software",
                "impact": "medium",
                "urgency": "medium",
                "reported_by": manager,
                "assigned_to": manager,
                "detection_time": datetime.now(UTC) - timedelta(hours=1),
                "severity": "P3",
                **fields,
            }
        )
        return self.run(command, manager)


@pytest.fixture(params=["memory", "postgres"])
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    if request.param == "memory":
        ledger = IncidentLedger()
        yield Driver("memory", ledger, bootstrap(ledger))
        ledger.close()
    else:
        service = request.getfixturevalue("service")
        yield Driver("postgres", service.ledger, admin_id(service), service)
