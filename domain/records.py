"""The smaller records around an incident: escalations (SOP 3, 16), work notes (SOP 14),
communications (SOP 11), attachments (SOP 15) and incident reports (SOP 2.2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import Field, model_validator

from domain.base import Aggregate, Command, Meta, Role, RuleViolation, require, stable_id
from domain.incident import MANAGERS, RESPONDERS, Text

WRITERS = frozenset({Role.INCIDENT_MANAGER, Role.TECHNICAL_SUPPORT, Role.ACCOUNT_MANAGER})


class EscalationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"


class NoteType(StrEnum):
    PROGRESS_UPDATE = "progress_update"
    TROUBLESHOOTING = "troubleshooting"
    RESOLUTION = "resolution"


class CommunicationType(StrEnum):
    STATUS_UPDATE = "status_update"
    RESOLUTION_NOTICE = "resolution_notice"
    ESCALATION_NOTICE = "escalation_notice"
    BRIDGE_INVITATION = "bridge_invitation"
    OTHER = "other"


class RecipientType(StrEnum):
    CLIENT = "client"
    INTERNAL = "internal"
    EXECUTIVE = "executive"


class DeliveryMethod(StrEnum):
    EMAIL = "email"
    PORTAL = "portal"
    SMS = "sms"
    PHONE = "phone"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class ReferenceType(StrEnum):
    INCIDENT = "incident"
    CHANGE = "change"
    RCA = "rca"
    REPORT = "report"
    PIR = "pir"
    COMMUNICATION = "communication"
    PROBLEM = "problem"


class ReportType(StrEnum):
    POST_INCIDENT_REVIEW = "post_incident_review"
    CLIENT_IMPACT = "client_impact"
    COMPLIANCE = "compliance"


class ReportStatus(StrEnum):
    DRAFT = "draft"
    COMPLETED = "completed"
    APPROVED = "approved"
    ARCHIVED = "archived"


class _IncidentOrProblem(Command):
    incident: str | None = Field(default=None, description="Incident UUID or number.")
    problem: str | None = Field(default=None, description="Problem UUID or number.")

    @model_validator(mode="after")
    def _exactly_one_parent(self) -> Self:
        if (self.incident is None) == (self.problem is None):
            raise ValueError("give exactly one of 'incident' or 'problem'")
        return self


# --- commands -------------------------------------------------------------------------------------


class Escalate(Command):
    """SOP 3: escalate an open or in-progress incident to an active user."""

    roles = MANAGERS
    incident: str
    escalated_to: UUID
    reason: Text


class UpdateEscalationStatus(Command):
    """SOP 16: approve, deny or cancel an escalation; a work note records it on the incident."""

    roles = MANAGERS
    escalation: UUID
    status: EscalationStatus


class AddWorkNote(_IncidentOrProblem):
    """SOP 14: add a work note to an incident or a problem."""

    roles = WRITERS
    note_type: NoteType
    note_text: Text


class UpdateWorkNote(Command):
    """SOP 14: correct a work note; the earlier text stays in the history."""

    roles = WRITERS
    work_note: UUID
    note_text: Text


class SendCommunication(_IncidentOrProblem):
    """SOP 11: record a communication about an incident or a problem."""

    roles = WRITERS
    communication_type: CommunicationType
    recipient_type: RecipientType
    delivery_method: DeliveryMethod
    delivery_status: DeliveryStatus = DeliveryStatus.PENDING
    recipient: UUID | None = None
    message_content: Text


class AddAttachment(Command):
    """SOP 15: attach a file reference to a record."""

    roles = RESPONDERS
    reference_type: ReferenceType
    reference: str = Field(description="UUID or number of the record the file belongs to.")
    file_name: Annotated[str, Field(min_length=1, max_length=500)]
    file_url: Annotated[str, Field(min_length=1, max_length=2000)]
    file_type: Annotated[str, Field(min_length=1, max_length=100)]
    file_size_bytes: int = Field(ge=0)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


# --- aggregates -----------------------------------------------------------------------------------

E = EscalationStatus
ESCALATION_TRANSITIONS: dict[EscalationStatus, frozenset[EscalationStatus]] = {
    E.PENDING: frozenset({E.APPROVED, E.DENIED, E.CANCELLED}),
    E.APPROVED: frozenset({E.CANCELLED}),
    E.DENIED: frozenset(),
    E.CANCELLED: frozenset(),
}


class Escalation(Aggregate):
    @event("Created")
    def __init__(
        self,
        meta: Meta,
        incident_id: UUID,
        escalated_from: UUID | None,
        escalated_to: UUID,
        reason: str,
    ) -> None:
        self.incident_id = incident_id
        self.escalated_from = escalated_from
        self.escalated_to = escalated_to
        self.reason = reason
        self.status = EscalationStatus.PENDING

    def update_status(self, meta: Meta, status: EscalationStatus) -> None:
        allowed = ESCALATION_TRANSITIONS[self.status]
        if status not in allowed:
            raise RuleViolation(
                "escalation.invalid_transition",
                f"The escalation cannot go from {self.status.value} to {status.value}.",
                current_status=self.status.value,
                allowed=sorted(s.value for s in allowed),
            )
        self._status_updated(meta, status, self.status)

    @event("StatusUpdated")
    def _status_updated(
        self, meta: Meta, status: EscalationStatus, previous: EscalationStatus
    ) -> None:
        self.status = status


class WorkNote(Aggregate):
    @event("Added")
    def __init__(
        self,
        meta: Meta,
        incident_id: UUID | None,
        problem_id: UUID | None,
        note_type: NoteType,
        note_text: str,
    ) -> None:
        self.incident_id = incident_id
        self.problem_id = problem_id
        self.note_type = note_type
        self.note_text = note_text

    def update_text(self, meta: Meta, note_text: str) -> None:
        require(note_text != self.note_text, "work_note.no_change", "The note already says that.")
        self._updated(meta, note_text, self.note_text)

    @event("Updated")
    def _updated(self, meta: Meta, note_text: str, previous: str) -> None:
        self.note_text = note_text


class Communication(Aggregate):
    @event("Sent")
    def __init__(
        self,
        meta: Meta,
        incident_id: UUID | None,
        problem_id: UUID | None,
        communication_type: CommunicationType,
        recipient_type: RecipientType,
        sender: UUID | None,
        recipient: UUID | None,
        delivery_method: DeliveryMethod,
        delivery_status: DeliveryStatus,
        message_content: str,
    ) -> None:
        self.incident_id = incident_id
        self.problem_id = problem_id
        self.communication_type = communication_type
        self.recipient_type = recipient_type
        self.sender = sender
        self.recipient = recipient
        self.delivery_method = delivery_method
        self.delivery_status = delivery_status
        self.message_content = message_content


class Attachment(Aggregate):
    @event("Added")
    def __init__(
        self,
        meta: Meta,
        reference_type: ReferenceType,
        reference_id: UUID,
        incident_id: UUID | None,
        file_name: str,
        file_url: str,
        file_type: str,
        file_size_bytes: int,
        sha256: str | None,
    ) -> None:
        self.reference_type = reference_type
        self.reference_id = reference_id
        self.incident_id = incident_id
        self.file_name = file_name
        self.file_url = file_url
        self.file_type = file_type
        self.file_size_bytes = file_size_bytes
        self.sha256 = sha256


class IncidentReport(Aggregate):
    @staticmethod
    def create_id(number: str, **_: Any) -> UUID:
        return stable_id("record", number)

    @event("Generated")
    def __init__(
        self,
        meta: Meta,
        number: str,
        incident_id: UUID,
        report_type: ReportType,
        report_title: str,
        report_content: str,
    ) -> None:
        self.number = number
        self.incident_id = incident_id
        self.report_type = report_type
        self.report_title = report_title
        self.report_content = report_content
        self.status = ReportStatus.DRAFT


class Counter(Aggregate):
    """Issues the human numbers of one kind of record (INC0000001...): gapless, never reused."""

    @staticmethod
    def create_id(prefix: str, **_: Any) -> UUID:
        return stable_id("counter", prefix)

    @event("Started")
    def __init__(self, meta: Meta, prefix: str) -> None:
        self.prefix = prefix
        self.last = 0

    def next_number(self, meta: Meta) -> str:
        self._issued(meta, self.last + 1)
        return f"{self.prefix}{self.last:07d}"

    @event("NumberIssued")
    def _issued(self, meta: Meta, value: int) -> None:
        self.last = value
