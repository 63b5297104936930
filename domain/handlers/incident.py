"""Handlers for the incident and its records (SOP 2, 3, 10, 11, 14, 15, 16)."""

from __future__ import annotations

from uuid import UUID

from domain.base import Aggregate, InvalidInput, NotFound, changes_between, require
from domain.bridge import Bridge, BridgeType
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    Incident,
    IncidentCommand,
    IncidentStatus,
    LinkCIToIncident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.ledger import CLOCK_SKEW, Context, IncidentLedger, Outcome, handles, outcome
from domain.parties import ConfigurationItem
from domain.records import (
    AddAttachment,
    AddWorkNote,
    Attachment,
    Communication,
    Escalate,
    Escalation,
    IncidentReport,
    NoteType,
    ReferenceType,
    ReportType,
    SendCommunication,
    UpdateEscalationStatus,
    UpdateWorkNote,
    WorkNote,
)
from domain.severity import Severity, SeverityAssessment, SeverityDecision, assess_severity

Decision = tuple[Outcome, list[Aggregate]]

# Records an attachment may reference; the others (problem, change, RCA, PIR) arrive with
# their own aggregates, and until then no such record exists.
ATTACHABLE: dict[ReferenceType, type[Aggregate]] = {
    ReferenceType.INCIDENT: Incident,
    ReferenceType.COMMUNICATION: Communication,
    ReferenceType.REPORT: IncidentReport,
}


def _incident(ledger: IncidentLedger, cmd: IncidentCommand, ctx: Context) -> Incident:
    incident = ctx.address(ledger.find(Incident, cmd.incident, "incident"), cmd.expected_version)
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    return incident


def _severity(
    given: Severity | None, assessment: SeverityAssessment | None
) -> tuple[Severity | None, SeverityDecision | None]:
    """A given severity wins; else the SOP 2.1 assessment decides (and is recorded either way)."""
    decision = assess_severity(assessment) if assessment is not None else None
    return given or (decision.severity if decision else None), decision


def _after_detection(ledger: IncidentLedger, ctx: Context, incident_id: UUID | None) -> None:
    """A step on a record of an incident cannot be dated before the incident was detected."""
    if incident_id is not None:
        incident = ledger.find(Incident, incident_id, "incident")
        ctx.not_before(incident.detection_time, f"the detection of {incident.number}")


def _parent(
    ledger: IncidentLedger, incident: str | None, problem: str | None, ctx: Context
) -> tuple[UUID | None, UUID | None]:
    if problem is not None:
        raise NotFound("problem.not_found", f"No problem {problem}.")
    found = ledger.find(Incident, incident or "", "incident")
    ctx.not_before(found.detection_time, f"the detection of {found.number}")
    return found.id, None


@handles(OpenIncident)
def open_incident(ledger: IncidentLedger, cmd: OpenIncident, ctx: Context) -> Decision:
    if cmd.detection_time > ctx.now + CLOCK_SKEW:
        raise InvalidInput(
            "detection_time.in_future",
            f"detection_time {cmd.detection_time.isoformat()} is in the future.",
        )
    if cmd.occurred_at is not None:
        ctx.not_before(cmd.detection_time, "the detection time")
    ledger.active_user(cmd.reported_by, "reporter")
    if cmd.assigned_to is not None:
        ledger.active_user(cmd.assigned_to, "assignee")
    cis = [
        ledger.find(ConfigurationItem, ci, "configuration_item") for ci in cmd.configuration_items
    ]
    severity, decision = _severity(cmd.severity, cmd.assessment)
    assert severity is not None  # the command's validator guarantees one of them
    number, counter = ctx.next_number("INC")
    incident = Incident(
        meta=ctx.meta,
        number=number,
        title=cmd.title,
        description=cmd.description,
        category=cmd.category,
        severity=severity,
        impact=cmd.impact,
        urgency=cmd.urgency,
        reported_by=cmd.reported_by,
        assigned_to=cmd.assigned_to,
        detection_time=cmd.detection_time,
        assessment=cmd.assessment,
        decision=decision,
    )
    for ci in cis:  # SOP 2.1 step 5 / SOP 10, in the same append
        incident.link_configuration_item(ctx.meta, ci.id)
    saved: list[Aggregate] = [counter, incident]
    extra: dict[str, str] = {}
    if severity in (Severity.P1, Severity.P2) and cmd.assigned_to is not None:
        # SOP 2.1 step 4 → SOP 4.1: a major-incident bridge hosted by the assigned incident
        # manager, and the incident moves to in_progress. Without an assignee the incident is
        # still recorded (never refuse to record an outage); the missing bridge is an obligation.
        bridge_number, bridge_counter = ctx.next_number("BRG")
        bridge = Bridge(
            meta=ctx.meta,
            number=bridge_number,
            incident_id=incident.id,
            bridge_type=BridgeType.MAJOR_INCIDENT,
            host=cmd.assigned_to,
            start_time=ctx.meta.occurred_at,
        )
        incident.change_status(ctx.meta, IncidentStatus.IN_PROGRESS)
        saved += [bridge_counter, bridge]
        extra = {"bridge_id": str(bridge.id), "bridge_number": bridge_number}
    return outcome(incident, **extra), saved


@handles(AcknowledgeIncident)
def acknowledge(ledger: IncidentLedger, cmd: AcknowledgeIncident, ctx: Context) -> Decision:
    incident = _incident(ledger, cmd, ctx)
    ctx.require_assignee_if_support(incident)
    incident.acknowledge(ctx.meta)
    return outcome(incident), [incident]


@handles(AssignIncident)
def assign(ledger: IncidentLedger, cmd: AssignIncident, ctx: Context) -> Decision:
    incident = _incident(ledger, cmd, ctx)
    ledger.active_user(cmd.assigned_to, "assignee")
    incident.assign(ctx.meta, cmd.assigned_to)
    return outcome(incident), [incident]


@handles(ChangeIncidentStatus)
def change_status(ledger: IncidentLedger, cmd: ChangeIncidentStatus, ctx: Context) -> Decision:
    incident = _incident(ledger, cmd, ctx)
    ctx.require_assignee_if_support(incident)
    incident.change_status(ctx.meta, cmd.status)
    saved: list[Aggregate] = [incident]
    extra: dict[str, str] = {}
    if cmd.status == IncidentStatus.CLOSED:  # SOP 2.2 step 5: the draft postmortem report
        number, counter = ctx.next_number("RPT")
        report = IncidentReport(
            meta=ctx.meta,
            number=number,
            incident_id=incident.id,
            report_type=ReportType.POST_INCIDENT_REVIEW,
            report_title=f"Post Incident Review - {incident.number}",
            report_content=f"Incident {incident.number} has been closed.",
        )
        saved += [counter, report]
        extra = {"report_id": str(report.id), "report_number": number}
    return outcome(incident, **extra), saved


@handles(UpdateIncidentDetails)
def update_details(ledger: IncidentLedger, cmd: UpdateIncidentDetails, ctx: Context) -> Decision:
    incident = _incident(ledger, cmd, ctx)
    fields = {"title", "description", "category", "impact", "urgency"}
    changes = changes_between(incident, cmd.model_dump(include=fields, exclude_none=True))
    severity, decision = _severity(cmd.severity, cmd.assessment)
    incident.update_details(ctx.meta, changes, severity, cmd.assessment, decision)
    return outcome(incident), [incident]


@handles(LinkCIToIncident)
def link_ci(ledger: IncidentLedger, cmd: LinkCIToIncident, ctx: Context) -> Decision:
    incident = _incident(ledger, cmd, ctx)
    ci = ledger.find(ConfigurationItem, cmd.configuration_item, "configuration_item")
    incident.link_configuration_item(ctx.meta, ci.id)
    return outcome(incident), [incident]


@handles(Escalate)
def escalate(ledger: IncidentLedger, cmd: Escalate, ctx: Context) -> Decision:
    incident = ledger.find(Incident, cmd.incident, "incident")
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    require(
        incident.status in (IncidentStatus.OPEN, IncidentStatus.IN_PROGRESS),
        "incident.not_open",
        f"Only an open or in-progress incident can be escalated; {incident.number} is "
        f"{incident.status.value}.",
    )
    target = ledger.active_user(cmd.escalated_to, "escalation target")
    escalation = Escalation(
        meta=ctx.meta,
        incident_id=incident.id,
        escalated_from=ctx.actor_id,
        escalated_to=target.id,
        reason=cmd.reason,
    )
    return outcome(escalation), [escalation]


@handles(UpdateEscalationStatus)
def update_escalation(
    ledger: IncidentLedger, cmd: UpdateEscalationStatus, ctx: Context
) -> Decision:
    escalation = ctx.address(ledger.find(Escalation, cmd.escalation, "escalation"))
    _after_detection(ledger, ctx, escalation.incident_id)
    escalation.update_status(ctx.meta, cmd.status)
    note = WorkNote(
        meta=ctx.meta,
        incident_id=escalation.incident_id,
        problem_id=None,
        note_type=NoteType.PROGRESS_UPDATE,
        note_text=f"Escalation status updated to {cmd.status.value}.",
    )
    return outcome(escalation, work_note_id=str(note.id)), [escalation, note]


@handles(AddWorkNote)
def add_work_note(ledger: IncidentLedger, cmd: AddWorkNote, ctx: Context) -> Decision:
    incident_id, problem_id = _parent(ledger, cmd.incident, cmd.problem, ctx)
    note = WorkNote(
        meta=ctx.meta,
        incident_id=incident_id,
        problem_id=problem_id,
        note_type=cmd.note_type,
        note_text=cmd.note_text,
    )
    return outcome(note), [note]


@handles(UpdateWorkNote)
def update_work_note(ledger: IncidentLedger, cmd: UpdateWorkNote, ctx: Context) -> Decision:
    note = ctx.address(ledger.find(WorkNote, cmd.work_note, "work_note"))
    _after_detection(ledger, ctx, note.incident_id)
    note.update_text(ctx.meta, cmd.note_text)
    return outcome(note), [note]


@handles(SendCommunication)
def send_communication(ledger: IncidentLedger, cmd: SendCommunication, ctx: Context) -> Decision:
    incident_id, problem_id = _parent(ledger, cmd.incident, cmd.problem, ctx)
    if cmd.recipient is not None:
        ledger.active_user(cmd.recipient, "recipient")
    communication = Communication(
        meta=ctx.meta,
        incident_id=incident_id,
        problem_id=problem_id,
        communication_type=cmd.communication_type,
        recipient_type=cmd.recipient_type,
        sender=ctx.actor_id,
        recipient=cmd.recipient,
        delivery_method=cmd.delivery_method,
        delivery_status=cmd.delivery_status,
        message_content=cmd.message_content,
    )
    return outcome(communication), [communication]


@handles(AddAttachment)
def add_attachment(ledger: IncidentLedger, cmd: AddAttachment, ctx: Context) -> Decision:
    what = cmd.reference_type.value
    cls = ATTACHABLE.get(cmd.reference_type)
    if cls is None:
        raise NotFound(f"{what}.not_found", f"No {what} {cmd.reference}.")
    record = ledger.find(cls, cmd.reference, what)
    incident_id = (
        record.id if isinstance(record, Incident) else getattr(record, "incident_id", None)
    )
    _after_detection(ledger, ctx, incident_id)
    attachment = Attachment(
        meta=ctx.meta,
        reference_type=cmd.reference_type,
        reference_id=record.id,
        incident_id=incident_id,
        file_name=cmd.file_name,
        file_url=cmd.file_url,
        file_type=cmd.file_type,
        file_size_bytes=cmd.file_size_bytes,
        sha256=cmd.sha256,
    )
    return outcome(attachment), [attachment]
