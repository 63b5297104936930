"""One incident driven by random commands, compared after every step with a small trusted model of
SPEC 4.2: accepted commands are exactly the model's allowed moves, refused ones append nothing, and
replaying the stored events from scratch gives the model's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from domain.base import Command, Role
from domain.errors import ConcurrencyConflict, RuleViolation
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    Incident,
    IncidentStatus,
    Level,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.ledger import IncidentLedger
from domain.severity import Severity
from domain.user import RegisterUser
from domain.work_note import AddWorkNote, NoteType, WorkNote
from tests.conftest import bootstrap

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

# SPEC 4.2, written out independently of domain.incident.TRANSITIONS.
SPEC_MOVES: dict[str, set[str]] = {
    "open": {"in_progress", "monitoring", "resolved"},
    "in_progress": {"monitoring", "resolved"},
    "monitoring": {"in_progress", "resolved"},
    "resolved": {"closed", "in_progress"},
    "closed": set(),
}
TITLES = ("Checkout latency", "Checkout down", "Payments slow")
MANAGERS = 3


class StepClock:
    """Each reading is 90 seconds after the previous one, so every stamp is distinct."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=90)
        return self.now


@dataclass
class Model:
    """What SPEC 4.2 says the incident is after the commands accepted so far."""

    assigned_to: UUID
    status: str = "open"
    title: str = TITLES[0]
    urgency: str = "medium"
    severity: str = "P3"
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopen_count: int = 0
    version: int = 1
    notes: list[UUID] = field(default_factory=list)


class IncidentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = StepClock()
        self.ledger = IncidentLedger(clock=self.clock)
        admin = bootstrap(self.ledger)
        self.managers = [
            self._register(f"Manager{i}", Role.INCIDENT_MANAGER, admin) for i in range(MANAGERS)
        ]
        self.actor = self.managers[0]
        opened = self.ledger.handle(
            OpenIncident(
                title=TITLES[0],
                description="p99 above 3s",
                category="software",
                impact="medium",
                urgency="medium",
                reported_by=self.actor,
                detection_time=START - timedelta(minutes=10),
                severity="P3",  # P3: no major-incident follow-ups, only the incident moves
                assigned_to=self.actor,
            ),
            self.actor,
        )
        self.incident = opened.id
        self.model = Model(assigned_to=self.actor)

    def _register(self, first: str, role: Role, actor: UUID | None) -> UUID:
        command = RegisterUser(
            first_name=first,
            last_name="Tester",
            email=f"{first.lower()}@example.test",
            role=role,
            timezone="UTC",
        )
        return self.ledger.handle(command, actor).id

    # --- running a command against the ledger ---------------------------------------------------

    def stored_versions(self) -> list[int]:
        return [e.originator_version for e in self.ledger.events.get(self.incident)]

    def refused(self, command: Command, code: str, error: type[Exception] = RuleViolation) -> None:
        """The command must be refused with `code`, and nothing at all may be appended."""
        head = self.ledger.recorder.max_notification_id()
        with pytest.raises(error) as refusal:
            self.ledger.handle(command, self.actor)
        assert getattr(refusal.value, "code", None) == code
        assert self.ledger.recorder.max_notification_id() == head
        assert len(self.stored_versions()) == self.model.version

    def accepted(self, command: Command, incident_events: int) -> datetime:
        """The command must succeed and add `incident_events` to the incident; returns its time."""
        outcome = self.ledger.handle(command, self.actor)
        self.model.version += incident_events
        if incident_events:
            assert outcome.id == self.incident
            assert outcome.version == self.model.version
        return self.clock.now  # the ledger read the clock once for this command

    # --- rules ----------------------------------------------------------------------------------

    @rule(status=st.sampled_from(list(IncidentStatus)))
    def change_status(self, status: IncidentStatus) -> None:
        command = ChangeIncidentStatus(incident=str(self.incident), status=status)
        current = self.model.status
        if status.value not in SPEC_MOVES[current]:
            self.refused(command, "incident.invalid_transition")
            return
        at = self.accepted(command, incident_events=1)
        if current == "resolved" and status.value == "in_progress":
            self.model.reopen_count += 1
        if status.value == "resolved":
            self.model.resolved_at = at
        if status.value == "closed":
            self.model.closed_at = at
        self.model.status = status.value

    @rule(status=st.sampled_from(list(IncidentStatus)), behind=st.integers(1, 3))
    def change_status_with_stale_version(self, status: IncidentStatus, behind: int) -> None:
        stale = max(1, self.model.version - behind)
        if stale == self.model.version:  # nothing to be stale against yet
            return
        command = ChangeIncidentStatus(
            incident=str(self.incident), status=status, expected_version=stale
        )
        self.refused(command, "concurrency.version_mismatch", ConcurrencyConflict)

    @rule()
    def acknowledge(self) -> None:
        command = AcknowledgeIncident(incident=str(self.incident))
        if self.model.status == "closed":
            self.refused(command, "incident.closed")
        elif self.model.acknowledged_at is not None:
            self.refused(command, "incident.already_acknowledged")
        else:
            self.model.acknowledged_at = self.accepted(command, incident_events=1)

    @rule(which=st.integers(0, MANAGERS - 1), pin_version=st.booleans())
    def assign(self, which: int, pin_version: bool) -> None:
        assignee = self.managers[which]
        command = AssignIncident(
            incident=str(self.incident),
            assigned_to=assignee,
            expected_version=self.model.version if pin_version else None,
        )
        if self.model.status == "closed":
            self.refused(command, "incident.closed")
        elif assignee == self.model.assigned_to:
            self.refused(command, "incident.already_assigned")
        else:
            self.accepted(command, incident_events=1)
            self.model.assigned_to = assignee

    @rule(
        title=st.none() | st.sampled_from(TITLES),
        urgency=st.none() | st.sampled_from([Level.MEDIUM, Level.HIGH]),
        severity=st.none() | st.sampled_from([Severity.P2, Severity.P3, Severity.P4]),
    )
    def update_details(
        self, title: str | None, urgency: Level | None, severity: Severity | None
    ) -> None:
        command = UpdateIncidentDetails(
            incident=str(self.incident), title=title, urgency=urgency, severity=severity
        )
        details_change = (title is not None and title != self.model.title) or (
            urgency is not None and urgency.value != self.model.urgency
        )
        severity_change = severity is not None and severity.value != self.model.severity
        if self.model.status == "closed":
            self.refused(command, "incident.closed")
        elif not (details_change or severity_change):
            self.refused(command, "incident.no_change")
        else:
            self.accepted(command, incident_events=int(details_change) + int(severity_change))
            self.model.title = title or self.model.title
            self.model.urgency = urgency.value if urgency else self.model.urgency
            self.model.severity = severity.value if severity else self.model.severity

    @rule(text=st.sampled_from(["Restarted the pool", "Rolled back 4.2", "Watching graphs"]))
    def add_work_note(self, text: str) -> None:
        head = self.ledger.recorder.max_notification_id() or 0
        outcome = self.ledger.handle(
            AddWorkNote(
                incident=str(self.incident), note_type=NoteType.PROGRESS_UPDATE, note_text=text
            ),
            self.actor,
        )
        # A note is its own record: one event, and the incident itself does not move.
        assert self.ledger.recorder.max_notification_id() == head + 1
        note = self.ledger.repository.get(outcome.id)
        assert isinstance(note, WorkNote)
        assert (note.incident_id, note.note_text) == (self.incident, text)
        self.model.notes.append(outcome.id)

    # --- invariant --------------------------------------------------------------------------------

    @invariant()
    def replay_matches_model(self) -> None:
        assert self.stored_versions() == list(range(1, self.model.version + 1))
        # Asking for a version bypasses the aggregate cache: a replay from the stored events.
        replayed = self.ledger.repository.get(self.incident, version=self.model.version)
        cached = self.ledger.repository.get(self.incident)
        m = self.model
        expected = (
            m.status,
            m.acknowledged_at,
            m.resolved_at,
            m.closed_at,
            m.reopen_count,
            m.assigned_to,
            m.title,
            m.urgency,
            m.severity,
            m.version,
        )
        for incident in (replayed, cached):
            assert isinstance(incident, Incident)
            actual = (
                incident.status.value,
                incident.acknowledged_at,
                incident.resolved_at,
                incident.closed_at,
                incident.reopen_count,
                incident.assigned_to,
                incident.title,
                incident.urgency.value,
                incident.severity.value,
                incident.version,
            )
            assert actual == expected

    def teardown(self) -> None:
        self.ledger.close()


def test_replay_incident_matches_model_when_random_commands_run() -> None:
    run_state_machine_as_test(
        IncidentMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
