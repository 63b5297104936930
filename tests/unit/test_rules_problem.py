"""Problem tickets (SPEC 4.4, SOP 6-9, the LinkIncidentToProblem row of SPEC 4.2): every rule
refused on the in-memory ledger with its error type and code and nothing appended; the status
machine pair by pair; a close that slips in before a link's append refuses the link."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.attachment import AddAttachment
from domain.base import Command
from domain.communication import SendCommunication
from domain.errors import ConcurrencyConflict, Forbidden, LedgerError, NotFound, RuleViolation
from domain.incident import Incident
from domain.problem import (
    TRANSITIONS,
    LinkCIToProblem,
    LinkIncidentToProblem,
    OpenProblem,
    Problem,
    ProblemStatus,
    UpdateProblem,
)
from domain.work_note import AddWorkNote, UpdateWorkNote
from tests.unit.test_rules import (
    DETECTED,
    NOW,
    InterleavedLedger,
    World,
    assert_refused,
    build_world,
    open_incident,
)

PROBLEM_DETECTED = NOW - timedelta(minutes=30)
BEFORE_PROBLEM = PROBLEM_DETECTED - timedelta(minutes=1)


@pytest.fixture
def world() -> Iterator[World]:
    built = build_world()
    yield built
    built.ledger.close()


def opening(w: World, **fields: Any) -> OpenProblem:
    return OpenProblem(
        **{
            "title": "Connection pool exhaustion",
            "description": "Checkout pods run out of DB connections under load",
            "category": "database",
            "assigned_to": w.manager,
            "detected_at": PROBLEM_DETECTED,
            **fields,
        }
    )


def open_problem(w: World, **fields: Any) -> str:
    """A problem opened by the manager (its reporter); its number."""
    number = w.run(opening(w, **fields)).number
    assert number is not None
    return str(number)


def move(w: World, problem: str, *statuses: str) -> None:
    for status in statuses:
        w.run(UpdateProblem(problem=problem, status=status))


def another_incident(w: World) -> str:
    number = w.run(open_incident(reported_by=w.manager, assigned_to=w.manager)).number
    assert number is not None
    return str(number)


def problem_of(w: World, number: str) -> Problem:
    return w.ledger.find(Problem, number, "problem")


def incident_of(w: World, number: str) -> Incident:
    return w.ledger.find(Incident, number, "incident")


# --- one case per rule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    command: Command
    actor: UUID


CASES: list[Any] = []


def case(code: str, error: type[LedgerError] = RuleViolation, *, how: str) -> Any:
    def add(build: Callable[[World], Attempt]) -> Callable[[World], Attempt]:
        CASES.append(pytest.param(build, code, error, id=f"{code}-{how.replace(' ', '_')}"))
        return build

    return add


@case("problem.not_found", NotFound, how="update")
def _update_unknown_problem(w: World) -> Attempt:
    return Attempt(UpdateProblem(problem="PRB0000042", title="x"), w.manager)


@case("problem.not_found", NotFound, how="link incident")
def _link_to_unknown_problem(w: World) -> Attempt:
    return Attempt(LinkIncidentToProblem(problem=str(uuid4()), incident=w.incident), w.manager)


@case("problem.not_found", NotFound, how="link CI")
def _link_ci_to_unknown_problem(w: World) -> Attempt:
    return Attempt(LinkCIToProblem(problem="PRB0000042", configuration_item=w.ci), w.manager)


@case("incident.not_found", NotFound, how="open with unknown incident")
def _open_with_unknown_incident(w: World) -> Attempt:
    return Attempt(opening(w, incidents=[w.incident, "INC0009999"]), w.manager)


@case("incident.not_found", NotFound, how="link unknown incident")
def _link_unknown_incident(w: World) -> Attempt:
    return Attempt(LinkIncidentToProblem(problem=open_problem(w), incident="INC0009999"), w.manager)


@case("configuration_item.not_found", NotFound, how="link CI to problem")
def _link_unknown_ci(w: World) -> Attempt:
    command = LinkCIToProblem(problem=open_problem(w), configuration_item=uuid4())
    return Attempt(command, w.manager)


@case("incident.already_linked", how="link to a second problem")
def _link_incident_twice(w: World) -> Attempt:
    open_problem(w, incidents=[w.incident])
    command = LinkIncidentToProblem(problem=open_problem(w), incident=w.incident)
    return Attempt(command, w.manager)


@case("incident.already_linked", how="link to the same problem again")
def _link_incident_again(w: World) -> Attempt:
    problem = open_problem(w, incidents=[w.incident])
    return Attempt(LinkIncidentToProblem(problem=problem, incident=w.incident), w.manager)


@case("incident.already_linked", how="open with a linked incident")
def _open_with_linked_incident(w: World) -> Attempt:
    open_problem(w, incidents=[w.incident])
    return Attempt(opening(w, incidents=[another_incident(w), w.incident]), w.manager)


@case("problem.incident_listed_twice", how="open naming one incident by number and by id")
def _open_with_incident_twice(w: World) -> Attempt:
    incident_id = str(incident_of(w, w.incident).id)
    return Attempt(opening(w, incidents=[w.incident, incident_id]), w.manager)


@case("problem.closed", how="link incident")
def _link_incident_to_closed_problem(w: World) -> Attempt:
    problem = open_problem(w)
    move(w, problem, "resolved", "closed")
    return Attempt(LinkIncidentToProblem(problem=problem, incident=w.incident), w.manager)


@case("problem.closed", how="link CI")
def _link_ci_to_closed_problem(w: World) -> Attempt:
    problem = open_problem(w)
    move(w, problem, "resolved", "closed")
    return Attempt(LinkCIToProblem(problem=problem, configuration_item=w.ci), w.manager)


@case("problem.closed", how="update details")
def _retitle_closed_problem(w: World) -> Attempt:
    problem = open_problem(w)
    move(w, problem, "resolved", "closed")
    return Attempt(UpdateProblem(problem=problem, title="Reworded"), w.manager)


@case("problem.invalid_transition", how="close an open problem")
def _close_open_problem(w: World) -> Attempt:
    return Attempt(UpdateProblem(problem=open_problem(w), status="closed"), w.manager)


@case("problem.no_change", how="same values")
def _update_problem_to_same_values(w: World) -> Attempt:
    command = UpdateProblem(
        problem=open_problem(w), title="Connection pool exhaustion", category="database"
    )
    return Attempt(command, w.manager)


@case("problem.ci_already_linked", how="link CI twice")
def _link_ci_twice(w: World) -> Attempt:
    problem = open_problem(w)
    w.run(LinkCIToProblem(problem=problem, configuration_item=w.ci))
    return Attempt(LinkCIToProblem(problem=problem, configuration_item=w.ci), w.manager)


@case("problem.not_assigned_to_you", Forbidden, how="support updates another's problem")
def _support_updates_others_problem(w: World) -> Attempt:
    return Attempt(UpdateProblem(problem=open_problem(w), status="investigating"), w.support)


@case("role.forbidden", Forbidden, how="support reassigns own problem")
def _support_reassigns_problem(w: World) -> Attempt:
    problem = open_problem(w, assigned_to=w.support)
    return Attempt(UpdateProblem(problem=problem, assigned_to=w.manager), w.support)


@case("role.forbidden", Forbidden, how="support opens a problem")
def _support_opens_problem(w: World) -> Attempt:
    return Attempt(opening(w), w.support)


@case("role.forbidden", Forbidden, how="support links an incident")
def _support_links_incident(w: World) -> Attempt:
    problem = open_problem(w, assigned_to=w.support)
    return Attempt(LinkIncidentToProblem(problem=problem, incident=w.incident), w.support)


@case("role.forbidden", Forbidden, how="account manager updates a problem")
def _account_manager_updates_problem(w: World) -> Attempt:
    return Attempt(UpdateProblem(problem=open_problem(w), title="x"), w.account_manager)


@case("user.inactive", how="problem assignee")
def _open_assigned_to_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    return Attempt(opening(w, assigned_to=w.other_manager), w.manager)


@case("user.inactive", how="problem reporter")
def _open_reported_by_inactive_user(w: World) -> Attempt:
    w.deactivate(w.other_manager)
    return Attempt(opening(w, reported_by=w.other_manager), w.manager)


@case("user.inactive", how="problem reassigned")
def _reassign_problem_to_inactive_user(w: World) -> Attempt:
    problem = open_problem(w)
    w.deactivate(w.other_manager)
    return Attempt(UpdateProblem(problem=problem, assigned_to=w.other_manager), w.manager)


@case("user.wrong_role", how="problem assignee")
def _open_assigned_to_account_manager(w: World) -> Attempt:
    return Attempt(opening(w, assigned_to=w.account_manager), w.manager)


@case("user.not_found", NotFound, how="problem reporter")
def _open_reported_by_unknown_user(w: World) -> Attempt:
    return Attempt(opening(w, reported_by=uuid4()), w.manager)


@case("detected_at.in_future", how="an hour ahead")
def _open_problem_detected_in_future(w: World) -> Attempt:
    return Attempt(opening(w, detected_at=NOW + timedelta(hours=1)), w.manager)


@case("occurred_at.before_detection", how="open before its own detection")
def _open_problem_before_detection(w: World) -> Attempt:
    return Attempt(opening(w, occurred_at=BEFORE_PROBLEM), w.manager)


@case("occurred_at.before_detection", how="open linking an incident detected later")
def _open_problem_before_incident_detection(w: World) -> Attempt:
    at = DETECTED - timedelta(minutes=5)
    command = opening(
        w, detected_at=at - timedelta(minutes=5), occurred_at=at, incidents=[w.incident]
    )
    return Attempt(command, w.manager)


@case("occurred_at.before_detection", how="update before the problem's detection")
def _update_problem_before_detection(w: World) -> Attempt:
    command = UpdateProblem(problem=open_problem(w), title="x", occurred_at=BEFORE_PROBLEM)
    return Attempt(command, w.manager)


@case("occurred_at.before_detection", how="work note before the problem's detection")
def _note_on_problem_before_detection(w: World) -> Attempt:
    command = AddWorkNote(
        problem=open_problem(w),
        note_type="troubleshooting",
        note_text="x",
        occurred_at=BEFORE_PROBLEM,
    )
    return Attempt(command, w.manager)


@case("occurred_at.before_detection", how="problem note corrected before the detection")
def _problem_note_updated_before_detection(w: World) -> Attempt:
    added = AddWorkNote(problem=open_problem(w), note_type="troubleshooting", note_text="x")
    note = UUID(str(w.run(added).id))
    return Attempt(
        UpdateWorkNote(work_note=note, note_text="y", occurred_at=BEFORE_PROBLEM), w.manager
    )


@case("occurred_at.before_detection", how="attachment before the problem's detection")
def _attach_to_problem_before_detection(w: World) -> Attempt:
    command = AddAttachment(
        reference_type="problem",
        reference=open_problem(w),
        file_name="heap.txt",
        file_url="https://files.example.test/heap.txt",
        file_type="text/plain",
        file_size_bytes=1,
        occurred_at=BEFORE_PROBLEM,
    )
    return Attempt(command, w.manager)


@case("occurred_at.before_detection", how="link before the incident's detection")
def _link_before_incident_detection(w: World) -> Attempt:
    at = DETECTED - timedelta(minutes=1)
    problem = open_problem(w, detected_at=at - timedelta(minutes=1), occurred_at=at)
    command = LinkIncidentToProblem(problem=problem, incident=w.incident, occurred_at=at)
    return Attempt(command, w.manager)


@case("concurrency.version_mismatch", ConcurrencyConflict, how="update a stale problem")
def _update_stale_problem(w: World) -> Attempt:
    problem = open_problem(w)
    w.run(UpdateProblem(problem=problem, title="Pool exhaustion"))
    command = UpdateProblem(problem=problem, status="investigating", expected_version=1)
    return Attempt(command, w.manager)


@case("concurrency.version_mismatch", ConcurrencyConflict, how="link to a stale problem")
def _link_to_stale_problem(w: World) -> Attempt:
    problem = open_problem(w)
    command = LinkIncidentToProblem(problem=problem, incident=w.incident, expected_version=2)
    return Attempt(command, w.manager)


@pytest.mark.parametrize(("build", "code", "error"), CASES)
def test_problem_command_is_refused_with_its_code_and_appends_nothing(
    world: World, build: Callable[[World], Attempt], code: str, error: type[LedgerError]
) -> None:
    attempt = build(world)
    assert_refused(world, attempt.command, attempt.actor, error, code)


def test_open_problem_refuses_an_incident_listed_twice_as_input() -> None:
    with pytest.raises(ValueError, match="lists an incident twice"):
        OpenProblem(
            title="t",
            description="d",
            category="network",
            assigned_to=uuid4(),
            incidents=["INC0000001", "inc0000001"],
        )


# --- the status machine, every pair --------------------------------------------------------------

PATHS: dict[ProblemStatus, tuple[str, ...]] = {
    ProblemStatus.OPEN: (),
    ProblemStatus.INVESTIGATING: ("investigating",),
    ProblemStatus.RESOLVED: ("resolved",),
    ProblemStatus.CLOSED: ("resolved", "closed"),
}
DOCUMENTED = {
    ("open", "investigating"),
    ("open", "resolved"),
    ("investigating", "resolved"),
    ("resolved", "closed"),
    ("resolved", "investigating"),
}
PAIRS = [(a, b) for a in ProblemStatus for b in ProblemStatus]


def test_transitions_table_is_the_documented_machine() -> None:
    table = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == DOCUMENTED
    assert set(TRANSITIONS) == set(ProblemStatus)


@pytest.mark.parametrize(("start", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_problem_status_machine_allows_or_refuses_each_pair(
    world: World, start: ProblemStatus, target: ProblemStatus
) -> None:
    problem = open_problem(world)
    move(world, problem, *PATHS[start])
    assert problem_of(world, problem).status == start
    command = UpdateProblem(problem=problem, status=target)
    if (start.value, target.value) in DOCUMENTED:
        world.run(command)
        assert problem_of(world, problem).status == target
    elif start == target:  # naming the current status is no move at all
        assert_refused(world, command, world.manager, RuleViolation, "problem.no_change")
    else:
        refused = assert_refused(
            world, command, world.manager, RuleViolation, "problem.invalid_transition"
        )
        assert refused.details["current_status"] == start.value


def test_status_moves_stamp_resolved_and_closed_times(world: World) -> None:
    problem = open_problem(world)
    resolved_at = NOW - timedelta(minutes=10)
    world.run(UpdateProblem(problem=problem, status="resolved", occurred_at=resolved_at))
    move(world, problem, "closed")
    found = problem_of(world, problem)
    assert (found.resolved_at, found.closed_at) == (resolved_at, NOW)


# --- notes, communications and attachments on a problem ------------------------------------------


def test_work_note_communication_and_attachment_find_the_problem(world: World) -> None:
    problem = open_problem(world)
    problem_id = problem_of(world, problem).id
    note = world.run(AddWorkNote(problem=problem, note_type="troubleshooting", note_text="Heap"))
    sent = world.run(
        SendCommunication(
            problem=str(problem_id),
            communication_type="status_update",
            recipient_type="internal",
            delivery_method="email",
            recipient=world.other_manager,
            message_content="Investigating the pool",
        )
    )
    attached = world.run(
        AddAttachment(
            reference_type="problem",
            reference=problem,
            file_name="heap.txt",
            file_url="https://files.example.test/heap.txt",
            file_type="text/plain",
            file_size_bytes=1,
        ),
        world.support,
    )
    for outcome in (note, sent):
        assert world.ledger.repository.get(outcome.id).problem_id == problem_id
    assert world.ledger.repository.get(attached.id).reference_id == problem_id


# --- a close slipping in before a link's append ---------------------------------------------------


@pytest.fixture
def interleaved() -> Iterator[World]:
    built = build_world(InterleavedLedger)
    yield built
    built.ledger.close()


def test_link_is_decided_again_and_refused_when_problem_closes_before_its_append(
    interleaved: World,
) -> None:
    w = interleaved
    ledger = w.ledger
    assert isinstance(ledger, InterleavedLedger)
    problem = open_problem(w)
    move(w, problem, "resolved")
    closed_at: list[int] = []

    def close() -> None:
        move(w, problem, "closed")
        closed_at.append(w.head())

    ledger.meanwhile = close
    with pytest.raises(RuleViolation) as refusal:
        ledger.handle(LinkIncidentToProblem(problem=problem, incident=w.incident), w.manager)
    assert refusal.value.code == "problem.closed"
    assert closed_at == [w.head()]  # the close alone was appended
    assert incident_of(w, w.incident).problem_id is None
    assert problem_of(w, problem).incident_ids == []
