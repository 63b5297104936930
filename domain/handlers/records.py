"""Handlers for the records around an incident: escalations (SOP 3, 16), work notes (SOP 14),
communications (SOP 11) and attachments (SOP 15)."""

from __future__ import annotations

from uuid import UUID

from domain.attachment import AddAttachment, Attachment, ReferenceType
from domain.base import Aggregate
from domain.change import Change
from domain.communication import Communication, SendCommunication
from domain.context import Context, Decision, entry, outcome
from domain.errors import NotFound
from domain.escalation import Escalate, Escalation, UpdateEscalationStatus
from domain.incident import Incident
from domain.pir import PostIncidentReview
from domain.problem import Problem
from domain.rca import RootCauseAnalysis
from domain.report import IncidentReport
from domain.work_note import AddWorkNote, IncidentOrProblem, NoteType, UpdateWorkNote, WorkNote

# Records an attachment may reference.
ATTACHABLE: dict[ReferenceType, type[Aggregate]] = {
    ReferenceType.INCIDENT: Incident,
    ReferenceType.COMMUNICATION: Communication,
    ReferenceType.REPORT: IncidentReport,
    ReferenceType.PROBLEM: Problem,
    ReferenceType.CHANGE: Change,
    ReferenceType.RCA: RootCauseAnalysis,
    ReferenceType.PIR: PostIncidentReview,
}


def _after_detection(
    ctx: Context, incident_id: UUID | None, problem_id: UUID | None = None
) -> None:
    """A step on a record of an incident (or a problem) cannot be dated before the incident (the
    problem) was detected."""
    if incident_id is not None:
        incident = ctx.find(Incident, incident_id, "incident")
        ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    if problem_id is not None:
        problem = ctx.find(Problem, problem_id, "problem")
        ctx.not_before(problem.detected_at, f"the detection of {problem.number}")


def _parent(cmd: IncidentOrProblem, ctx: Context) -> tuple[UUID | None, UUID | None]:
    if cmd.problem is not None:
        problem = ctx.find(Problem, cmd.problem, "problem")
        ctx.not_before(problem.detected_at, f"the detection of {problem.number}")
        return None, problem.id
    found = ctx.find(Incident, cmd.incident or "", "incident")
    ctx.not_before(found.detection_time, f"the detection of {found.number}")
    return found.id, None


def escalate(cmd: Escalate, ctx: Context) -> Decision:
    # The incident's state is the rule: it is guarded, so a concurrent resolve either commits
    # first (and this command is decided again, and refused) or after the escalation.
    incident = ctx.find(Incident, cmd.incident, "incident", guard=True)
    if cmd.expected_version is not None:
        ctx.address(incident, cmd.expected_version)
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    incident.require_open_or_in_progress("be escalated")
    target = ctx.active_user(cmd.escalated_to, "escalation target")
    escalation = Escalation(
        meta=ctx.meta,
        incident_id=incident.id,
        escalated_from=ctx.actor_id,
        escalated_to=target.id,
        reason=cmd.reason,
    )
    return outcome(escalation), [escalation]


def update_escalation(cmd: UpdateEscalationStatus, ctx: Context) -> Decision:
    escalation = ctx.find(Escalation, cmd.escalation, "escalation")
    ctx.address(escalation, cmd.expected_version)
    _after_detection(ctx, escalation.incident_id)
    escalation.update_status(ctx.meta, cmd.status)
    note = WorkNote(
        meta=ctx.meta,
        incident_id=escalation.incident_id,
        problem_id=None,
        note_type=NoteType.PROGRESS_UPDATE,
        note_text=f"Escalation status updated to {cmd.status.value}.",
    )
    return outcome(escalation, work_note_id=str(note.id)), [escalation, note]


def add_work_note(cmd: AddWorkNote, ctx: Context) -> Decision:
    incident_id, problem_id = _parent(cmd, ctx)
    note = WorkNote(
        meta=ctx.meta,
        incident_id=incident_id,
        problem_id=problem_id,
        note_type=cmd.note_type,
        note_text=cmd.note_text,
    )
    return outcome(note), [note]


def update_work_note(cmd: UpdateWorkNote, ctx: Context) -> Decision:
    note = ctx.address(ctx.find(WorkNote, cmd.work_note, "work_note"), cmd.expected_version)
    _after_detection(ctx, note.incident_id, note.problem_id)
    note.update_text(ctx.meta, cmd.note_text)
    return outcome(note), [note]


def send_communication(cmd: SendCommunication, ctx: Context) -> Decision:
    incident_id, problem_id = _parent(cmd, ctx)
    if cmd.recipient is not None:
        ctx.active_user(cmd.recipient, "recipient")
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


def add_attachment(cmd: AddAttachment, ctx: Context) -> Decision:
    what = cmd.reference_type.value
    cls = ATTACHABLE.get(cmd.reference_type)
    if cls is None:
        raise NotFound(f"{what}.not_found", f"No {what} {cmd.reference}.")
    record = ctx.find(cls, cmd.reference, what)
    incident_id = (
        record.id if isinstance(record, Incident) else getattr(record, "incident_id", None)
    )
    problem_id = record.id if isinstance(record, Problem) else getattr(record, "problem_id", None)
    _after_detection(ctx, incident_id, problem_id)
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


HANDLERS = dict(
    [
        entry(Escalate, escalate),
        entry(UpdateEscalationStatus, update_escalation),
        entry(AddWorkNote, add_work_note),
        entry(UpdateWorkNote, update_work_note),
        entry(SendCommunication, send_communication),
        entry(AddAttachment, add_attachment),
    ]
)
