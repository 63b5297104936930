"""Problem tickets (SOP 6, 7, 8, 9): commands, the status machine, the Problem aggregate and its
nested events.

Status machine (ours; the SOP tools allowed anything):
`open → investigating | resolved`; `investigating → resolved`; `resolved → closed`;
`resolved → investigating` (reopen); `closed` is final. Entering `resolved` stamps resolved_at,
entering `closed` stamps closed_at; a reopen keeps the earlier stamp until the next resolution
(like the incident), the history keeps every move.

A problem links to many incidents and configuration items; an incident links to at most one
problem (the incident records its link, `Incident.LinkedToProblem`)."""

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
)
from domain.errors import require, require_transition
from domain.incident import MANAGERS, RESPONDERS
from domain.text import Ref, Text, Title

PREFIX = "PRB"


class ProblemCategory(StrEnum):
    SOFTWARE = "software"
    HARDWARE = "hardware"
    NETWORK = "network"
    DATABASE = "database"
    SECURITY = "security"


class ProblemStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    CLOSED = "closed"


P = ProblemStatus
TRANSITIONS: dict[ProblemStatus, frozenset[ProblemStatus]] = {
    P.OPEN: frozenset({P.INVESTIGATING, P.RESOLVED}),
    P.INVESTIGATING: frozenset({P.RESOLVED}),
    P.RESOLVED: frozenset({P.CLOSED, P.INVESTIGATING}),
    P.CLOSED: frozenset(),
}


# --- commands -------------------------------------------------------------------------------------


class ProblemCommand(RecordCommand):
    """A command on one existing problem (by UUID or number), optionally version-checked."""

    problem: Ref


class OpenProblem(Command):
    """SOP 6: open a problem ticket, linking the incidents it explains in the same append."""

    roles = MANAGERS
    title: Title
    description: Text
    category: ProblemCategory
    assigned_to: UUID = Field(description="An active incident manager or technical support.")
    reported_by: UUID | None = Field(default=None, description="Defaults to the acting user.")
    detected_at: Moment | None = Field(
        default=None, description="When the problem was detected; defaults to occurred_at."
    )
    incidents: list[Ref] = Field(
        default_factory=list,
        max_length=100,
        description="Incidents to link (each exists and is linked to no other problem).",
    )

    @model_validator(mode="after")
    def _no_incident_twice(self) -> Self:
        if len({ref.upper() for ref in self.incidents}) != len(self.incidents):
            raise ValueError("'incidents' lists an incident twice")
        return self


class UpdateProblem(ProblemCommand):
    """SOP 7: change a problem's details, assignee or status (the fields given)."""

    roles = RESPONDERS
    title: Title | None = None
    description: Text | None = None
    category: ProblemCategory | None = None
    assigned_to: UUID | None = None
    status: ProblemStatus | None = None


class LinkIncidentToProblem(ProblemCommand):
    """SOP 8: link an incident to the problem (an incident links to at most one problem)."""

    roles = MANAGERS
    incident: Ref


class LinkCIToProblem(ProblemCommand):
    """SOP 9: link a configuration item to the problem."""

    roles = MANAGERS
    configuration_item: UUID


# --- aggregate ------------------------------------------------------------------------------------


class Problem(Numbered):
    class Opened(Aggregate.Created):
        number: str
        title: str
        description: str
        category: ProblemCategory
        reported_by: UUID
        assigned_to: UUID
        detected_at: AwareDatetime

    @event(Opened)
    def __init__(
        self,
        meta: Meta,
        number: str,
        title: str,
        description: str,
        category: ProblemCategory,
        reported_by: UUID,
        assigned_to: UUID,
        detected_at: datetime,
    ) -> None:
        self.number = number
        self.title = title
        self.description = description
        self.category = category
        self.reported_by = reported_by
        self.assigned_to = assigned_to
        self.detected_at = detected_at
        self.status = ProblemStatus.OPEN
        self.resolved_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.incident_ids: list[UUID] = []
        self.ci_ids: list[UUID] = []

    # rules, then the event -------------------------------------------------------------------

    def require_not_closed(self, what: str) -> None:
        require(
            self.status != ProblemStatus.CLOSED,
            "problem.closed",
            f"Problem {self.number} is closed; {what}.",
        )

    def update(self, meta: Meta, changes: Changes, status: ProblemStatus | None) -> None:
        """Apply the detail changes, then the status move (if the status given is a new one)."""
        moving = status is not None and status != self.status
        if moving:
            assert status is not None
            require_transition(
                "problem.invalid_transition",
                f"Problem {self.number}",
                self.status,
                status,
                TRANSITIONS,
            )
        if changes:
            self.require_not_closed("a closed problem cannot change")
        require(
            bool(changes) or moving,
            "problem.no_change",
            "The update changes nothing: every given value equals the current one.",
        )
        if changes:
            self._details_updated(meta, changes)
        if moving:
            assert status is not None
            self._status_changed(meta, status, self.status)

    def link_incident(self, meta: Meta, incident_id: UUID) -> None:
        self.require_not_closed("no incident can be linked to it")
        self._incident_linked(meta, incident_id)

    def link_configuration_item(self, meta: Meta, ci_id: UUID) -> None:
        self.require_not_closed("no configuration item can be linked to it")
        require(
            ci_id not in self.ci_ids,
            "problem.ci_already_linked",
            f"That configuration item is already linked to problem {self.number}.",
        )
        self._ci_linked(meta, ci_id)

    # events ------------------------------------------------------------------------------------

    class DetailsUpdated(Aggregate.Event):
        changes: Changes

    @event(DetailsUpdated)
    def _details_updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, Problem.Opened)

    class StatusChanged(Aggregate.Event):
        status: ProblemStatus
        previous: ProblemStatus

    @event(StatusChanged)
    def _status_changed(self, meta: Meta, status: ProblemStatus, previous: ProblemStatus) -> None:
        if status == ProblemStatus.RESOLVED:
            self.resolved_at = meta.occurred_at
        if status == ProblemStatus.CLOSED:
            self.closed_at = meta.occurred_at
        self.status = status

    class IncidentLinked(Aggregate.Event):
        incident_id: UUID

    @event(IncidentLinked)
    def _incident_linked(self, meta: Meta, incident_id: UUID) -> None:
        self.incident_ids.append(incident_id)

    class ConfigurationItemLinked(Aggregate.Event):
        ci_id: UUID

    @event(ConfigurationItemLinked)
    def _ci_linked(self, meta: Meta, ci_id: UUID) -> None:
        self.ci_ids.append(ci_id)
