"""Work notes (SOP 14): on an incident or a problem; an update keeps the earlier text in history."""

from __future__ import annotations

from enum import StrEnum
from typing import Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import model_validator

from domain.base import Aggregate, Command, Meta, RecordCommand, Role
from domain.errors import require
from domain.text import Ref, Text

WRITERS = frozenset({Role.INCIDENT_MANAGER, Role.TECHNICAL_SUPPORT, Role.ACCOUNT_MANAGER})


class NoteType(StrEnum):
    PROGRESS_UPDATE = "progress_update"
    TROUBLESHOOTING = "troubleshooting"
    RESOLUTION = "resolution"


class IncidentOrProblem(Command):
    """A record that belongs to exactly one incident or one problem."""

    incident: Ref | None = None
    problem: Ref | None = None

    @model_validator(mode="after")
    def _exactly_one_parent(self) -> Self:
        if (self.incident is None) == (self.problem is None):
            raise ValueError("give exactly one of 'incident' or 'problem'")
        return self


class AddWorkNote(IncidentOrProblem):
    """SOP 14: add a work note to an incident or a problem."""

    roles = WRITERS
    note_type: NoteType
    note_text: Text


class UpdateWorkNote(RecordCommand):
    """SOP 14: correct a work note; the earlier text stays in the history."""

    roles = WRITERS
    work_note: UUID
    note_text: Text


class WorkNote(Aggregate):
    class Added(Aggregate.Created):
        incident_id: UUID | None
        problem_id: UUID | None
        note_type: NoteType
        note_text: str

    @event(Added)
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

    class Updated(Aggregate.Event):
        note_text: str
        previous: str

    @event(Updated)
    def _updated(self, meta: Meta, note_text: str, previous: str) -> None:
        self.note_text = note_text
