"""Rules that read another record hold under concurrency (real PostgreSQL, racing threads): the
record a rule relied on is checked as the append commits, so a command never lands after the
change that would have refused it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from api.service import Service
from domain.api_key import IssueApiKey
from domain.base import Command, Role
from domain.communication import SendCommunication
from domain.configuration_item import RegisterConfigurationItem
from domain.context import Outcome
from domain.errors import LedgerError
from domain.escalation import Escalate
from domain.incident import AssignIncident, ChangeIncidentStatus, IncidentStatus, OpenIncident
from domain.user import DeactivateUser, RegisterUser, UpdateUser
from domain.work_note import AddWorkNote, NoteType
from tests.conftest import admin_id

_serial = iter(range(1, 10_000_000))


def race(service: Service, *work: tuple[Command, UUID]) -> list[Outcome | LedgerError]:
    """Handle each (command, actor) in its own thread, all released together; the outcomes or
    refusals, in order."""
    start = threading.Barrier(len(work))

    def task(item: tuple[Command, UUID]) -> Outcome | LedgerError:
        start.wait(timeout=30)
        try:
            return service.ledger.handle(*item)
        except LedgerError as refusal:
            return refusal

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        return list(pool.map(task, work))


def user(service: Service, role: Role = Role.INCIDENT_MANAGER) -> UUID:
    n = next(_serial)
    command = RegisterUser(
        first_name=f"Race{n}",
        last_name="Rule",
        email=f"race{n}@cross-record.test",
        role=role,
        timezone="UTC",
    )
    return service.ledger.handle(command, admin_id(service)).id


def open_incident(service: Service, manager: UUID) -> str:
    command = OpenIncident(
        title="Racing rules",
        description="a rule that reads another record",
        category="software",
        impact="medium",
        urgency="medium",
        reported_by=manager,
        detection_time=datetime.now(UTC) - timedelta(hours=1),
        severity="P3",
        assigned_to=manager,
    )
    number = service.ledger.handle(command, manager).number
    assert number is not None
    return number


def positions(results: list[Outcome | LedgerError]) -> list[int]:
    """Where the successful commands landed in the ledger."""
    return [r.position for r in results if isinstance(r, Outcome) and r.position is not None]


def refusal_codes(results: list[Outcome | LedgerError]) -> set[str]:
    return {r.code for r in results if isinstance(r, LedgerError)}


def test_escalate_never_lands_after_resolve_when_50_threads_race_it(service: Service) -> None:
    """50 threads: 49 escalate while 1 resolves, on a fresh incident, 50 times."""
    manager, target = user(service), user(service)
    late = []
    for _trial in range(50):
        number = open_incident(service, manager)
        service.ledger.handle(
            ChangeIncidentStatus(incident=number, status=IncidentStatus.IN_PROGRESS), manager
        )
        escalate = Escalate(incident=number, escalated_to=target, reason="needs a specialist")
        resolve = ChangeIncidentStatus(incident=number, status=IncidentStatus.RESOLVED)
        results = race(
            service,
            (resolve, manager),
            *[(escalate, manager)] * 49,
        )
        resolved = results[0]
        assert isinstance(resolved, Outcome), resolved
        assert resolved.position is not None
        late += [p for p in positions(results[1:]) if p > resolved.position]
        assert refusal_codes(results[1:]) <= {"incident.not_open", "concurrency.busy"}
    assert late == [], f"{len(late)} escalations were recorded after the resolve"


Referencing = Callable[[UUID, str], Command]
"""A command that references a user (`victim`), given an incident number to work on."""


def _open(victim: UUID, _incident: str) -> Command:
    return OpenIncident(
        title="Reported by someone leaving",
        description="race",
        category="network",
        impact="low",
        urgency="low",
        reported_by=victim,
        detection_time=datetime.now(UTC) - timedelta(minutes=5),
        severity="P4",
    )


def _escalate(victim: UUID, incident: str) -> Command:
    return Escalate(incident=incident, escalated_to=victim, reason="race")


def _communicate(victim: UUID, incident: str) -> Command:
    return SendCommunication(
        incident=incident,
        communication_type="status_update",
        recipient_type="internal",
        delivery_method="email",
        recipient=victim,
        message_content="race",
    )


def _issue_key(victim: UUID, _incident: str) -> Command:
    return IssueApiKey(user=victim)


def _register_ci(victim: UUID, _incident: str) -> Command:
    return RegisterConfigurationItem(
        ci_name="race-ci", ci_type="server", environment="production", responsible_owner=victim
    )


@pytest.mark.parametrize(
    "referencing",
    [
        pytest.param(_open, id="OpenIncident.reported_by"),
        pytest.param(_escalate, id="Escalate.escalated_to"),
        pytest.param(_communicate, id="SendCommunication.recipient"),
        pytest.param(_issue_key, id="IssueApiKey.user"),
        pytest.param(_register_ci, id="RegisterConfigurationItem.responsible_owner"),
    ],
)
def test_command_never_references_user_after_deactivation(
    service: Service, referencing: Referencing
) -> None:
    """Each trial: 9 commands referencing a user race the user's deactivation: none lands
    after it (the user record is guarded, so the append re-checks it as it commits)."""
    admin, manager = admin_id(service), user(service)
    incident = open_incident(service, manager)
    late = []
    for _trial in range(15):
        victim = user(service)
        command = referencing(victim, incident)
        actor = admin if Role.SYSTEM_ADMINISTRATOR in command.roles else manager
        results = race(
            service,
            (DeactivateUser(user=victim), admin),
            *[(command, actor)] * 9,
        )
        deactivated = results[0]
        if isinstance(deactivated, LedgerError):
            # IssueApiKey saves the user too (it lists its keys): the deactivation can lose
            # that race with a 409 like any concurrent change. It is then simply made again.
            assert deactivated.code == "concurrency.conflict", deactivated
            deactivated = service.ledger.handle(DeactivateUser(user=victim), admin)
        assert deactivated.position is not None
        late += [p for p in positions(results[1:]) if p > deactivated.position]
        assert refusal_codes(results[1:]) <= {"user.inactive", "concurrency.busy"}
    assert late == [], f"{len(late)} commands referenced the user after the deactivation"


def test_assign_never_lands_after_assignee_deactivated(service: Service) -> None:
    """Each trial: one incident, 8 threads assign it to a user while the user is deactivated."""
    admin, manager = admin_id(service), user(service)
    late = []
    for _trial in range(15):
        victim = user(service, Role.TECHNICAL_SUPPORT)
        number = open_incident(service, manager)
        assign = AssignIncident(incident=number, assigned_to=victim)
        results = race(
            service,
            (DeactivateUser(user=victim), admin),
            *[(assign, manager)] * 8,
        )
        deactivated = results[0]
        assert isinstance(deactivated, Outcome)
        assert deactivated.position is not None
        late += [p for p in positions(results[1:]) if p > deactivated.position]
    assert late == []


def test_assign_never_lands_after_assignee_loses_the_role(service: Service) -> None:
    """An assignee demoted to account manager concurrently is never assigned after the change."""
    admin, manager = admin_id(service), user(service)
    late = []
    for _trial in range(15):
        victim = user(service, Role.TECHNICAL_SUPPORT)
        number = open_incident(service, manager)
        assign = AssignIncident(incident=number, assigned_to=victim)
        demote = UpdateUser(user=victim, role=Role.ACCOUNT_MANAGER)
        results = race(
            service,
            (demote, admin),
            *[(assign, manager)] * 8,
        )
        demoted = results[0]
        assert isinstance(demoted, Outcome)
        assert demoted.position is not None
        late += [p for p in positions(results[1:]) if p > demoted.position]
        assert refusal_codes(results[1:]) <= {
            "user.wrong_role",
            "incident.already_assigned",
            "concurrency.conflict",
            "concurrency.busy",
        }
    assert late == []


def test_actor_never_acts_after_own_deactivation(service: Service) -> None:
    """A user's own commands racing their deactivation: none lands after it."""
    admin = admin_id(service)
    late = []
    for _trial in range(15):
        actor = user(service)
        number = open_incident(service, actor)
        note = AddWorkNote(incident=number, note_type=NoteType.PROGRESS_UPDATE, note_text="race")
        results: list[Any] = race(
            service,
            (DeactivateUser(user=actor), admin),
            *[(note, actor)] * 8,
        )
        deactivated = results[0]
        assert isinstance(deactivated, Outcome)
        assert deactivated.position is not None
        late += [p for p in positions(results[1:]) if p > deactivated.position]
        assert refusal_codes(results[1:]) <= {"actor.inactive", "concurrency.busy"}
    assert late == []


def test_email_is_claimed_once_when_threads_register_it_at_once(service: Service) -> None:
    """The email index record makes the address unique: 12 registrations, one success."""
    for _trial in range(10):
        email = f"same{next(_serial)}@cross-record.test"
        command = RegisterUser(
            first_name="Twin", last_name="Race", email=email, role=Role.AUDITOR, timezone="UTC"
        )
        results = race(
            service,
            *[(command, admin_id(service))] * 12,
        )
        assert len(positions(results)) == 1
        assert refusal_codes(results) <= {"user.email_taken", "concurrency.busy"}


def test_two_administrators_demoting_themselves_at_once_leave_one(service: Service) -> None:
    """The administrator roster is saved with every change to who administers: two of them
    stepping down at once cannot leave the ledger without an active administrator."""
    from domain.user import AdministratorRoster

    admin = admin_id(service)
    for _trial in range(10):
        # A fresh pair of extra administrators; then everyone but the pair steps down first.
        pair = [user(service, Role.SYSTEM_ADMINISTRATOR) for _ in range(2)]
        roster = service.ledger.get_or_none(AdministratorRoster.create_id())
        assert isinstance(roster, AdministratorRoster)
        others = [m for m in roster.members if m not in pair and m != admin]
        for other in others:
            service.ledger.handle(DeactivateUser(user=other), pair[0])
        if admin in roster.members:
            service.ledger.handle(UpdateUser(user=admin, role=Role.AUDITOR), pair[0])
        results = race(
            service,
            (UpdateUser(user=pair[0], role=Role.AUDITOR), pair[0]),
            (UpdateUser(user=pair[1], role=Role.AUDITOR), pair[1]),
        )
        assert len(positions(results)) == 1, results
        assert refusal_codes(results) <= {"user.last_administrator", "concurrency.busy"}
        survivor = pair[0] if isinstance(results[1], Outcome) else pair[1]
        # Hand the ledger back to the first administrator for the next trial and the suite.
        service.ledger.handle(UpdateUser(user=admin, role=Role.SYSTEM_ADMINISTRATOR), survivor)
        service.ledger.handle(UpdateUser(user=survivor, role=Role.AUDITOR), admin)
