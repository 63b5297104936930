"""The incident (SOP 2, 10): its commands, status machine, aggregate and nested events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime, Field, model_validator

from domain.base import (
    Aggregate,
    Changes,
    Command,
    Meta,
    Moment,
    Numbered,
    RecordCommand,
    Role,
)
from domain.errors import RuleViolation, require, require_transition
from domain.severity import Severity, SeverityAssessment, SeverityDecision
from domain.text import Ref, Text, Title

MANAGERS = frozenset({Role.INCIDENT_MANAGER})
RESPONDERS = frozenset({Role.INCIDENT_MANAGER, Role.TECHNICAL_SUPPORT})


class Category(StrEnum):
    INQUIRY_HELP = "inquiry/help"
    SOFTWARE = "software"
    HARDWARE = "hardware"
    NETWORK = "network"
    DATABASE = "database"


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class IncidentStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    CLOSED = "closed"


S = IncidentStatus
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.OPEN: frozenset({S.IN_PROGRESS, S.MONITORING, S.RESOLVED}),
    S.IN_PROGRESS: frozenset({S.MONITORING, S.RESOLVED}),
    S.MONITORING: frozenset({S.IN_PROGRESS, S.RESOLVED}),
    S.RESOLVED: frozenset({S.CLOSED, S.IN_PROGRESS}),
    S.CLOSED: frozenset(),
}


# --- commands -------------------------------------------------------------------------------------


class IncidentCommand(RecordCommand):
    """A command on one existing incident (by UUID or number), optionally version-checked."""

    incident: Ref


class OpenIncident(Command):
    """SOP 2.1: record a new incident; severity given or derived from the assessment."""

    roles = MANAGERS
    title: Title
    description: Text
    category: Category
    impact: Level
    urgency: Level
    reported_by: UUID
    detection_time: Moment
    severity: Severity | None = None
    assessment: SeverityAssessment | None = None
    assigned_to: UUID | None = None
    configuration_items: list[UUID] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _severity_or_assessment(self) -> Self:
        if self.severity is None and self.assessment is None:
            raise ValueError("give either 'severity' or a severity 'assessment'")
        if len(set(self.configuration_items)) != len(self.configuration_items):
            raise ValueError("'configuration_items' lists a configuration item twice")
        return self


class AcknowledgeIncident(IncidentCommand):
    """Acknowledge the incident; the first acknowledgment ends the MTTA clock."""

    roles = RESPONDERS


class AssignIncident(IncidentCommand):
    """SOP 2.2: assign the incident to an active incident manager or technical support."""

    roles = MANAGERS
    assigned_to: UUID


class ChangeIncidentStatus(IncidentCommand):
    """SOP 2.2: move the incident along its status machine (resolve, close, reopen...)."""

    roles = RESPONDERS
    status: IncidentStatus


class UpdateIncidentDetails(IncidentCommand):
    """SOP 2.2: change title, description, category, impact, urgency or severity."""

    roles = MANAGERS
    title: Title | None = None
    description: Text | None = None
    category: Category | None = None
    impact: Level | None = None
    urgency: Level | None = None
    severity: Severity | None = None
    assessment: SeverityAssessment | None = None


class LinkCIToIncident(IncidentCommand):
    """SOP 10: attribute the incident to a configuration item."""

    roles = MANAGERS
    configuration_item: UUID


# --- aggregate ------------------------------------------------------------------------------------


class Incident(Numbered):
    class Opened(Aggregate.Created):
        number: str
        title: str
        description: str
        category: Category
        severity: Severity
        impact: Level
        urgency: Level
        reported_by: UUID
        assigned_to: UUID | None
        detection_time: AwareDatetime
        assessment: SeverityAssessment | None
        decision: SeverityDecision | None

    @event(Opened)
    def __init__(
        self,
        meta: Meta,
        number: str,
        title: str,
        description: str,
        category: Category,
        severity: Severity,
        impact: Level,
        urgency: Level,
        reported_by: UUID,
        assigned_to: UUID | None,
        detection_time: datetime,
        assessment: SeverityAssessment | None,
        decision: SeverityDecision | None,
    ) -> None:
        self.number = number
        self.title = title
        self.description = description
        self.category = category
        self.severity = severity
        self.impact = impact
        self.urgency = urgency
        self.reported_by = reported_by
        self.assigned_to = assigned_to
        self.detection_time = detection_time
        self.status = IncidentStatus.OPEN
        self.acknowledged_at: datetime | None = None
        self.resolved_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.reopen_count = 0
        self.problem_id: UUID | None = None
        self.ci_ids: list[UUID] = []
        self.closure_approved_by: UUID | None = None
        self.closure_approval_id: UUID | None = None
        self.bridge_ids: list[UUID] = []
        self.active_bridge_id: UUID | None = None

    # rules, then the event -------------------------------------------------------------------

    def require_not_closed(self) -> None:
        require(
            self.status != IncidentStatus.CLOSED,
            "incident.closed",
            f"Incident {self.number} is closed; a closed incident cannot change.",
        )

    def require_open_or_in_progress(self, what: str) -> None:
        require(
            self.status in (IncidentStatus.OPEN, IncidentStatus.IN_PROGRESS),
            "incident.not_open",
            f"Only an open or in-progress incident can {what}; {self.number} is "
            f"{self.status.value}.",
            current_status=self.status.value,
        )

    def acknowledge(self, meta: Meta) -> None:
        self.require_not_closed()
        if self.acknowledged_at is not None:
            raise RuleViolation(
                "incident.already_acknowledged",
                f"Incident {self.number} was already acknowledged at "
                f"{self.acknowledged_at.isoformat()}.",
            )
        self._acknowledged(meta)

    def assign(self, meta: Meta, assigned_to: UUID) -> None:
        self.require_not_closed()
        require(
            assigned_to != self.assigned_to,
            "incident.already_assigned",
            f"Incident {self.number} is already assigned to that user.",
        )
        self._assigned(meta, assigned_to, self.assigned_to)

    def change_status(self, meta: Meta, status: IncidentStatus) -> None:
        require_transition(
            "incident.invalid_transition",
            f"Incident {self.number}",
            self.status,
            status,
            TRANSITIONS,
        )
        if status == IncidentStatus.CLOSED:  # SOP 5 closes the bridge while resolved
            require(
                self.active_bridge_id is None,
                "incident.bridge_active",
                f"Incident {self.number} still has an active bridge; close the bridge first.",
                bridge_id=str(self.active_bridge_id),
            )
        self._status_changed(meta, status, self.status)

    def update_details(
        self,
        meta: Meta,
        changes: Changes,
        severity: Severity | None,
        assessment: SeverityAssessment | None,
        decision: SeverityDecision | None,
    ) -> None:
        self.require_not_closed()
        require(
            bool(changes) or (severity is not None and severity != self.severity),
            "incident.no_change",
            "The update changes nothing: every given value equals the current one.",
        )
        if changes:
            self._details_updated(meta, changes)
        if severity is not None and severity != self.severity:
            self._reprioritised(meta, severity, self.severity, assessment, decision)

    def link_configuration_item(self, meta: Meta, ci_id: UUID) -> None:
        self.require_not_closed()
        require(
            ci_id not in self.ci_ids,
            "incident.ci_already_linked",
            f"That configuration item is already linked to incident {self.number}.",
        )
        self._ci_linked(meta, ci_id)

    def require_no_active_bridge(self) -> None:
        require(
            self.active_bridge_id is None,
            "bridge.already_active",
            f"Incident {self.number} already has an active bridge; add participants to it.",
            bridge_id=str(self.active_bridge_id),
        )

    def record_bridge_opened(self, meta: Meta, bridge_id: UUID) -> None:
        """SOP 4.1: a bridge opened on this incident (at most one active at a time)."""
        self.require_no_active_bridge()
        self._bridge_opened(meta, bridge_id)

    # events ------------------------------------------------------------------------------------

    class Acknowledged(Aggregate.Event):
        pass

    @event(Acknowledged)
    def _acknowledged(self, meta: Meta) -> None:
        self.acknowledged_at = meta.occurred_at

    class Assigned(Aggregate.Event):
        assigned_to: UUID
        previous: UUID | None

    @event(Assigned)
    def _assigned(self, meta: Meta, assigned_to: UUID, previous: UUID | None) -> None:
        self.assigned_to = assigned_to

    class StatusChanged(Aggregate.Event):
        status: IncidentStatus
        previous: IncidentStatus

    @event(StatusChanged)
    def _status_changed(self, meta: Meta, status: IncidentStatus, previous: IncidentStatus) -> None:
        if previous == IncidentStatus.RESOLVED and status == IncidentStatus.IN_PROGRESS:
            self.reopen_count += 1
        if status == IncidentStatus.RESOLVED:
            self.resolved_at = meta.occurred_at
        if status == IncidentStatus.CLOSED:
            self.closed_at = meta.occurred_at
        self.status = status

    class DetailsUpdated(Aggregate.Event):
        changes: Changes

    @event(DetailsUpdated)
    def _details_updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, Incident.Opened)

    class Reprioritised(Aggregate.Event):
        severity: Severity
        previous: Severity
        assessment: SeverityAssessment | None
        decision: SeverityDecision | None

    @event(Reprioritised)
    def _reprioritised(
        self,
        meta: Meta,
        severity: Severity,
        previous: Severity,
        assessment: SeverityAssessment | None,
        decision: SeverityDecision | None,
    ) -> None:
        self.severity = severity

    class ConfigurationItemLinked(Aggregate.Event):
        ci_id: UUID

    @event(ConfigurationItemLinked)
    def _ci_linked(self, meta: Meta, ci_id: UUID) -> None:
        self.ci_ids.append(ci_id)

    # --- problem link (SOP 6, 8; SOP 2.2 step 2) ------------------------------------------------
    # An incident links to at most one problem; the problem side records `Problem.IncidentLinked`
    # in the same append (domain/handlers/problem.py).

    def link_to_problem(self, meta: Meta, problem_id: UUID) -> None:
        require(
            self.problem_id is None,
            "incident.already_linked",
            f"Incident {self.number} is already linked to a problem ({self.problem_id}); an "
            "incident links to at most one problem.",
            problem_id=str(self.problem_id),
        )
        self._linked_to_problem(meta, problem_id)

    class LinkedToProblem(Aggregate.Event):
        problem_id: UUID

    @event(LinkedToProblem)
    def _linked_to_problem(self, meta: Meta, problem_id: UUID) -> None:
        self.problem_id = problem_id

    # --- approvals (issue 9: change, rollback and approval; SOP 19, 20) --------------------------
    def approve_closure(self, meta: Meta, approval_id: UUID, approved_by: UUID) -> None:
        """A request to approve closing this incident was granted: the incident knows it."""
        require(
            self.status == IncidentStatus.RESOLVED,
            "approval.reference_not_eligible",
            f"Incident {self.number} is {self.status.value}, not resolved; its closure can no "
            "longer be approved (deny the request instead).",
            current_status=self.status.value,
        )
        self._closure_approved(meta, approval_id, approved_by)

    class ClosureApproved(Aggregate.Event):
        approval_id: UUID
        approved_by: UUID

    @event(ClosureApproved)
    def _closure_approved(self, meta: Meta, approval_id: UUID, approved_by: UUID) -> None:
        self.closure_approval_id = approval_id
        self.closure_approved_by = approved_by

    class BridgeOpened(Aggregate.Event):
        bridge_id: UUID

    @event(BridgeOpened)
    def _bridge_opened(self, meta: Meta, bridge_id: UUID) -> None:
        self.bridge_ids.append(bridge_id)
        self.active_bridge_id = bridge_id

    class BridgeClosed(Aggregate.Event):
        bridge_id: UUID

    @event(BridgeClosed)
    def record_bridge_closed(self, meta: Meta, bridge_id: UUID) -> None:
        self.active_bridge_id = None
