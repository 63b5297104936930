"""The record types the API reads, in one table: path, aggregate, response model, the fields a
list filters on, and where a created record is read (its `Location`)."""

from __future__ import annotations

from dataclasses import dataclass

from api.record_models import (
    ApprovalRecord,
    AttachmentRecord,
    BridgeRecord,
    BusinessCalendarRecord,
    ChangeRecord,
    ClientRecord,
    CommunicationRecord,
    ConfigurationItemRecord,
    EscalationRecord,
    IncidentReportRecord,
    PostIncidentReviewRecord,
    ProblemRecord,
    RecordState,
    RollbackRecord,
    RootCauseAnalysisRecord,
    SLAAgreementRecord,
    UserRecord,
    WorkNoteRecord,
)
from domain.approval import Approval
from domain.attachment import Attachment
from domain.base import Aggregate
from domain.bridge import Bridge
from domain.business_calendar import BusinessCalendar
from domain.change import Change
from domain.client import Client
from domain.communication import Communication
from domain.configuration_item import ConfigurationItem
from domain.escalation import Escalation
from domain.pir import PostIncidentReview
from domain.problem import Problem
from domain.rca import RootCauseAnalysis
from domain.report import IncidentReport
from domain.rollback import Rollback
from domain.sla import SLAAgreement
from domain.user import User
from domain.work_note import WorkNote


@dataclass(frozen=True)
class Collection:
    path: str
    aggregate: type[Aggregate]
    what: str
    """The record's name in error codes (`<what>.not_found`) and in the path parameter."""
    model: type[RecordState]
    tag: str
    filters: tuple[str, ...] = ()
    """Fields a list filters on by exact match (a user field also takes `me`)."""
    times: tuple[str, ...] = ()
    """Time fields a list filters on by range (`<field>_from`, `<field>_to`)."""


COLLECTIONS = [
    Collection(
        "/users",
        User,
        "user",
        UserRecord,
        "users",
        ("first_name", "last_name", "email", "role", "timezone", "status", "client_id"),
    ),
    Collection(
        "/clients",
        Client,
        "client",
        ClientRecord,
        "clients",
        (
            "client_name",
            "registration_number",
            "company_type",
            "support_coverage",
            "preferred_communication",
            "status",
        ),
    ),
    Collection(
        "/configuration-items",
        ConfigurationItem,
        "configuration_item",
        ConfigurationItemRecord,
        "configuration items",
        ("ci_name", "ci_type", "environment", "operational_status", "responsible_owner"),
    ),
    Collection(
        "/problems",
        Problem,
        "problem",
        ProblemRecord,
        "problems",
        ("number", "title", "category", "status", "reported_by", "assigned_to"),
        ("detected_at",),
    ),
    Collection(
        "/changes",
        Change,
        "change",
        ChangeRecord,
        "changes",
        (
            "number",
            "change_type",
            "risk_level",
            "requested_by",
            "incident_id",
            "problem_id",
            "status",
            "approved_by",
        ),
        ("implementation_date",),
    ),
    Collection(
        "/rollbacks",
        Rollback,
        "rollback",
        RollbackRecord,
        "rollbacks",
        ("number", "change_id", "incident_id", "requested_by", "status", "approved_by"),
    ),
    Collection(
        "/approvals",
        Approval,
        "approval",
        ApprovalRecord,
        "approvals",
        (
            "reference_type",
            "reference_id",
            "requested_action",
            "requested_by",
            "approver",
            "status",
            "incident_id",
            "problem_id",
        ),
        ("requested_at",),
    ),
    Collection(
        "/bridges",
        Bridge,
        "bridge",
        BridgeRecord,
        "bridges",
        ("number", "incident_id", "bridge_type", "host", "status"),
        ("start_time", "end_time"),
    ),
    Collection(
        "/root-cause-analyses",
        RootCauseAnalysis,
        "rca",
        RootCauseAnalysisRecord,
        "root-cause analyses",
        (
            "number",
            "incident_id",
            "problem_id",
            "assigned_to",
            "analysis_method",
            "status",
            "approved_by",
        ),
        ("due_date",),
    ),
    Collection(
        "/post-incident-reviews",
        PostIncidentReview,
        "pir",
        PostIncidentReviewRecord,
        "post-incident reviews",
        ("incident_id", "facilitator", "status"),
        ("scheduled_date",),
    ),
    Collection(
        "/incident-reports",
        IncidentReport,
        "report",
        IncidentReportRecord,
        "incident reports",
        ("number", "incident_id", "report_type", "status"),
    ),
    Collection(
        "/sla-agreements",
        SLAAgreement,
        "agreement",
        SLAAgreementRecord,
        "sla",
        ("client_id", "tier", "support_coverage", "status"),
    ),
    Collection(
        "/business-calendars",
        BusinessCalendar,
        "business_calendar",
        BusinessCalendarRecord,
        "sla",
        ("name", "time_zone"),
    ),
    Collection(
        "/escalations",
        Escalation,
        "escalation",
        EscalationRecord,
        "escalations",
        ("incident_id", "escalated_from", "escalated_to", "status"),
    ),
    Collection(
        "/work-notes",
        WorkNote,
        "work_note",
        WorkNoteRecord,
        "work notes",
        ("incident_id", "problem_id", "note_type"),
    ),
    Collection(
        "/communications",
        Communication,
        "communication",
        CommunicationRecord,
        "communications",
        (
            "incident_id",
            "problem_id",
            "communication_type",
            "recipient_type",
            "sender",
            "recipient",
            "delivery_method",
            "delivery_status",
        ),
    ),
    Collection(
        "/attachments",
        Attachment,
        "attachment",
        AttachmentRecord,
        "attachments",
        ("reference_type", "reference_id", "incident_id", "file_type", "sha256"),
    ),
]
BY_TYPE = {c.aggregate.__name__: c for c in COLLECTIONS}


def location(record_type: str, record_id: str) -> str | None:
    """Where a record of this type is read (a created record's `Location`)."""
    if record_type == "Incident":
        return f"/incidents/{record_id}"
    found = BY_TYPE.get(record_type)
    return f"{found.path}/{record_id}" if found else None
