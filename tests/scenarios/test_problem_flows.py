"""Problem tickets (SOP 6-9), each flow run on the in-memory ledger and on PostgreSQL: every
follow-up (the incidents' links, the work notes, the communications) is in the same append as
the main action (one command id), and a refused follow-up records nothing of the main action."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.base import Role
from domain.communication import Communication, CommunicationType, RecipientType
from domain.errors import LedgerError, RuleViolation
from domain.problem import (
    LinkCIToProblem,
    LinkIncidentToProblem,
    OpenProblem,
    Problem,
    ProblemStatus,
    UpdateProblem,
)
from domain.user import DeactivateUser
from domain.work_note import WorkNote
from tests.scenarios.conftest import Driver


def opening(assignee: UUID, **fields: Any) -> OpenProblem:
    return OpenProblem(
        **{
            "title": "Connection pool exhaustion",
            "description": "Checkout pods run out of DB connections under load",
            "category": "database",
            "assigned_to": assignee,
            **fields,
        }
    )


def head(d: Driver) -> int:
    return d.ledger.recorder.max_notification_id() or 0


def refused(d: Driver, command: Any, actor: UUID, code: str) -> None:
    """Refused with `code`, and nothing at all appended."""
    before = head(d)
    with pytest.raises(LedgerError) as refusal:
        d.ledger.handle(command, actor)
    assert refusal.value.code == code
    assert head(d) == before


def note_texts(d: Driver, step: Any) -> list[tuple[UUID | None, UUID | None, str]]:
    """(incident_id, problem_id, text) of each work note the step added."""
    return [(e.incident_id, e.problem_id, e.note_text) for e in step.of(WorkNote.Added)]


def test_sop6_open_problem_links_each_incident_and_notes_it_in_one_append(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    first, second = d.open_incident(manager), d.open_incident(manager)

    opened = d.run(opening(support, incidents=[d.get(first.id).number, str(second.id)]), manager)

    assert opened.types == [
        "Counter.NumberIssued",
        "Problem.Opened",
        "Problem.IncidentLinked",
        "Problem.IncidentLinked",
        "Incident.LinkedToProblem",
        "Incident.LinkedToProblem",
        "WorkNote.Added",
    ]
    opened.assert_one_command(manager)
    problem = d.get(opened.id)
    assert isinstance(problem, Problem)
    assert problem.number == opened.outcome.number
    assert problem.number.startswith("PRB")
    assert (problem.status, problem.reported_by, problem.assigned_to) == (
        ProblemStatus.OPEN,
        manager,
        support,
    )
    assert problem.detected_at == opened.of(Problem.Opened)[0].meta.occurred_at
    assert problem.incident_ids == [first.id, second.id]
    assert [d.get(i.id).problem_id for i in (first, second)] == [problem.id, problem.id]
    assert note_texts(d, opened) == [
        (None, problem.id, f"Incident(s) linked to Problem Ticket {problem.number}")
    ]
    assert opened.outcome.extra["work_note_id"] == str(opened.of(WorkNote.Added)[0].originator_id)


def test_sop6_open_problem_without_incidents_records_no_link_note(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")

    opened = d.run(opening(manager), manager)

    assert opened.types == ["Counter.NumberIssued", "Problem.Opened"]
    assert d.get(opened.id).incident_ids == []


def test_sop6_refused_incident_link_records_nothing_of_the_problem(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    linked, free = d.open_incident(manager), d.open_incident(manager)
    earlier = d.run(opening(manager, incidents=[str(linked.id)]), manager)

    both = opening(manager, incidents=[str(free.id), str(linked.id)])
    refused(d, both, manager, "incident.already_linked")

    assert d.get(free.id).problem_id is None
    # The number was not issued either: the next problem takes the next one.
    following = d.run(opening(manager), manager)
    assert int(following.outcome.number[3:]) == int(earlier.outcome.number[3:]) + 1


def test_sop7_update_notes_each_change_and_tells_the_reporter_of_resolution(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    reporter = d.user(Role.TECHNICAL_SUPPORT, "Rae")
    problem = d.run(opening(manager, reported_by=reporter), manager).id

    investigating = d.run(
        UpdateProblem(problem=str(problem), status="investigating", description="Leak in retry"),
        manager,
    )

    assert investigating.types == [
        "Problem.DetailsUpdated",
        "Problem.StatusChanged",
        "WorkNote.Added",
    ]
    investigating.assert_one_command(manager)
    assert note_texts(d, investigating) == [
        (None, problem, "Problem ticket updated with new investigation details")
    ]
    assert d.get(problem).description == "Leak in retry"

    resolved = d.run(UpdateProblem(problem=str(problem), status="resolved"), manager)

    assert resolved.types == ["Problem.StatusChanged", "WorkNote.Added", "Communication.Sent"]
    resolved.assert_one_command(manager)
    (sent,) = resolved.of(Communication.Sent)
    assert (sent.problem_id, sent.incident_id, sent.recipient, sent.sender) == (
        problem,
        None,
        reporter,
        manager,
    )
    assert (sent.communication_type, sent.recipient_type) == (
        CommunicationType.RESOLUTION_NOTICE,
        RecipientType.INTERNAL,
    )
    assert resolved.outcome.extra["communication_id"] == str(sent.originator_id)
    found = d.get(problem)
    assert (found.status, found.resolved_at) == (ProblemStatus.RESOLVED, sent.meta.occurred_at)

    # The reporter closing it themselves is not told (SOP 7 step 5): reassign it to them first.
    d.run(UpdateProblem(problem=str(problem), assigned_to=reporter), manager)
    closed = d.run(UpdateProblem(problem=str(problem), status="closed"), reporter)

    assert closed.types == ["Problem.StatusChanged", "WorkNote.Added"]
    assert d.get(problem).closed_at == closed.events[0].meta.occurred_at


def test_sop7_closing_sends_nothing_to_an_inactive_reporter(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    reporter = d.user(Role.INCIDENT_MANAGER, "Rae")
    problem = str(d.run(opening(manager, reported_by=reporter), manager).id)
    d.run(UpdateProblem(problem=problem, status="resolved"), manager)
    d.run(DeactivateUser(user=reporter))

    closed = d.run(UpdateProblem(problem=problem, status="closed"), manager)

    assert closed.types == ["Problem.StatusChanged", "WorkNote.Added"]


def test_sop8_link_incident_notes_both_records_and_tells_its_manager(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    owner = d.user(Role.TECHNICAL_SUPPORT, "Oli")
    incident = d.open_incident(manager, assigned_to=owner)
    problem = d.run(opening(manager), manager)
    number, incident_number = problem.outcome.number, d.get(incident.id).number

    linked = d.run(LinkIncidentToProblem(problem=number, incident=incident_number), manager)

    assert linked.types == [
        "Problem.IncidentLinked",
        "Incident.LinkedToProblem",
        "WorkNote.Added",
        "WorkNote.Added",
        "Communication.Sent",
    ]
    linked.assert_one_command(manager)
    assert note_texts(d, linked) == [
        (incident.id, None, f"Incident linked to Problem Ticket {number}"),
        (None, problem.id, f"Incident {incident_number} linked to this problem ticket"),
    ]
    (sent,) = linked.of(Communication.Sent)
    assert (sent.recipient, sent.incident_id, sent.problem_id) == (owner, incident.id, problem.id)
    assert d.get(problem.id).incident_ids == [incident.id]
    assert d.get(incident.id).problem_id == problem.id
    assert linked.outcome.id == problem.id


def test_sop8_link_incident_without_a_manager_tells_no_one(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    incident = d.open_incident(manager, assigned_to=None)
    problem = d.run(opening(manager), manager)

    linked = d.run(
        LinkIncidentToProblem(problem=str(problem.id), incident=str(incident.id)), manager
    )

    assert linked.types == [
        "Problem.IncidentLinked",
        "Incident.LinkedToProblem",
        "WorkNote.Added",
        "WorkNote.Added",
    ]


def test_sop8_refused_link_records_nothing_on_either_record(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    incident = d.open_incident(manager)
    first = d.run(opening(manager, incidents=[str(incident.id)]), manager)
    second = d.run(opening(manager), manager)

    link = LinkIncidentToProblem(problem=str(second.id), incident=str(incident.id))
    refused(d, link, manager, "incident.already_linked")

    assert d.get(second.id).incident_ids == []
    assert d.get(incident.id).problem_id == first.id


def test_sop9_link_configuration_item_once(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    ci = d.ci(owner=manager)
    problem = d.run(opening(manager), manager)

    linked = d.run(LinkCIToProblem(problem=str(problem.id), configuration_item=ci), manager)

    assert linked.types == ["Problem.ConfigurationItemLinked"]
    assert d.get(problem.id).ci_ids == [ci]
    with pytest.raises(RuleViolation):
        d.ledger.handle(LinkCIToProblem(problem=str(problem.id), configuration_item=ci), manager)
