"""Incident reports (SOP 2.2 step 5, SOP 18): the draft made when an incident closes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.base import Aggregate, Meta, record_id


class ReportType(StrEnum):
    POST_INCIDENT_REVIEW = "post_incident_review"
    CLIENT_IMPACT = "client_impact"
    COMPLIANCE = "compliance"


class ReportStatus(StrEnum):
    DRAFT = "draft"
    COMPLETED = "completed"
    APPROVED = "approved"
    ARCHIVED = "archived"


class IncidentReport(Aggregate):
    @staticmethod
    def create_id(number: str, **_: Any) -> UUID:
        return record_id(number)

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
