"""Incident reports (SOP 18, and SOP 2.2 step 5: the draft made when an incident closes is this
same record): commands, the status machine, the IncidentReport aggregate and its events."""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Changes, Command, Meta, Numbered, RecordCommand
from domain.errors import require, require_transition
from domain.incident import MANAGERS
from domain.text import Ref, Text, Title


class ReportType(StrEnum):
    POST_INCIDENT_REVIEW = "post_incident_review"
    CLIENT_IMPACT = "client_impact"
    COMPLIANCE = "compliance"


class ReportStatus(StrEnum):
    DRAFT = "draft"
    COMPLETED = "completed"
    APPROVED = "approved"
    ARCHIVED = "archived"


R = ReportStatus
TRANSITIONS: dict[ReportStatus, frozenset[ReportStatus]] = {
    R.DRAFT: frozenset({R.COMPLETED}),
    R.COMPLETED: frozenset({R.APPROVED}),
    R.APPROVED: frozenset({R.ARCHIVED}),
    R.ARCHIVED: frozenset(),
}
EDITABLE = frozenset({R.DRAFT, R.COMPLETED})
"""A report's title, type and content change only before it is approved."""


class GenerateIncidentReport(Command):
    """SOP 18: write a report on a resolved or closed incident; it starts as a draft."""

    roles = MANAGERS
    incident: Ref
    report_type: ReportType
    report_title: Title
    report_content: Text


class UpdateIncidentReport(RecordCommand):
    """SOP 18: edit a report, or move it along draft → completed → approved → archived."""

    roles = MANAGERS
    report: Ref
    status: ReportStatus | None = None
    report_type: ReportType | None = None
    report_title: Title | None = None
    report_content: Text | None = None


class IncidentReport(Numbered):
    class Generated(Aggregate.Created):
        number: str
        incident_id: UUID
        report_type: ReportType
        report_title: str
        report_content: str

    @event(Generated)
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

    def update(self, meta: Meta, changes: Changes, status: ReportStatus | None) -> None:
        moves = status is not None and status != self.status
        require(
            bool(changes) or moves,
            "report.no_change",
            "The update changes nothing: every given value equals the current one.",
        )
        if status is not None and moves:
            require_transition(
                "report.invalid_transition",
                f"Report {self.number}",
                self.status,
                status,
                TRANSITIONS,
            )
        require(
            not changes or self.status in EDITABLE,
            "report.locked",
            f"Report {self.number} is {self.status.value}; an approved or archived report "
            "cannot be edited.",
            current_status=self.status.value,
        )
        if changes:
            self._updated(meta, changes)
        if status is not None and moves:
            self._status_changed(meta, status, self.status)

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, IncidentReport.Generated)

    class StatusChanged(Aggregate.Event):
        status: ReportStatus
        previous: ReportStatus

    @event(StatusChanged)
    def _status_changed(self, meta: Meta, status: ReportStatus, previous: ReportStatus) -> None:
        self.status = status
