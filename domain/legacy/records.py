"""Legacy rows → records, part 2: changes, rollbacks, root-cause analyses, post-incident reviews,
incident reports, communications, work notes, approval requests, attachments, and the audit
trail's field changes (history entries on the records they name)."""

from __future__ import annotations

from typing import Any

from domain.approval import Approval, ApprovalSlot, ApprovalStatus, RequestedAction
from domain.approval import ReferenceType as ApprovalReference
from domain.attachment import Attachment
from domain.attachment import ReferenceType as AttachmentReference
from domain.base import Aggregate
from domain.change import Change, ChangeStatus, ChangeType
from domain.client import SupportCoverage
from domain.communication import (
    Communication,
    CommunicationType,
    DeliveryMethod,
    DeliveryStatus,
    RecipientType,
)
from domain.incident import Incident, Level
from domain.legacy.builder import Builder, undated
from domain.legacy.incidents import walk
from domain.legacy.rows import Row, Tables, meta
from domain.pir import PirStatus, PostIncidentReview
from domain.rca import AnalysisMethod, RcaStatus, RootCauseAnalysis
from domain.report import IncidentReport, ReportStatus, ReportType
from domain.rollback import Rollback, RollbackStatus
from domain.sla import AgreementStatus, ClientSLA, SLAAgreement, Tier
from domain.work_note import NoteType, WorkNote

C = ChangeStatus
CHANGE_PATHS: dict[ChangeStatus, list[ChangeStatus]] = {
    C.REQUESTED: [],
    C.APPROVED: [C.APPROVED],
    C.DENIED: [C.DENIED],
    C.CANCELLED: [C.CANCELLED],
    C.SCHEDULED: [C.APPROVED, C.SCHEDULED],
    C.IMPLEMENTED: [C.APPROVED, C.SCHEDULED, C.IMPLEMENTED],
}
R = RollbackStatus
ROLLBACK_PATHS = {
    R.REQUESTED: [],
    R.APPROVED: [R.APPROVED],
    R.EXECUTED: [R.APPROVED, R.EXECUTED],
    R.FAILED: [R.APPROVED, R.FAILED],
}
RCA_PATH = [RcaStatus.IN_PROGRESS, RcaStatus.COMPLETED, RcaStatus.APPROVED]
REPORT_PATH = [ReportStatus.COMPLETED, ReportStatus.APPROVED, ReportStatus.ARCHIVED]
APPROVAL_TABLES = {
    ApprovalReference.ESCALATION: "escalations",
    ApprovalReference.BRIDGE: "bridges",
    ApprovalReference.CHANGE: "change_requests",
    ApprovalReference.ROLLBACK: "rollback_requests",
    ApprovalReference.RCA: "root_cause_analyses",
    ApprovalReference.INCIDENT_CLOSURE: "incidents",
}
ATTACHMENT_TABLES = {
    AttachmentReference.INCIDENT: "incidents",
    AttachmentReference.CHANGE: "change_requests",
    AttachmentReference.RCA: "root_cause_analyses",
    AttachmentReference.REPORT: "incident_reports",
    AttachmentReference.PIR: "post_incident_reviews",
    AttachmentReference.COMMUNICATION: "communications",
    AttachmentReference.PROBLEM: "problem_tickets",
}
AUDITED = {
    "user": "users",
    "client": "clients",
    "ci": "configuration_items",
    "incident": "incidents",
    "problem": "problem_tickets",
    "escalation": "escalations",
    "bridge": "bridges",
    "change": "change_requests",
    "rollback": "rollback_requests",
    "sla": "sla_agreements",
}
"""The audit trail's reference types and the tables of the records they name."""
RENAMED = {
    "bridge_host": "host",
    "escalation_reason": "reason",
    "rollback_reason": "reason",
    "problem_ticket_id": "problem_id",
}
"""Legacy field names whose field is named otherwise in the ledger's records."""
REFERENCES = {
    "assigned_to": "users",
    "reported_by": "users",
    "responsible_owner": "users",
    "escalated_to": "users",
    "approver": "users",
    "host": "users",
    "client_id": "clients",
    "incident_id": "incidents",
    "problem_id": "problem_tickets",
}
"""Fields whose legacy values are keys of another table: shown as the ids of their records."""


def _belongs(record: Aggregate) -> tuple[Any, Any]:
    """The incident and the problem a record belongs to (for approvals and attachments)."""
    incident = record.id if isinstance(record, Incident) else getattr(record, "incident_id", None)
    return incident, getattr(record, "problem_id", None)


def changes(t: Tables, b: Builder) -> None:
    for row in t.rows("change_requests"):
        status = row.enum("status", ChangeStatus)
        planned = row.opt_time("implementation_date")
        approved_by = row.opt_ref("approved_by", "users")
        change = b.create(
            Change, Change.Requested, row, row.time("created_at"), row.actor("requested_by"),
            number=row.number(), title=row.text("title"), description=row.text("description"),
            change_type=row.enum("change_type", ChangeType),
            risk_level=row.enum("risk_level", Level),
            requested_by=row.opt_ref("requested_by", "users"),
            incident_id=row.opt_ref("incident_id", "incidents"),
            problem_id=row.opt_ref("problem_ticket_id", "problem_tickets"),
            implementation_date=None if status in (C.SCHEDULED, C.IMPLEMENTED) else planned,
        )  # fmt: skip
        updated = undated(row, "updated_at", "created_at")
        # A change still requested that names who approved it: recorded as found, by a move
        # that keeps its status and names the approver.
        path = CHANGE_PATHS[status] or ([C.REQUESTED] if approved_by else [])
        previous = C.REQUESTED
        for n, step in enumerate(path):
            at = planned if step == C.IMPLEMENTED and planned else updated
            planned_here = planned if step in (C.SCHEDULED, C.IMPLEMENTED) else None
            by = approved_by if n == 0 else None
            b.step(change, row, at, by, change._status_changed, step, previous, by, planned_here,
                   chain=True)  # fmt: skip
            previous = step


def rollbacks(t: Tables, b: Builder) -> None:
    for row in t.rows("rollback_requests"):
        created = row.time("created_at")
        rollback = b.create(
            Rollback, Rollback.Requested, row, created, row.actor("requested_by"),
            number=row.number(), change_id=row.ref("change_id", "change_requests"),
            incident_id=row.ref("incident_id", "incidents"), title=row.text("title"),
            reason=row.text("rollback_reason"), requested_by=row.opt_ref("requested_by", "users"),
        )  # fmt: skip
        executed = row.opt_time("executed_at") or created
        path = [
            (step, executed if step != R.APPROVED else created)
            for step in ROLLBACK_PATHS[row.enum("status", RollbackStatus)]
        ]
        walk(b, rollback, row, rollback._status_changed, R.REQUESTED, path, None)


def root_cause_analyses(t: Tables, b: Builder) -> None:
    for row in t.rows("root_cause_analyses"):
        rca = b.create(
            RootCauseAnalysis, RootCauseAnalysis.Started, row, row.time("created_at"),
            row.actor("reported_by"),
            number=row.number(), incident_id=row.opt_ref("incident_id", "incidents"),
            problem_id=row.opt_ref("problem_ticket_id", "problem_tickets"),
            rca_title=row.text("rca_title"), assigned_to=row.ref("assigned_to", "users"),
            due_date=row.time("due_date"),
            analysis_method=row.enum("analysis_method", AnalysisMethod), findings=None,
            root_cause=row.opt_text("root_cause_summary"), recommendations=None,
        )  # fmt: skip
        status = row.enum("status", RcaStatus)
        updated = undated(row, "updated_at", "created_at")
        approved_by = row.opt_ref("approved_by", "users")
        completed = row.opt_time("completed_at") or updated
        steps = RCA_PATH[: RCA_PATH.index(status) + 1] if status in RCA_PATH else []
        previous = RcaStatus.ASSIGNED
        for step in steps:
            at = completed if step == RcaStatus.COMPLETED else updated
            by = approved_by if step == RcaStatus.APPROVED else None
            b.step(rca, row, at, by, rca._status_changed, step, previous, by, chain=True)
            previous = step


def post_incident_reviews(t: Tables, b: Builder) -> None:
    for row in t.rows("post_incident_reviews"):
        created = row.time("created_at")
        review = b.create(
            PostIncidentReview, PostIncidentReview.Scheduled, row, created,
            row.actor("created_by"),
            incident_id=row.ref("incident_id", "incidents"),
            scheduled_date=row.time("scheduled_date"),
            facilitator=row.ref("facilitator", "users"),
            review_notes=row.opt_text("review_notes"),
            lessons_learned=row.opt_text("lessons_learned"),
            action_items=row.opt_text("action_items"),
        )  # fmt: skip
        status = row.enum("status", PirStatus)
        path = [] if status == PirStatus.SCHEDULED else [(status, created)]
        walk(b, review, row, review._status_changed, PirStatus.SCHEDULED, path)


def incident_reports(t: Tables, b: Builder) -> None:
    for row in t.rows("incident_reports"):
        generated = row.time("generation_date")
        report = b.create(
            IncidentReport, IncidentReport.Generated, row, generated, row.actor("generated_by"),
            number=row.number(), incident_id=row.ref("incident_id", "incidents"),
            report_type=row.enum("report_type", ReportType),
            report_title=row.text("report_title"), report_content=row.text("report_content"),
        )  # fmt: skip
        status = row.enum("report_status", ReportStatus)
        steps = REPORT_PATH[: REPORT_PATH.index(status) + 1] if status in REPORT_PATH else []
        walk(b, report, row, report._status_changed, ReportStatus.DRAFT,
             [(step, generated) for step in steps])  # fmt: skip


def communications(t: Tables, b: Builder) -> None:
    for row in t.rows("communications"):
        sender = row.opt_ref("sender", "users")
        b.create(
            Communication, Communication.Sent, row,
            row.opt_time("sent_at") or row.time("created_at"), sender,
            incident_id=row.opt_ref("incident_id", "incidents"),
            problem_id=row.opt_ref("problem_ticket_id", "problem_tickets"),
            communication_type=row.enum("communication_type", CommunicationType),
            recipient_type=row.enum("recipient_type", RecipientType), sender=sender,
            recipient=row.opt_ref("recipient", "users"),
            delivery_method=row.enum("delivery_method", DeliveryMethod),
            delivery_status=row.enum("delivery_status", DeliveryStatus),
            message_content=row.text("message_content"),
        )  # fmt: skip


def work_notes(t: Tables, b: Builder) -> None:
    for row in t.rows("work_notes"):
        b.create(
            WorkNote, WorkNote.Added, row, row.time("created_at"), row.actor("created_by"),
            incident_id=row.opt_ref("incident_id", "incidents"),
            problem_id=row.opt_ref("problem_ticket_id", "problem_tickets"),
            note_type=row.enum("note_type", NoteType), note_text=row.text("note_text"),
        )  # fmt: skip


def approvals(t: Tables, b: Builder) -> None:
    for row in t.rows("approval_requests"):
        kind = row.enum("reference_type", ApprovalReference)
        reference = b.records[row.ref("reference_id", APPROVAL_TABLES[kind])]
        incident_id, problem_id = _belongs(reference)
        requested_at = row.time("requested_at")
        action = row.enum("requested_action", RequestedAction)
        approver = row.ref("approver", "users")
        approval = b.create(
            Approval, Approval.Requested, row, requested_at, row.actor("requested_by"),
            reference_type=kind, reference_id=reference.id, requested_action=action,
            requested_by=row.opt_ref("requested_by", "users"), approver=approver,
            requested_at=requested_at, incident_id=incident_id, problem_id=problem_id,
        )  # fmt: skip
        status = row.enum("status", ApprovalStatus)
        if status != ApprovalStatus.PENDING:
            decided = row.opt_time("responded_at") or requested_at
            b.step(approval, row, decided, approver, approval._decided, status, None)
            continue
        slot = ApprovalSlot.create_id(action, reference.id, approver)
        if slot in b.records:  # a second pending request of the same action, record, approver
            b.found("approval.duplicate_pending", row)
            continue
        b.create(
            ApprovalSlot, ApprovalSlot.Claimed, row, requested_at, row.actor("requested_by"),
            record_id=slot, requested_action=action, reference_id=reference.id,
            approver=approver, approval_id=approval.id,
        )  # fmt: skip


def attachments(t: Tables, b: Builder) -> None:
    for row in t.rows("attachments"):
        kind = row.enum("reference_type", AttachmentReference)
        reference = b.records[row.ref("reference_id", ATTACHMENT_TABLES[kind])]
        b.create(
            Attachment, Attachment.Added, row, row.time("uploaded_at"), row.actor("uploaded_by"),
            reference_type=kind, reference_id=reference.id, incident_id=_belongs(reference)[0],
            file_name=row.text("file_name"), file_url=row.text("file_url"),
            file_type=row.text("file_type"), file_size_bytes=row.integer("file_size_bytes"),
            sha256=None,
        )  # fmt: skip


def audit_trails(t: Tables, b: Builder, deferred: frozenset[str]) -> list[Row]:
    """Each field change becomes an AuditTrailRecorded event on the record it names; answers
    the rows about records of deferred tables (not imported yet)."""
    waiting: list[Row] = []
    for row in t.rows("audit_trails"):
        kind = row.text("reference_type")
        if kind not in AUDITED:
            raise row.error("reference_type", f"is {kind!r}, not one of {', '.join(AUDITED)}")
        table = AUDITED[kind]
        target = row.linked("reference_id", table)
        if target is None:
            raise row.error("reference_id", f"is null; it must name a row of {table}.json")
        if table in deferred:
            waiting.append(row)
            continue
        field = row.text("field_name")
        name = RENAMED.get(field, field)
        change = (_value(t, row, "old_value", name), _value(t, row, "new_value", name))
        b.audit(b.records[target.id], row, row.time("created_at"), row.actor("user_id"),
                action=row.text("action"), changes={name: change})  # fmt: skip
    return waiting


def _value(t: Tables, row: Row, field: str, name: str) -> Any:
    """A legacy value as found; a key of another table as the id of that row's record."""
    value = row.raw(field)
    table = REFERENCES.get(name)
    if table is not None and isinstance(value, str) and t.has(table, value):
        return str(t.id(table, value))
    return value


def sla_agreements(t: Tables, b: Builder) -> None:
    """Agreements as recorded; the first active one of each client is its active agreement (a
    second active one is recorded as found, and not claimed)."""
    for row in t.rows("sla_agreements"):
        at = row.time("created_at")
        status = row.enum("status", AgreementStatus)
        client_id = row.ref("client_id", "clients")
        agreement = b.create(
            SLAAgreement, SLAAgreement.Recorded, row, at, row.actor("created_by"),
            client_id=client_id, tier=row.enum("tier", Tier),
            support_coverage=row.enum("support_coverage", SupportCoverage),
            effective_date=row.day("effective_date"),
            expiration_date=row.opt_day("expiration_date"), status=status,
        )  # fmt: skip
        if status != AgreementStatus.ACTIVE:
            continue
        index = ClientSLA.create_id(client_id=client_id)
        if index not in b.records:
            b.create(ClientSLA, ClientSLA.Started, row, at, None, record_id=index,
                     client_id=client_id)  # fmt: skip
        client_sla = b.get(ClientSLA, index)
        if client_sla.active_agreement_id is None:
            client_sla._activated(meta(row.source, at, None), agreement.id)
        else:
            b.found("sla_agreement.active_exists", row)
