"""What GET answers for each record type: the record's state (`Aggregate.state()`), typed for
the OpenAPI document. The models forbid unknown fields, so a state the model does not describe
fails the tests instead of reaching a client undocumented."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class RecordState(BaseModel):
    """Every record: its id, its version (its ETag), when it was first and last recorded."""

    model_config = ConfigDict(extra="forbid")

    id: UUID
    version: int
    created_at: datetime = Field(description="When the ledger recorded its first event.")
    updated_at: datetime = Field(description="When the ledger recorded its latest event.")


class UserRecord(RecordState):
    first_name: str
    last_name: str
    email: str
    role: str
    timezone: str
    status: str
    client_id: UUID | None


class ClientRecord(RecordState):
    client_name: str
    registration_number: str
    company_type: str
    support_coverage: str
    preferred_communication: str
    primary_address: str | None
    status: str


class ConfigurationItemRecord(RecordState):
    ci_name: str
    ci_type: str
    environment: str
    operational_status: str
    responsible_owner: UUID | None
    client_ids: list[UUID]


class EscalationRecord(RecordState):
    incident_id: UUID
    escalated_from: UUID | None
    escalated_to: UUID
    reason: str
    status: str


class WorkNoteRecord(RecordState):
    incident_id: UUID | None
    problem_id: UUID | None
    note_type: str
    note_text: str


class CommunicationRecord(RecordState):
    incident_id: UUID | None
    problem_id: UUID | None
    communication_type: str
    recipient_type: str
    sender: UUID | None
    recipient: UUID | None
    delivery_method: str
    delivery_status: str
    message_content: str


class AttachmentRecord(RecordState):
    reference_type: str
    reference_id: UUID
    incident_id: UUID | None
    file_name: str
    file_url: str
    file_type: str
    file_size_bytes: int
    sha256: str | None


class ProblemRecord(RecordState):
    number: str
    title: str
    description: str
    category: str
    status: str
    reported_by: UUID
    assigned_to: UUID
    detected_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    incident_ids: list[UUID] = Field(description="Incidents linked to this problem.")
    ci_ids: list[UUID] = Field(description="Configuration items linked to this problem.")


class ChangeRecord(RecordState):
    number: str
    title: str
    description: str
    change_type: str
    risk_level: str
    requested_by: UUID
    incident_id: UUID | None
    problem_id: UUID | None
    implementation_date: datetime | None
    status: str
    approved_by: UUID | None
    approval_id: UUID | None = Field(description="The granted approval request, if any.")


class RollbackRecord(RecordState):
    number: str
    change_id: UUID
    incident_id: UUID
    title: str
    reason: str
    requested_by: UUID
    status: str
    approved_by: UUID | None
    approval_id: UUID | None
    executed_at: datetime | None


class ApprovalRecord(RecordState):
    reference_type: str
    reference_id: UUID
    requested_action: str
    requested_by: UUID
    approver: UUID
    requested_at: datetime
    incident_id: UUID | None = Field(description="The incident the referenced record is about.")
    problem_id: UUID | None = Field(description="The problem the referenced record is about.")
    status: str
    responded_at: datetime | None
    comment: str | None


class Tenure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: UUID
    role_in_bridge: str
    joined_at: datetime
    left_at: datetime | None = Field(description="Null while the user is on the bridge.")


class BridgeRecord(RecordState):
    number: str
    incident_id: UUID
    bridge_type: str
    host: UUID
    start_time: datetime
    end_time: datetime | None
    status: str
    participants: list[Tenure] = Field(
        description="Every stay on the bridge, in order (a user who left and came back has two)."
    )


class RootCauseAnalysisRecord(RecordState):
    number: str
    incident_id: UUID | None
    problem_id: UUID | None
    rca_title: str
    assigned_to: UUID
    due_date: datetime
    analysis_method: str
    findings: str | None
    root_cause: str | None
    recommendations: str | None
    status: str
    approved_by: UUID | None
    approved_at: datetime | None


class PostIncidentReviewRecord(RecordState):
    incident_id: UUID
    scheduled_date: datetime
    facilitator: UUID
    review_notes: str | None
    lessons_learned: str | None
    action_items: str | None
    status: str


class IncidentReportRecord(RecordState):
    number: str
    incident_id: UUID
    report_type: str
    report_title: str
    report_content: str
    status: str


class SLAAgreementRecord(RecordState):
    client_id: UUID
    tier: str
    support_coverage: str
    effective_date: date
    expiration_date: date | None
    status: str


class BusinessCalendarRecord(RecordState):
    name: str
    time_zone: str
    working_hours: dict[str, Any] = Field(description="Working intervals per weekday.")
    holidays: list[date]
