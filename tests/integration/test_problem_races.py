"""Problem links under concurrency (real PostgreSQL, racing threads): a link saves the problem
(`Problem.IncidentLinked`) and the incident (`Incident.LinkedToProblem`), so a concurrent close
of the problem, or a concurrent link of the same incident elsewhere, meets it in the store."""

from __future__ import annotations

from uuid import UUID

from api.service import Service
from domain.base import Role
from domain.context import Outcome
from domain.errors import LedgerError
from domain.incident import Incident
from domain.problem import (
    LinkIncidentToProblem,
    OpenProblem,
    Problem,
    ProblemStatus,
    UpdateProblem,
)
from tests.integration.test_cross_record_races import (
    open_incident,
    positions,
    race,
    refusal_codes,
    user,
)


def open_problem(service: Service, manager: UUID) -> str:
    command = OpenProblem(
        title="Racing links",
        description="a problem closing while incidents link to it",
        category="software",
        assigned_to=manager,
    )
    number = service.ledger.handle(command, manager).number
    assert number is not None
    return number


def test_link_never_lands_after_the_problem_closes(service: Service) -> None:
    """Each trial: a resolved problem is closed while 4 threads link 4 incidents to it. Each link
    is either refused or recorded before the close, never after; the problem and the incidents
    agree on which links were made."""
    manager = user(service)
    late: list[int] = []
    closed_in_race = refused = 0
    for _trial in range(40):
        problem = open_problem(service, manager)
        service.ledger.handle(UpdateProblem(problem=problem, status="resolved"), manager)
        incidents = [open_incident(service, manager) for _ in range(4)]
        close = UpdateProblem(problem=problem, status=ProblemStatus.CLOSED)
        results = race(
            service,
            (close, manager),
            *[(LinkIncidentToProblem(problem=problem, incident=i), manager) for i in incidents],
        )
        closed = results[0]
        if isinstance(closed, LedgerError):
            # A link committed while the close was decided: the client's 409, closed again.
            assert closed.code == "concurrency.conflict", closed
            closed = service.ledger.handle(close, manager)
        else:
            closed_in_race += 1
        assert closed.position is not None
        late += [p for p in positions(results[1:]) if p > closed.position]
        assert refusal_codes(results[1:]) <= {"problem.closed", "concurrency.busy"}
        refused += sum(isinstance(r, LedgerError) for r in results[1:])

        linked = [i for i, r in zip(incidents, results[1:], strict=True) if isinstance(r, Outcome)]
        found = service.ledger.find(Problem, problem, "problem")
        assert found.status == ProblemStatus.CLOSED
        ids = [service.ledger.find(Incident, i, "incident").id for i in linked]
        assert sorted(found.incident_ids) == sorted(ids)
        for number in incidents:
            incident = service.ledger.find(Incident, number, "incident")
            assert incident.problem_id == (found.id if number in linked else None)
    assert late == [], f"{len(late)} links were recorded after the close"
    # Both sides of the race happened: the close won some, and some links met a closed problem.
    assert closed_in_race > 0
    assert refused > 0


def test_concurrent_links_to_one_problem_all_land(service: Service) -> None:
    """Links of different incidents to one open problem are decided again, not refused."""
    manager = user(service)
    for _trial in range(10):
        problem = open_problem(service, manager)
        incidents = [open_incident(service, manager) for _ in range(6)]
        results = race(
            service,
            *[(LinkIncidentToProblem(problem=problem, incident=i), manager) for i in incidents],
        )
        assert all(isinstance(r, Outcome) for r in results), results
        found = service.ledger.find(Problem, problem, "problem")
        assert len(found.incident_ids) == len(set(found.incident_ids)) == 6


def test_incident_links_to_one_problem_when_two_links_race(service: Service) -> None:
    """An incident linked to 6 problems at once ends up linked to exactly one of them."""
    manager = user(service, Role.INCIDENT_MANAGER)
    for _trial in range(10):
        incident = open_incident(service, manager)
        problems = [open_problem(service, manager) for _ in range(6)]
        results = race(
            service,
            *[(LinkIncidentToProblem(problem=p, incident=incident), manager) for p in problems],
        )
        assert len(positions(results)) == 1, results
        assert refusal_codes(results) <= {"incident.already_linked", "concurrency.busy"}
        (winner,) = [p for p, r in zip(problems, results, strict=True) if isinstance(r, Outcome)]
        linked = service.ledger.find(Incident, incident, "incident")
        assert linked.problem_id == service.ledger.find(Problem, winner, "problem").id
        for other in problems:
            if other != winner:
                assert service.ledger.find(Problem, other, "problem").incident_ids == []
