"""Root-cause analyses (SOP 17 A, B): commands, the status machine, the RootCauseAnalysis
aggregate and its events. The rules on the incident or problem analysed live in
domain/handlers/improvement.py."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime

from domain.base import Aggregate, Changes, Meta, Moment, Numbered, RecordCommand, Role
from domain.errors import Forbidden, require, require_transition
from domain.incident import MANAGERS
from domain.text import Ref, Text, Title
from domain.work_note import IncidentOrProblem


class AnalysisMethod(StrEnum):
    FIVE_WHYS = "5_whys"
    FISHBONE = "fishbone"
    TIMELINE = "timeline"
    FAULT_TREE = "fault_tree"
    KEPNER_TREGOE = "kepner_tregoe"


class RcaStatus(StrEnum):
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    APPROVED = "approved"


S = RcaStatus
TRANSITIONS: dict[RcaStatus, frozenset[RcaStatus]] = {
    S.ASSIGNED: frozenset({S.IN_PROGRESS}),
    S.IN_PROGRESS: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset({S.APPROVED}),
    S.APPROVED: frozenset(),
}
APPROVERS = frozenset({Role.INCIDENT_MANAGER, Role.EXECUTIVE})
"""Who may approve an RCA (never the analyst it is assigned to)."""
EDITORS = frozenset({Role.INCIDENT_MANAGER, Role.TECHNICAL_SUPPORT, Role.EXECUTIVE})


class StartRootCauseAnalysis(IncidentOrProblem):
    """SOP 17 A: analyse a resolved or closed P1/P2 incident, or a resolved or closed problem."""

    roles = MANAGERS
    rca_title: Title
    assigned_to: UUID
    due_date: Moment
    analysis_method: AnalysisMethod
    findings: Text | None = None
    root_cause: Text | None = None
    recommendations: Text | None = None


class UpdateRootCauseAnalysis(RecordCommand):
    """SOP 17 B: record findings, move the analysis along, approve it."""

    roles = EDITORS
    rca: Ref
    status: RcaStatus | None = None
    rca_title: Title | None = None
    assigned_to: UUID | None = None
    due_date: Moment | None = None
    analysis_method: AnalysisMethod | None = None
    findings: Text | None = None
    root_cause: Text | None = None
    recommendations: Text | None = None


class RootCauseAnalysis(Numbered):
    class Started(Aggregate.Created):
        number: str
        incident_id: UUID | None
        problem_id: UUID | None
        rca_title: str
        assigned_to: UUID
        due_date: AwareDatetime
        analysis_method: AnalysisMethod
        findings: str | None
        root_cause: str | None
        recommendations: str | None

    @event(Started)
    def __init__(
        self,
        meta: Meta,
        number: str,
        incident_id: UUID | None,
        problem_id: UUID | None,
        rca_title: str,
        assigned_to: UUID,
        due_date: datetime,
        analysis_method: AnalysisMethod,
        findings: str | None,
        root_cause: str | None,
        recommendations: str | None,
    ) -> None:
        self.number = number
        self.incident_id = incident_id
        self.problem_id = problem_id
        self.rca_title = rca_title
        self.assigned_to = assigned_to
        self.due_date = due_date
        self.analysis_method = analysis_method
        self.findings = findings
        self.root_cause = root_cause
        self.recommendations = recommendations
        self.status = RcaStatus.ASSIGNED
        self.approved_by: UUID | None = None
        self.approved_at: datetime | None = None

    # rules, then the events ------------------------------------------------------------------

    def require_editor(self, actor: UUID, role: Role) -> None:
        """Technical support works only on the analyses assigned to them."""
        if role == Role.TECHNICAL_SUPPORT and actor != self.assigned_to:
            raise Forbidden(
                "rca.not_assigned_to_you",
                f"Technical support may only update analyses assigned to them; {self.number} "
                "is not.",
            )

    def update(
        self, meta: Meta, changes: Changes, status: RcaStatus | None, actor_role: Role
    ) -> None:
        moves = status is not None and status != self.status
        require(
            bool(changes) or moves,
            "rca.no_change",
            "The update changes nothing: every given value equals the current one.",
        )
        require(
            self.status != RcaStatus.APPROVED,
            "rca.approved",
            f"Analysis {self.number} is approved; an approved analysis does not change.",
        )
        if status is not None and moves:
            require_transition(
                "rca.invalid_transition",
                f"Analysis {self.number}",
                self.status,
                status,
                TRANSITIONS,
            )
        if status == RcaStatus.APPROVED and moves:
            self._require_approver(meta.actor, actor_role, changes)
        if changes:
            self._updated(meta, changes)
        if status is not None and moves:
            approved_by = meta.actor if status == RcaStatus.APPROVED else None
            self._status_changed(meta, status, self.status, approved_by)

    def _require_approver(self, actor: UUID | None, role: Role, changes: Changes) -> None:
        if role not in APPROVERS:
            raise Forbidden(
                "rca.approver_not_allowed",
                f"An analysis is approved by an incident manager or an executive, not by a "
                f"{role.value}.",
            )
        assignee = UUID(str(changes["assigned_to"][1])) if "assigned_to" in changes else None
        if actor in (self.assigned_to, assignee):
            raise Forbidden(
                "rca.self_approval",
                f"Analysis {self.number} is assigned to you; someone else approves it.",
            )

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, RootCauseAnalysis.Started)

    class StatusChanged(Aggregate.Event):
        status: RcaStatus
        previous: RcaStatus
        approved_by: UUID | None

    @event(StatusChanged)
    def _status_changed(
        self, meta: Meta, status: RcaStatus, previous: RcaStatus, approved_by: UUID | None
    ) -> None:
        self.status = status
        if status == RcaStatus.APPROVED:
            self.approved_by = approved_by
            self.approved_at = meta.occurred_at
