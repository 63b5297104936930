"""The SOP flows that exist today, each written once and run on the in-memory ledger and on
PostgreSQL: the records' state after each step, and the events each command appended (types in
order, one command id per append)."""

from __future__ import annotations

from domain.attachment import AddAttachment, Attachment
from domain.base import Role
from domain.bridge import Bridge, BridgeStatus, BridgeType
from domain.client import RegisterClient, SupportCoverage, UpdateClient
from domain.communication import Communication, SendCommunication
from domain.configuration_item import (
    AssignCIToClient,
    OperationalStatus,
    UnassignCIFromClient,
    UpdateConfigurationItem,
)
from domain.escalation import Escalate, Escalation, EscalationStatus, UpdateEscalationStatus
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    Incident,
    IncidentStatus,
    LinkCIToIncident,
    UpdateIncidentDetails,
)
from domain.report import IncidentReport, ReportStatus, ReportType
from domain.severity import Severity, SeverityAssessment
from domain.user import (
    DeactivateUser,
    EmailIndex,
    ReactivateUser,
    RegisterUser,
    Status,
    UpdateUser,
    User,
)
from domain.work_note import AddWorkNote, NoteType, UpdateWorkNote, WorkNote
from tests.scenarios.conftest import Driver, qualname

STATUS_CHANGED = ["Incident.StatusChanged"]


def test_sop1_users_clients_and_configuration_items(driver: Driver) -> None:
    d = driver
    client = d.run(
        RegisterClient(
            client_name=d.unique("Acme"),
            registration_number=d.unique("REG"),
            company_type="enterprise",
            support_coverage="24x7",
            preferred_communication="email",
        )
    )
    assert client.types == ["Client.Registered"]

    old_email = d.email("mia")
    manager = d.run(
        RegisterUser(
            first_name="Mia",
            last_name="Manager",
            email=old_email,
            role="incident_manager",
            timezone="Europe/London",
        )
    )
    assert manager.types == ["User.Registered", "EmailIndex.Claimed"]
    manager.assert_one_command(d.admin)

    contact = d.run(
        RegisterUser(
            first_name="Cal",
            last_name="Contact",
            email=d.email("cal"),
            role="client_contact",
            timezone="UTC",
            client_id=client.id,
        )
    )
    assert (d.get(contact.id).role, d.get(contact.id).client_id) == (Role.CLIENT_CONTACT, client.id)

    new_email = d.email("mia")
    updated = d.run(UpdateUser(user=manager.id, email=new_email, timezone="UTC"))
    assert updated.types == ["User.Updated", "EmailIndex.Claimed", "EmailIndex.Released"]
    updated.assert_one_command(d.admin)
    (change,) = updated.of(User.Updated)
    assert change.changes == {
        "email": (old_email, new_email),
        "timezone": ("Europe/London", "UTC"),
    }
    user = d.get(manager.id)
    assert (user.email, user.timezone, user.version) == (new_email, "UTC", 2)
    released = d.get(EmailIndex.create_id(email=old_email))
    assert released.user_id is None

    # The released address may be used again, by someone else.
    again = d.user("account_manager", "Ada", email=old_email.upper())
    assert d.get(EmailIndex.create_id(email=old_email)).user_id == again

    deactivated = d.run(DeactivateUser(user=manager.id))
    assert deactivated.types == ["User.StatusChanged"]
    assert d.get(manager.id).status == Status.INACTIVE
    reactivated = d.run(ReactivateUser(user=manager.id, expected_version=3))
    assert reactivated.types == ["User.StatusChanged"]
    assert d.get(manager.id).status == Status.ACTIVE

    client_update = d.run(UpdateClient(client=client.id, support_coverage="business_hours"))
    assert client_update.types == ["Client.Updated"]
    assert d.get(client.id).support_coverage == SupportCoverage.BUSINESS_HOURS

    ci = d.ci(owner=manager.id)
    degraded = d.run(UpdateConfigurationItem(configuration_item=ci, operational_status="degraded"))
    assert degraded.types == ["ConfigurationItem.Updated"]
    assigned = d.run(AssignCIToClient(configuration_item=ci, client=client.id))
    assert assigned.types == ["ConfigurationItem.AssignedToClient"]
    item = d.get(ci)
    assert (item.operational_status, item.client_ids) == (OperationalStatus.DEGRADED, [client.id])
    unassigned = d.run(UnassignCIFromClient(configuration_item=ci, client=client.id))
    assert unassigned.types == ["ConfigurationItem.UnassignedFromClient"]
    assert d.get(ci).client_ids == []
    assert [qualname(e) for e in d.history(ci)] == [
        "ConfigurationItem.Registered",
        "ConfigurationItem.Updated",
        "ConfigurationItem.AssignedToClient",
        "ConfigurationItem.UnassignedFromClient",
    ]


def test_sop2_1_major_incident_opens_bridge_and_starts_work_in_one_append(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    ci = d.ci(owner=manager)

    opened = d.open_incident(
        manager,
        severity=None,
        assessment=SeverityAssessment(multiple_departments=True),
        configuration_items=[ci],
    )

    assert opened.types == [
        "Counter.NumberIssued",
        "Incident.Opened",
        "Incident.ConfigurationItemLinked",
        "Incident.StatusChanged",
        "Incident.BridgeOpened",
        "Counter.NumberIssued",
        "Bridge.Opened",
    ]
    opened.assert_one_command(manager)
    (event,) = opened.of(Incident.Opened)
    assert event.assessment == SeverityAssessment(multiple_departments=True)
    assert event.decision is not None
    assert (event.decision.severity, event.decision.rule) == (Severity.P2, 6)
    incident = d.get(opened.id)
    assert (incident.severity, incident.status) == (Severity.P2, IncidentStatus.IN_PROGRESS)
    assert incident.ci_ids == [ci]
    assert opened.outcome.number == incident.number
    bridge = d.get(opened.outcome.extra["bridge_id"])
    assert isinstance(bridge, Bridge)
    assert (bridge.bridge_type, bridge.host, bridge.incident_id, bridge.status) == (
        BridgeType.MAJOR_INCIDENT,
        manager,
        incident.id,
        BridgeStatus.ACTIVE,
    )
    assert bridge.number == opened.outcome.extra["bridge_number"]


def test_sop2_1_incident_without_incident_manager_is_recorded_without_bridge(
    driver: Driver,
) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")

    p1 = d.open_incident(manager, severity="P1", assigned_to=support)
    p2_unassigned = d.open_incident(manager, severity="P2", assigned_to=None)
    p3 = d.open_incident(manager, severity="P3")

    for step in (p1, p2_unassigned, p3):
        assert step.types == ["Counter.NumberIssued", "Incident.Opened"]
        step.assert_one_command(manager)
        assert d.get(step.id).status == IncidentStatus.OPEN
        assert "bridge_id" not in step.outcome.extra
    assert d.get(p1.id).severity == Severity.P1


def test_sop2_2_acknowledge_assign_reprioritise_resolve_reopen_and_close(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    opened = d.open_incident(manager)
    number = opened.outcome.number
    assert number is not None

    acknowledged = d.run(AcknowledgeIncident(incident=number), manager)
    assert acknowledged.types == ["Incident.Acknowledged"]
    assert d.get(opened.id).acknowledged_at == acknowledged.events[0].meta.occurred_at

    assigned = d.run(AssignIncident(incident=number, assigned_to=support), manager)
    assert assigned.types == ["Incident.Assigned"]
    (assignment,) = assigned.of(Incident.Assigned)
    assert (assignment.assigned_to, assignment.previous) == (support, manager)

    updated = d.run(
        UpdateIncidentDetails(
            incident=number, title="Checkout down", urgency="high", severity="P2"
        ),
        manager,
    )
    assert updated.types == ["Incident.DetailsUpdated", "Incident.Reprioritised"]
    updated.assert_one_command(manager)
    (details,) = updated.of(Incident.DetailsUpdated)
    assert details.changes == {
        "title": ("Checkout latency", "Checkout down"),
        "urgency": ("medium", "high"),
    }
    (reprioritised,) = updated.of(Incident.Reprioritised)
    assert (reprioritised.severity, reprioritised.previous) == (Severity.P2, Severity.P3)

    # The assignee (technical support) moves it along the status machine.
    path = ["in_progress", "monitoring", "resolved", "in_progress", "resolved"]
    for status in path:
        step = d.run(ChangeIncidentStatus(incident=number, status=status), support)
        assert step.types == STATUS_CHANGED
        assert d.get(opened.id).status == status
    incident = d.get(opened.id)
    assert incident.reopen_count == 1
    assert incident.resolved_at is not None

    closed = d.run(ChangeIncidentStatus(incident=number, status="closed"), support)

    assert closed.types == [
        "Incident.StatusChanged",
        "Counter.NumberIssued",
        "IncidentReport.Generated",
    ]
    closed.assert_one_command(support)
    incident = d.get(opened.id)
    assert incident.status == IncidentStatus.CLOSED
    assert incident.closed_at == closed.events[0].meta.occurred_at
    report = d.get(closed.outcome.extra["report_id"])
    assert isinstance(report, IncidentReport)
    assert report.report_content == f"Incident {number} has been closed."
    assert (report.status, report.report_type, report.incident_id) == (
        ReportStatus.DRAFT,
        ReportType.POST_INCIDENT_REVIEW,
        incident.id,
    )
    assert report.number == closed.outcome.extra["report_number"]
    assert [qualname(e) for e in d.history(opened.id)] == [
        "Incident.Opened",
        "Incident.Acknowledged",
        "Incident.Assigned",
        "Incident.DetailsUpdated",
        "Incident.Reprioritised",
        *STATUS_CHANGED * (len(path) + 1),
    ]


def test_sop3_and_16_escalate_then_approve_records_work_note(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    dba = d.user(Role.TECHNICAL_SUPPORT, "Dee")
    opened = d.open_incident(manager)

    escalated = d.run(
        Escalate(incident=str(opened.id), escalated_to=dba, reason="Needs a DBA"), manager
    )

    assert escalated.types == ["Escalation.Created"]
    escalation = d.get(escalated.id)
    assert isinstance(escalation, Escalation)
    assert (escalation.status, escalation.escalated_from, escalation.escalated_to) == (
        EscalationStatus.PENDING,
        manager,
        dba,
    )
    assert (escalation.incident_id, escalation.reason) == (opened.id, "Needs a DBA")

    approved = d.run(UpdateEscalationStatus(escalation=escalated.id, status="approved"), manager)

    assert approved.types == ["Escalation.StatusUpdated", "WorkNote.Added"]
    approved.assert_one_command(manager)
    assert d.get(escalated.id).status == EscalationStatus.APPROVED
    note = d.get(approved.outcome.extra["work_note_id"])
    assert isinstance(note, WorkNote)
    assert (note.incident_id, note.note_type, note.note_text) == (
        opened.id,
        NoteType.PROGRESS_UPDATE,
        "Escalation status updated to approved.",
    )

    cancelled = d.run(UpdateEscalationStatus(escalation=escalated.id, status="cancelled"), manager)
    assert cancelled.types == ["Escalation.StatusUpdated", "WorkNote.Added"]
    assert d.get(escalated.id).status == EscalationStatus.CANCELLED


def test_sop10_link_configuration_items_to_incident(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    api, db = d.ci(owner=manager, name="checkout-api"), d.ci(owner=manager, name="orders-db")
    opened = d.open_incident(manager, configuration_items=[api])
    assert opened.types == [
        "Counter.NumberIssued",
        "Incident.Opened",
        "Incident.ConfigurationItemLinked",
    ]

    linked = d.run(LinkCIToIncident(incident=str(opened.id), configuration_item=db), manager)

    assert linked.types == ["Incident.ConfigurationItemLinked"]
    (event,) = linked.of(Incident.ConfigurationItemLinked)
    assert event.ci_id == db
    assert d.get(opened.id).ci_ids == [api, db]


def test_sop11_14_15_communication_work_note_and_attachments(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    account = d.user(Role.ACCOUNT_MANAGER, "Ada")
    opened = d.open_incident(manager, assigned_to=support)
    number = opened.outcome.number
    assert number is not None

    # SOP 11: a communication, sent by the account manager to the incident manager.
    sent = d.run(
        SendCommunication(
            incident=number,
            communication_type="status_update",
            recipient_type="internal",
            delivery_method="email",
            delivery_status="sent",
            recipient=manager,
            message_content="We are investigating checkout latency.",
        ),
        account,
    )
    assert sent.types == ["Communication.Sent"]
    communication = d.get(sent.id)
    assert isinstance(communication, Communication)
    assert (communication.incident_id, communication.sender, communication.recipient) == (
        opened.id,
        account,
        manager,
    )

    # SOP 14: a work note, then a correction that keeps the earlier text in the history.
    added = d.run(
        AddWorkNote(incident=number, note_type="troubleshooting", note_text="Pool exhausted"),
        support,
    )
    assert added.types == ["WorkNote.Added"]
    corrected = d.run(
        UpdateWorkNote(work_note=added.id, note_text="Pool exhausted; raised to 200"), support
    )
    assert corrected.types == ["WorkNote.Updated"]
    (update,) = corrected.of(WorkNote.Updated)
    assert (update.note_text, update.previous) == (
        "Pool exhausted; raised to 200",
        "Pool exhausted",
    )
    assert d.get(added.id).note_text == "Pool exhausted; raised to 200"
    first, _ = d.history(added.id)
    assert (first.note_text, first.incident_id) == ("Pool exhausted", opened.id)

    # SOP 15: attachments on the incident and on the communication (both belong to the incident).
    for reference_type, reference in (("incident", number), ("communication", str(sent.id))):
        attached = d.run(
            AddAttachment(
                reference_type=reference_type,
                reference=reference,
                file_name="trace.log",
                file_url="https://files.example.test/trace.log",
                file_type="text/plain",
                file_size_bytes=2048,
                sha256="ab" * 32,
            ),
            support,
        )
        assert attached.types == ["Attachment.Added"]
        attachment = d.get(attached.id)
        assert isinstance(attachment, Attachment)
        assert (attachment.reference_type, attachment.incident_id) == (reference_type, opened.id)
        assert attachment.reference_id in (opened.id, sent.id)
        assert (attachment.file_size_bytes, attachment.sha256) == (2048, "ab" * 32)
