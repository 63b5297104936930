"""Every rule code the domain raises, against the in-memory ledger: the command is refused with
its error type and code, and nothing at all is appended. tests/unit/test_rule_codes.py checks
that no code raised in domain/ is missing from the tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain import ledger as ledger_module
from domain.api_key import BootstrapAdministrator, IssueApiKey, RevokeApiKey
from domain.attachment import AddAttachment
from domain.base import Command, Role
from domain.client import RegisterClient, UpdateClient
from domain.communication import SendCommunication
from domain.configuration_item import (
    AssignCIToClient,
    RegisterConfigurationItem,
    UnassignCIFromClient,
    UpdateConfigurationItem,
)
from domain.context import CLOCK_SKEW
from domain.errors import (
    ConcurrencyConflict,
    Forbidden,
    InvalidInput,
    LedgerError,
    NotFound,
    RuleViolation,
    Unauthenticated,
)
from domain.escalation import Escalate, Escalation, UpdateEscalationStatus
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    LinkCIToIncident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.ledger import MAX_ATTEMPTS, IncidentLedger
from domain.user import DeactivateUser, ReactivateUser, RegisterUser, UpdateUser
from domain.work_note import AddWorkNote, UpdateWorkNote
from tests.conftest import bootstrap

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
DETECTED = NOW - timedelta(hours=1)
BEFORE_DETECTION = DETECTED - timedelta(minutes=1)
CHOSEN_KEY = "il_chosen-key-0123456789abcdefghij"


# --- the world every case starts from ----------------------------------------------------------


@dataclass
class World:
    ledger: IncidentLedger
    admin: UUID
    manager: UUID  # Mia, assignee of the incident
    other_manager: UUID
    support: UUID
    account_manager: UUID
    auditor: UUID
    client: UUID
    ci: UUID
    incident: str  # the incident's number

    def head(self) -> int:
        """Position of the last stored event (the in-memory store has no gaps: also the count)."""
        return self.ledger.recorder.max_notification_id() or 0

    def run(self, command: Command, actor: UUID | None = None) -> Any:
        """An accepted setup step (as the manager unless told otherwise)."""
        return self.ledger.handle(command, actor or self.manager)

    def deactivate(self, user: UUID) -> None:
        self.run(DeactivateUser(user=user), self.admin)

    def close_incident(self) -> None:
        for status in ("resolved", "closed"):
            self.run(ChangeIncidentStatus(incident=self.incident, status=status))

    def escalate(self) -> UUID:
        escalation = Escalate(incident=self.incident, escalated_to=self.other_manager, reason="DB")
        return UUID(str(self.run(escalation).id))

    def note(self, text: str = "Restarted the pool") -> UUID:
        added = AddWorkNote(incident=self.incident, note_type="troubleshooting", note_text=text)
        return UUID(str(self.run(added).id))


def register(ledger: IncidentLedger, admin: UUID, first: str, role: Role, **fields: Any) -> UUID:
    command = RegisterUser(
        first_name=first,
        last_name="Tester",
        email=f"{first.lower()}@example.test",
        role=role,
        timezone="UTC",
        **fields,
    )
    return UUID(str(ledger.handle(command, admin).id))


def open_incident(**fields: Any) -> OpenIncident:
    return OpenIncident(
        **{
            "title": "Checkout latency",
            "description": "p99 above 3s",
            "category": "software",
            "impact": "medium",
            "urgency": "medium",
            "detection_time": DETECTED,
            "severity": "P3",
            **fields,
        }
    )


def build_world(ledger_class: type[IncidentLedger] = IncidentLedger) -> World:
    ledger = ledger_class(clock=lambda: NOW)
    admin = bootstrap(ledger)
    manager = register(ledger, admin, "Mia", Role.INCIDENT_MANAGER)
    client = ledger.handle(
        RegisterClient(
            client_name="Acme",
            registration_number="ACME-1",
            company_type="enterprise",
            support_coverage="24x7",
            preferred_communication="email",
        ),
        admin,
    ).id
    ci = ledger.handle(
        RegisterConfigurationItem(
            ci_name="checkout-api",
            ci_type="application",
            environment="production",
            responsible_owner=manager,
        ),
        admin,
    ).id
    opened = ledger.handle(open_incident(reported_by=manager, assigned_to=manager), manager)
    assert opened.number is not None
    return World(
        ledger=ledger,
        admin=admin,
        manager=manager,
        other_manager=register(ledger, admin, "Olu", Role.INCIDENT_MANAGER),
        support=register(ledger, admin, "Sam", Role.TECHNICAL_SUPPORT),
        account_manager=register(ledger, admin, "Ada", Role.ACCOUNT_MANAGER),
        auditor=register(ledger, admin, "Aud", Role.AUDITOR),
        client=UUID(str(client)),
        ci=UUID(str(ci)),
        incident=opened.number,
    )


@pytest.fixture
def world() -> Iterator[World]:
    built = build_world()
    yield built
    built.ledger.close()


def assert_refused(
    world: World,
    command: Command,
    actor: UUID | None,
    error: type[LedgerError],
    code: str,
    **handle: Any,
) -> LedgerError:
    """The command is refused with `error` and `code`, and the ledger holds not one event more."""
    head = world.head()
    with pytest.raises(error) as refusal:
        world.ledger.handle(command, actor, **handle)
    assert type(refusal.value) is error
    assert refusal.value.code == code
    assert world.head() == head
    return refusal.value


# --- one case per rule (several where a code guards several commands) --------------------------


@dataclass(frozen=True)
class Attempt:
    """What is tried after the case's own setup, and by whom."""

    command: Command
    actor: UUID | None
    idempotency_key: str | None = None
    request_hash: str | None = None


Case = Callable[[World], Attempt]
CASES: list[Any] = []


def case(code: str, error: type[LedgerError] = RuleViolation, *, how: str = "") -> Any:
    """Register a case: the function sets up what it needs and returns the refused attempt."""

    def add(build: Case) -> Case:
        case_id = f"{code}-{how.replace(' ', '_')}" if how else code
        CASES.append(pytest.param(build, code, error, id=case_id))
        return build

    return add


# SOP 1: users, keys, clients, configuration items


@case("user.email_taken", how="register, other letter case")
def _register_taken_email(w: World) -> Attempt:
    command = RegisterUser(
        first_name="Mia",
        last_name="Again",
        email="MIA@Example.TEST",
        role="analyst",
        timezone="UTC",
    )
    return Attempt(command, w.admin)


@case("user.email_taken", how="update")
def _update_to_taken_email(w: World) -> Attempt:
    return Attempt(UpdateUser(user=w.other_manager, email="mia@example.test"), w.admin)


@case("user.client_required", how="register")
def _client_contact_without_client(w: World) -> Attempt:
    command = RegisterUser(
        first_name="Cal",
        last_name="Contact",
        email="cal@example.test",
        role="client_contact",
        timezone="UTC",
    )
    return Attempt(command, w.admin)


@case("user.client_required", how="update role")
def _update_role_to_client_contact(w: World) -> Attempt:
    return Attempt(UpdateUser(user=w.auditor, role="client_contact"), w.admin)


@case("client.not_found", NotFound, how="register user")
def _client_contact_of_unknown_client(w: World) -> Attempt:
    command = RegisterUser(
        first_name="Cal",
        last_name="Contact",
        email="cal@example.test",
        role="client_contact",
        timezone="UTC",
        client_id=uuid4(),
    )
    return Attempt(command, w.admin)


@case("client.not_found", NotFound, how="assign CI")
def _assign_ci_to_unknown_client(w: World) -> Attempt:
    return Attempt(AssignCIToClient(configuration_item=w.ci, client=uuid4()), w.admin)


@case("client.not_found", NotFound, how="update user")
def _user_moved_to_unknown_client(w: World) -> Attempt:
    """Any client a user names must exist, whatever the user's role."""
    return Attempt(UpdateUser(user=w.auditor, client_id=uuid4()), w.admin)


@case("client.not_found", NotFound, how="update")
def _update_unknown_client(w: World) -> Attempt:
    return Attempt(UpdateClient(client=uuid4(), client_name="Acme"), w.admin)


@case("user.no_change")
def _update_user_to_same_values(w: World) -> Attempt:
    return Attempt(UpdateUser(user=w.manager, first_name="Mia", timezone="UTC"), w.admin)


@case("user.already_inactive")
def _deactivate_twice(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    return Attempt(DeactivateUser(user=w.other_manager), w.admin)


@case("user.already_active")
def _reactivate_active_user(w: World) -> Attempt:
    return Attempt(ReactivateUser(user=w.manager), w.admin)


@case("user.cannot_deactivate_self")
def _admin_deactivates_self(w: World) -> Attempt:
    return Attempt(DeactivateUser(user=w.admin), w.admin)


@case("user.not_found", NotFound, how="update")
def _update_unknown_user(w: World) -> Attempt:
    return Attempt(UpdateUser(user=uuid4(), first_name="Nobody"), w.admin)


@case("user.not_found", NotFound, how="assignee")
def _assign_to_unknown_user(w: World) -> Attempt:
    return Attempt(AssignIncident(incident=w.incident, assigned_to=uuid4()), w.manager)


@case("user.inactive", how="key holder")
def _key_for_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    return Attempt(IssueApiKey(user=w.other_manager), w.admin)


@case("user.inactive", how="assignee")
def _assign_to_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    return Attempt(AssignIncident(incident=w.incident, assigned_to=w.other_manager), w.manager)


@case("user.inactive", how="responsible owner")
def _ci_owned_by_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    command = RegisterConfigurationItem(
        ci_name="db-1",
        ci_type="database",
        environment="production",
        responsible_owner=w.other_manager,
    )
    return Attempt(command, w.admin)


@case("user.inactive", how="escalation target")
def _escalate_to_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    command = Escalate(incident=w.incident, escalated_to=w.other_manager, reason="DB expertise")
    return Attempt(command, w.manager)


@case("user.inactive", how="recipient")
def _communicate_to_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    command = SendCommunication(
        incident=w.incident,
        communication_type="status_update",
        recipient_type="internal",
        delivery_method="email",
        recipient=w.other_manager,
        message_content="Update",
    )
    return Attempt(command, w.account_manager)


@case("user.wrong_role", how="assign")
def _assign_to_account_manager(w: World) -> Attempt:
    return Attempt(AssignIncident(incident=w.incident, assigned_to=w.account_manager), w.manager)


@case("user.wrong_role", how="open")
def _open_assigned_to_auditor(w: World) -> Attempt:
    return Attempt(open_incident(reported_by=w.manager, assigned_to=w.auditor), w.manager)


@case("api_key.exists")
def _bootstrap_with_a_key_already_issued(w: World) -> Attempt:
    """Only the first administrator's key can be chosen; a second bootstrap naming the same key
    (another ledger's restore, a copied environment) is refused before anything is written."""
    w.ledger.handle(BootstrapAdministrator(email="first@example.test", key=CHOSEN_KEY), None)
    return Attempt(BootstrapAdministrator(email="second@example.test", key=CHOSEN_KEY), None)


@case("api_key.already_revoked")
def _revoke_twice(w: World) -> Attempt:
    issued = w.run(IssueApiKey(user=w.manager), w.admin)
    key_id = UUID(issued.extra["key_id"])
    w.run(RevokeApiKey(user=w.manager, api_key=key_id), w.admin)
    return Attempt(RevokeApiKey(user=w.manager, api_key=key_id), w.admin)


@case("api_key.not_found", error=NotFound)
def _revoke_another_users_key(w: World) -> Attempt:
    issued = w.run(IssueApiKey(user=w.manager), w.admin)
    return Attempt(
        RevokeApiKey(user=w.other_manager, api_key=UUID(issued.extra["key_id"])), w.admin
    )


@case("client.no_change")
def _update_client_to_same_values(w: World) -> Attempt:
    return Attempt(UpdateClient(client=w.client, client_name="Acme"), w.admin)


@case("configuration_item.no_change")
def _update_ci_to_same_values(w: World) -> Attempt:
    command = UpdateConfigurationItem(configuration_item=w.ci, ci_name="checkout-api")
    return Attempt(command, w.admin)


@case("configuration_item.already_assigned")
def _assign_ci_twice(w: World) -> Attempt:
    w.run(AssignCIToClient(configuration_item=w.ci, client=w.client), w.admin)
    return Attempt(AssignCIToClient(configuration_item=w.ci, client=w.client), w.admin)


@case("configuration_item.not_assigned")
def _unassign_unassigned_ci(w: World) -> Attempt:
    return Attempt(UnassignCIFromClient(configuration_item=w.ci, client=w.client), w.admin)


@case("configuration_item.not_found", NotFound, how="link")
def _link_unknown_ci(w: World) -> Attempt:
    return Attempt(LinkCIToIncident(incident=w.incident, configuration_item=uuid4()), w.manager)


@case("configuration_item.not_found", NotFound, how="open")
def _open_with_unknown_ci(w: World) -> Attempt:
    command = open_incident(reported_by=w.manager, configuration_items=[w.ci, uuid4()])
    return Attempt(command, w.manager)


# SOP 2: the incident


@case("incident.not_found", NotFound, how="number")
def _acknowledge_unknown_number(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident="INC9999999"), w.manager)


@case("incident.not_found", NotFound, how="neither UUID nor number")
def _acknowledge_malformed_reference(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident="checkout-is-down"), w.manager)


@case("incident.not_found", NotFound, how="work note")
def _note_on_unknown_incident(w: World) -> Attempt:
    command = AddWorkNote(incident=str(uuid4()), note_type="troubleshooting", note_text="x")
    return Attempt(command, w.manager)


@case("incident.already_acknowledged")
def _acknowledge_twice(w: World) -> Attempt:
    w.run(AcknowledgeIncident(incident=w.incident))
    return Attempt(AcknowledgeIncident(incident=w.incident), w.manager)


@case("incident.already_assigned")
def _assign_to_current_assignee(w: World) -> Attempt:
    return Attempt(AssignIncident(incident=w.incident, assigned_to=w.manager), w.manager)


CLOSED_INCIDENT_COMMANDS: dict[str, Callable[[World], Command]] = {
    "acknowledge": lambda w: AcknowledgeIncident(incident=w.incident),
    "assign": lambda w: AssignIncident(incident=w.incident, assigned_to=w.other_manager),
    "update details": lambda w: UpdateIncidentDetails(incident=w.incident, title="New title"),
    "link CI": lambda w: LinkCIToIncident(incident=w.incident, configuration_item=w.ci),
}
for _how, _command in CLOSED_INCIDENT_COMMANDS.items():

    def _on_closed_incident(w: World, command: Callable[[World], Command] = _command) -> Attempt:
        w.close_incident()
        return Attempt(command(w), w.manager)

    case("incident.closed", how=_how)(_on_closed_incident)


@case("incident.invalid_transition", how="open to closed")
def _close_open_incident(w: World) -> Attempt:
    return Attempt(ChangeIncidentStatus(incident=w.incident, status="closed"), w.manager)


@case("incident.invalid_transition", how="closed is final")
def _reopen_closed_incident(w: World) -> Attempt:
    w.close_incident()
    return Attempt(ChangeIncidentStatus(incident=w.incident, status="in_progress"), w.manager)


@case("incident.no_change")
def _update_incident_to_same_values(w: World) -> Attempt:
    command = UpdateIncidentDetails(incident=w.incident, title="Checkout latency", severity="P3")
    return Attempt(command, w.manager)


@case("incident.ci_already_linked")
def _link_ci_twice(w: World) -> Attempt:
    w.run(LinkCIToIncident(incident=w.incident, configuration_item=w.ci))
    return Attempt(LinkCIToIncident(incident=w.incident, configuration_item=w.ci), w.manager)


@case("incident.not_open")
def _escalate_resolved_incident(w: World) -> Attempt:
    w.run(ChangeIncidentStatus(incident=w.incident, status="resolved"))
    command = Escalate(incident=w.incident, escalated_to=w.other_manager, reason="DB expertise")
    return Attempt(command, w.manager)


@case("incident.not_assigned_to_you", Forbidden, how="acknowledge")
def _support_acknowledges_others_incident(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident=w.incident), w.support)


@case("incident.not_assigned_to_you", Forbidden, how="status")
def _support_resolves_others_incident(w: World) -> Attempt:
    return Attempt(ChangeIncidentStatus(incident=w.incident, status="resolved"), w.support)


# SOP 3, 16: escalations; SOP 14: work notes; SOP 11, 15: communications, attachments


@case("escalation.invalid_transition")
def _approve_denied_escalation(w: World) -> Attempt:
    escalation = w.escalate()
    w.run(UpdateEscalationStatus(escalation=escalation, status="denied"))
    return Attempt(UpdateEscalationStatus(escalation=escalation, status="approved"), w.manager)


@case("escalation.not_found", NotFound)
def _update_unknown_escalation(w: World) -> Attempt:
    return Attempt(UpdateEscalationStatus(escalation=uuid4(), status="approved"), w.manager)


@case("work_note.no_change")
def _update_note_to_same_text(w: World) -> Attempt:
    note = w.note("Restarted the pool")
    return Attempt(UpdateWorkNote(work_note=note, note_text="Restarted the pool"), w.support)


@case("work_note.not_found", NotFound)
def _update_unknown_note(w: World) -> Attempt:
    return Attempt(UpdateWorkNote(work_note=uuid4(), note_text="x"), w.support)


@case("problem.not_found", NotFound, how="work note")
def _note_on_problem(w: World) -> Attempt:
    command = AddWorkNote(problem="PRB0000001", note_type="troubleshooting", note_text="x")
    return Attempt(command, w.manager)


@case("problem.not_found", NotFound, how="communication")
def _communication_on_problem(w: World) -> Attempt:
    command = SendCommunication(
        problem="PRB0000001",
        communication_type="status_update",
        recipient_type="internal",
        delivery_method="email",
        message_content="Update",
    )
    return Attempt(command, w.manager)


def attach(reference_type: str, reference: str, **fields: Any) -> AddAttachment:
    return AddAttachment(
        reference_type=reference_type,
        reference=reference,
        file_name="trace.log",
        file_url="https://files.example.test/trace.log",
        file_type="text/plain",
        file_size_bytes=10,
        **fields,
    )


# Reference types with a record (incident, communication, report) and those whose aggregate does
# not exist yet (problem, change, RCA, PIR): no such record can be attached to.
MISSING_REFERENCES: dict[str, tuple[str, str]] = {
    "incident.not_found": ("incident", "INC9999999"),
    "communication.not_found": ("communication", str(uuid4())),
    "report.not_found": ("report", "RPT0000001"),
    "problem.not_found": ("problem", "PRB0000001"),
    "change.not_found": ("change", "CHG0000001"),
    "rca.not_found": ("rca", "RCA0000001"),
    "pir.not_found": ("pir", str(uuid4())),
}
for _code, (_type, _reference) in MISSING_REFERENCES.items():

    def _attach_to_missing(w: World, ref_type: str = _type, ref: str = _reference) -> Attempt:
        return Attempt(attach(ref_type, ref), w.support)

    case(_code, NotFound, how="attachment")(_attach_to_missing)


# The ledger's own checks: actor, role, time, version, idempotency


@case("actor.not_found", NotFound)
def _unknown_actor(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident=w.incident), uuid4())


@case("actor.inactive", Forbidden)
def _inactive_actor(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    return Attempt(AcknowledgeIncident(incident=w.incident), w.other_manager)


@case("actor.missing", Forbidden)
def _no_actor(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident=w.incident), None)


@case("role.forbidden", Forbidden, how="auditor acknowledges")
def _auditor_acknowledges(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident=w.incident), w.auditor)


@case("role.forbidden", Forbidden, how="support assigns")
def _support_assigns(w: World) -> Attempt:
    return Attempt(AssignIncident(incident=w.incident, assigned_to=w.support), w.support)


@case("role.forbidden", Forbidden, how="account manager attaches")
def _account_manager_attaches(w: World) -> Attempt:
    return Attempt(attach("incident", w.incident), w.account_manager)


@case("role.forbidden", Forbidden, how="manager registers user")
def _manager_registers_user(w: World) -> Attempt:
    command = RegisterUser(
        first_name="Eve",
        last_name="X",
        email="eve@example.test",
        role="system_administrator",
        timezone="UTC",
    )
    return Attempt(command, w.manager)


@case("occurred_at.in_future", how="an hour ahead")
def _acknowledge_in_future(w: World) -> Attempt:
    command = AcknowledgeIncident(incident=w.incident, occurred_at=NOW + timedelta(hours=1))
    return Attempt(command, w.manager)


@case("occurred_at.in_future", how="just beyond clock skew")
def _acknowledge_beyond_skew(w: World) -> Attempt:
    # Up to CLOCK_SKEW ahead is accepted (client clock drift); one second more is not.
    w.run(
        RegisterClient(
            client_name="Skew",
            registration_number="S-1",
            company_type="smb",
            support_coverage="on_call",
            preferred_communication="portal",
            occurred_at=NOW + CLOCK_SKEW,
        ),
        w.admin,
    )
    at = NOW + CLOCK_SKEW + timedelta(seconds=1)
    return Attempt(AcknowledgeIncident(incident=w.incident, occurred_at=at), w.manager)


@case("detection_time.in_future")
def _open_detected_in_future(w: World) -> Attempt:
    command = open_incident(reported_by=w.manager, detection_time=NOW + timedelta(minutes=10))
    return Attempt(command, w.manager)


BEFORE_DETECTION_COMMANDS: dict[str, Callable[[World], Command]] = {
    "open": lambda w: open_incident(reported_by=w.manager, occurred_at=BEFORE_DETECTION),
    "acknowledge": lambda w: AcknowledgeIncident(incident=w.incident, occurred_at=BEFORE_DETECTION),
    "escalate": lambda w: Escalate(
        incident=w.incident, escalated_to=w.other_manager, reason="x", occurred_at=BEFORE_DETECTION
    ),
    "escalation status": lambda w: UpdateEscalationStatus(
        escalation=w.escalate(), status="approved", occurred_at=BEFORE_DETECTION
    ),
    "work note": lambda w: AddWorkNote(
        incident=w.incident,
        note_type="troubleshooting",
        note_text="x",
        occurred_at=BEFORE_DETECTION,
    ),
    "work note update": lambda w: UpdateWorkNote(
        work_note=w.note(), note_text="Corrected", occurred_at=BEFORE_DETECTION
    ),
    "attachment": lambda w: attach("incident", w.incident, occurred_at=BEFORE_DETECTION),
}
for _how, _command in BEFORE_DETECTION_COMMANDS.items():

    def _before_detection(w: World, command: Callable[[World], Command] = _command) -> Attempt:
        return Attempt(command(w), w.manager)

    case("occurred_at.before_detection", how=_how)(_before_detection)


@case("concurrency.version_mismatch", ConcurrencyConflict, how="incident")
def _acknowledge_stale_incident(w: World) -> Attempt:
    return Attempt(AcknowledgeIncident(incident=w.incident, expected_version=2), w.manager)


@case("concurrency.version_mismatch", ConcurrencyConflict, how="user")
def _update_stale_user(w: World) -> Attempt:
    w.run(UpdateUser(user=w.support, first_name="Samuel"), w.admin)
    command = UpdateUser(user=w.support, first_name="Sammy", expected_version=1)
    return Attempt(command, w.admin)


@case("idempotency.key_reused", InvalidInput)
def _key_reused_with_other_body(w: World) -> Attempt:
    first = AcknowledgeIncident(incident=w.incident)
    w.ledger.handle(first, w.manager, idempotency_key="key-1", request_hash="hash-a")
    command = AssignIncident(incident=w.incident, assigned_to=w.other_manager)
    return Attempt(command, w.manager, idempotency_key="key-1", request_hash="hash-b")


@pytest.mark.parametrize(("build", "code", "error"), CASES)
def test_command_is_refused_with_its_code_and_appends_nothing(
    world: World, build: Case, code: str, error: type[LedgerError]
) -> None:
    attempt = build(world)
    assert_refused(
        world,
        attempt.command,
        attempt.actor,
        error,
        code,
        idempotency_key=attempt.idempotency_key,
        request_hash=attempt.request_hash,
    )


# --- refusals that need more than one command -----------------------------------------------------


def test_authenticate_refuses_unknown_key(world: World) -> None:
    head = world.head()
    with pytest.raises(Unauthenticated) as refusal:
        world.ledger.authenticate("bad")
    assert refusal.value.code == "auth.invalid_key"
    assert world.head() == head


def test_authenticate_refuses_key_of_inactive_user(world: World) -> None:
    key = world.run(IssueApiKey(user=world.other_manager), world.admin).secret
    assert world.ledger.authenticate(key).id == world.other_manager
    world.deactivate(world.other_manager)
    head = world.head()
    with pytest.raises(Forbidden) as refusal:
        world.ledger.authenticate(key)
    assert refusal.value.code == "actor.inactive"
    assert world.head() == head


def test_idempotent_retry_with_same_body_appends_nothing(world: World) -> None:
    command = AcknowledgeIncident(incident=world.incident)
    first = world.ledger.handle(command, world.manager, idempotency_key="k", request_hash="h")
    head = world.head()
    again = world.ledger.handle(command, world.manager, idempotency_key="k", request_hash="h")
    assert again.replayed
    assert not first.replayed
    assert again.model_copy(update={"replayed": False}) == first
    assert world.head() == head


class InterleavedLedger(IncidentLedger):
    """Runs `meanwhile` just before an append: another command slips in between a command's
    decision and its save, as a concurrent request would."""

    meanwhile: Callable[[], None] | None = None

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        hook, self.meanwhile = self.meanwhile, None
        if hook is not None:
            hook()
        return super().save(*objs, **kwargs)


@pytest.fixture
def interleaved() -> Iterator[World]:
    """The same world, on a ledger whose appends can be interleaved."""
    built = build_world(InterleavedLedger)
    yield built
    built.ledger.close()


def test_command_on_record_that_moved_meanwhile_is_refused(interleaved: World) -> None:
    w = interleaved
    ledger = w.ledger
    assert isinstance(ledger, InterleavedLedger)
    heads: list[int] = []

    def reassign() -> None:
        w.run(AssignIncident(incident=w.incident, assigned_to=w.other_manager))
        heads.append(w.head())

    ledger.meanwhile = reassign
    with pytest.raises(ConcurrencyConflict) as refusal:
        ledger.handle(AcknowledgeIncident(incident=w.incident), w.manager)
    assert refusal.value.code == "concurrency.conflict"
    assert refusal.value.details["current_version"] == 2
    assert heads == [w.head()]  # only the concurrent command's event was appended


@pytest.mark.parametrize("retry_seconds", [0.0, 0.4])
def test_command_whose_guarded_record_keeps_moving_gives_up(
    interleaved: World, retry_seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Escalate guards the incident without addressing it: each time it moves, the command is
    decided again; after MAX_ATTEMPTS attempts and RETRY_SECONDS the client is told to retry."""
    monkeypatch.setattr(ledger_module, "RETRY_SECONDS", retry_seconds)
    w = interleaved
    ledger = w.ledger
    assert isinstance(ledger, InterleavedLedger)
    titles = iter(f"Title {n}" for n in range(100_000))
    moves: list[int] = []

    def retitle() -> None:
        w.run(UpdateIncidentDetails(incident=w.incident, title=next(titles)))
        moves.append(w.head())
        ledger.meanwhile = retitle

    ledger.meanwhile = retitle
    command = Escalate(incident=w.incident, escalated_to=w.other_manager, reason="DB expertise")
    started = time.monotonic()
    with pytest.raises(ConcurrencyConflict) as refusal:
        ledger.handle(command, w.manager)
    ledger.meanwhile = None
    assert refusal.value.code == "concurrency.busy"
    if retry_seconds:  # it kept trying past MAX_ATTEMPTS until the time was up
        assert len(moves) > MAX_ATTEMPTS
        assert time.monotonic() - started >= retry_seconds
    else:
        assert len(moves) == MAX_ATTEMPTS
    assert moves[-1] == w.head()  # only the concurrent commands' events were appended
    topics = [n.topic for n in ledger.recorder.select_notifications(1, 10_000)]
    assert not any(Escalation.__qualname__ in topic for topic in topics)


def test_open_incident_refused_when_detected_after_now_within_clock_skew(world: World) -> None:
    """The skew margin tolerates a client's clock, but an incident opened now (no occurred_at)
    cannot have been detected later than now: it would be recorded before its detection."""
    before = world.head()
    soon = NOW + CLOCK_SKEW / 2
    with pytest.raises(RuleViolation) as refused:
        world.run(open_incident(reported_by=world.manager, detection_time=soon))
    assert refused.value.code == "detection_time.in_future"
    assert world.head() == before
    opened = world.run(
        open_incident(reported_by=world.manager, detection_time=soon, occurred_at=soon)
    )
    assert opened.number is not None
