"""Two ledgers on one database (as two API workers are): each decides from its own cache without
reading every record again, yet never on stale state — a stale copy fails the append (it is saved
or guarded), is refreshed, and the command is decided again; reads for people are always current."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from api.service import Service
from domain.errors import RuleViolation
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    Incident,
    IncidentStatus,
    OpenIncident,
)
from domain.ledger import IncidentLedger
from domain.user import DeactivateUser, RegisterUser
from tests.conftest import admin_id, unique


@pytest.fixture
def other_worker(service: Service) -> Iterator[IncidentLedger]:
    ledger = IncidentLedger(env=service.db.ledger_env(service.settings.app_role, pool_size=2))
    yield ledger
    ledger.close()


def _user(ledger: IncidentLedger, admin: UUID, role: str) -> UUID:
    name = unique("stale")
    command = RegisterUser(
        first_name=name, last_name="Cache", email=f"{name}@stale.test", role=role, timezone="UTC"
    )
    return ledger.handle(command, admin).id


def _open(ledger: IncidentLedger, manager: UUID) -> str:
    number = ledger.handle(
        OpenIncident(
            title="Two workers",
            description="one cache each",
            category="software",
            impact="low",
            urgency="low",
            reported_by=manager,
            detection_time=datetime.now(UTC) - timedelta(minutes=10),
            severity="P4",
            assigned_to=manager,
        ),
        manager,
    ).number
    assert number is not None
    return number


def test_decision_on_a_stale_copy_is_made_again_on_the_current_state(
    service: Service, other_worker: IncidentLedger
) -> None:
    first = service.ledger
    manager = _user(first, admin_id(service), "incident_manager")
    number = _open(first, manager)
    assert other_worker.find(Incident, number, "incident").acknowledged_at is None  # cached there
    first.handle(AcknowledgeIncident(incident=number), manager)
    with pytest.raises(RuleViolation) as refused:
        other_worker.handle(AcknowledgeIncident(incident=number), manager)
    assert refused.value.code == "incident.already_acknowledged"


def test_guarded_reference_on_a_stale_copy_is_refused(
    service: Service, other_worker: IncidentLedger
) -> None:
    admin = admin_id(service)
    manager = _user(service.ledger, admin, "incident_manager")
    support = _user(service.ledger, admin, "technical_support")
    number = _open(service.ledger, manager)
    assert other_worker.find(Incident, number, "incident").assigned_to == manager
    other_worker.get_or_none(support)  # the other worker has the user, active, in its cache
    service.ledger.handle(DeactivateUser(user=support), admin)
    with pytest.raises(RuleViolation) as refused:
        other_worker.handle(AssignIncident(incident=number, assigned_to=support), manager)
    assert refused.value.code == "user.inactive"


def test_reads_for_people_are_current_in_every_worker(
    service: Service, other_worker: IncidentLedger
) -> None:
    manager = _user(service.ledger, admin_id(service), "incident_manager")
    number = _open(service.ledger, manager)
    assert other_worker.find(Incident, number, "incident").version == 1
    service.ledger.handle(AcknowledgeIncident(incident=number), manager)
    current = other_worker.find(Incident, number, "incident")
    assert current.version == 2
    assert current.acknowledged_at is not None


def test_a_refusal_is_given_only_on_current_records(
    service: Service, other_worker: IncidentLedger
) -> None:
    """The client read version 2 through one worker; the other worker's copy is still at 1. Its
    refusal (the version moved) would be wrong: the copy is refreshed and the command decided
    again, so it lands."""
    manager = _user(service.ledger, admin_id(service), "incident_manager")
    number = _open(service.ledger, manager)
    assert other_worker.find(Incident, number, "incident").version == 1  # cached there
    service.ledger.handle(AcknowledgeIncident(incident=number), manager)

    outcome = other_worker.handle(
        ChangeIncidentStatus(
            incident=number, status=IncidentStatus.IN_PROGRESS, expected_version=2
        ),
        manager,
    )

    assert outcome.version == 3
