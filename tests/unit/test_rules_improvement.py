"""Every rule of the improvement records (SPEC 4.7, SOP 17, 18) on the in-memory ledger: RCAs,
post-incident reviews and incident reports, refused with their error type and code, and nothing
appended; and their status machines, written down and walked."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from domain.base import Meta, Role
from domain.errors import Forbidden, LedgerError, NotFound, RuleViolation
from domain.incident import ChangeIncidentStatus
from domain.pir import TRANSITIONS as PIR_TRANSITIONS
from domain.pir import PirStatus, SchedulePostIncidentReview, UpdatePostIncidentReview
from domain.problem import OpenProblem, UpdateProblem
from domain.rca import TRANSITIONS as RCA_TRANSITIONS
from domain.rca import RcaStatus, RootCauseAnalysis, StartRootCauseAnalysis, UpdateRootCauseAnalysis
from domain.report import TRANSITIONS as REPORT_TRANSITIONS
from domain.report import GenerateIncidentReport, ReportStatus, UpdateIncidentReport
from tests.unit.test_rules import (
    BEFORE_DETECTION,
    NOW,
    Attempt,
    World,
    assert_refused,
    build_world,
    open_incident,
    register,
)

DUE = NOW + timedelta(days=7)


@dataclass
class ImprovementWorld:
    w: World
    executive: UUID
    p1: str  # a resolved P1 incident (its bridge closed), assigned to the manager

    def run(self, command: Any, actor: UUID | None = None) -> Any:
        return self.w.run(command, actor)

    def problem(self, status: str) -> str:
        opened = self.run(
            OpenProblem(
                title="Pool exhaustion",
                description="connections leak",
                category="database",
                assigned_to=self.w.manager,
            )
        )
        path = {"open": [], "investigating": ["investigating"], "resolved": ["resolved"],
                "closed": ["resolved", "closed"]}[status]  # fmt: skip
        for step in path:
            self.run(UpdateProblem(problem=str(opened.id), status=step))
        return str(opened.id)

    def rca(self, **fields: Any) -> str:
        command = StartRootCauseAnalysis(
            **{
                "incident": self.p1,
                "rca_title": "Why checkout fell over",
                "assigned_to": self.w.support,
                "due_date": DUE,
                "analysis_method": "5_whys",
                **fields,
            }
        )
        number = self.run(command).number
        assert number is not None
        return str(number)

    def pir(self) -> str:
        self.w.close_incident()
        command = SchedulePostIncidentReview(
            incident=self.w.incident, scheduled_date=DUE, facilitator=self.w.other_manager
        )
        return str(self.run(command).id)

    def report(self) -> str:
        command = GenerateIncidentReport(
            incident=self.p1,
            report_type="client_impact",
            report_title="Impact on Acme",
            report_content="Checkout down 40 minutes.",
        )
        return str(self.run(command).number)


def _meta() -> Meta:
    return Meta(actor=None, occurred_at=NOW, command_id=uuid4(), command="Test")


@pytest.fixture
def iw() -> Iterator[ImprovementWorld]:
    from domain.bridge import CloseBridge

    w = build_world()
    opened = w.run(open_incident(reported_by=w.manager, assigned_to=w.manager, severity="P1"))
    w.run(ChangeIncidentStatus(incident=opened.number, status="resolved"))
    w.run(CloseBridge(bridge=opened.extra["bridge_number"]))
    yield ImprovementWorld(w, register(w.ledger, w.admin, "Eve", Role.EXECUTIVE), opened.number)
    w.ledger.close()


Case = Callable[[ImprovementWorld], Attempt]
CASES: list[Any] = []


def case(code: str, error: type[LedgerError] = RuleViolation, *, how: str = "") -> Any:
    def add(build: Case) -> Case:
        CASES.append(pytest.param(build, code, error, id=f"{code}-{how}" if how else code))
        return build

    return add


# --- StartRootCauseAnalysis (SOP 17 A) ------------------------------------------------------------


def start(w: World, **fields: Any) -> StartRootCauseAnalysis:
    return StartRootCauseAnalysis(
        **{
            "rca_title": "Why",
            "assigned_to": w.support,
            "due_date": DUE,
            "analysis_method": "fishbone",
            **fields,
        }
    )


@case("rca.incident_not_resolved")
def _rca_on_open_incident(i: ImprovementWorld) -> Attempt:
    opened = open_incident(reported_by=i.w.manager, assigned_to=i.w.support, severity="P1")
    number = i.run(opened).number
    return Attempt(start(i.w, incident=number), i.w.manager)


@case("rca.incident_not_resolved", how="reopened")
def _rca_on_reopened_incident(i: ImprovementWorld) -> Attempt:
    i.run(ChangeIncidentStatus(incident=i.p1, status="in_progress"))
    return Attempt(start(i.w, incident=i.p1), i.w.manager)


@case("rca.not_major_incident")
def _rca_on_p3(i: ImprovementWorld) -> Attempt:
    i.w.close_incident()  # the world's own incident is P3
    return Attempt(start(i.w, incident=i.w.incident), i.w.manager)


@case("rca.problem_not_resolved")
def _rca_on_investigating_problem(i: ImprovementWorld) -> Attempt:
    return Attempt(start(i.w, problem=i.problem("investigating")), i.w.manager)


@case("problem.not_found", NotFound, how="rca")
def _rca_on_unknown_problem(i: ImprovementWorld) -> Attempt:
    return Attempt(start(i.w, problem="PRB9999999"), i.w.manager)


@case("problem.not_found", NotFound, how="rca names an incident as a problem")
def _rca_on_incident_named_as_problem(i: ImprovementWorld) -> Attempt:
    return Attempt(start(i.w, problem=i.p1), i.w.manager)


@case("incident.not_found", NotFound, how="rca")
def _rca_on_unknown_incident(i: ImprovementWorld) -> Attempt:
    return Attempt(start(i.w, incident="INC9999999"), i.w.manager)


@case("user.inactive", how="rca assignee")
def _rca_assigned_to_inactive(i: ImprovementWorld) -> Attempt:
    i.w.deactivate(i.w.support)
    return Attempt(start(i.w, incident=i.p1), i.w.manager)


@case("occurred_at.before_detection", how="rca")
def _rca_before_detection(i: ImprovementWorld) -> Attempt:
    return Attempt(start(i.w, incident=i.p1, occurred_at=BEFORE_DETECTION), i.w.manager)


@case("role.forbidden", Forbidden, how="technical support starts an rca")
def _support_starts_rca(i: ImprovementWorld) -> Attempt:
    return Attempt(start(i.w, incident=i.p1), i.w.support)


# --- UpdateRootCauseAnalysis (SOP 17 B) -----------------------------------------------------------


@case("rca.invalid_transition", how="assigned to completed")
def _rca_skips_work(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdateRootCauseAnalysis(rca=i.rca(), status="completed"), i.w.manager)


@case("rca.invalid_transition", how="assigned to approved")
def _rca_approved_unworked(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdateRootCauseAnalysis(rca=i.rca(), status="approved"), i.w.other_manager)


@case("rca.no_change")
def _rca_same_values(i: ImprovementWorld) -> Attempt:
    rca = i.rca()
    command = UpdateRootCauseAnalysis(rca=rca, status="assigned", analysis_method="5_whys")
    return Attempt(command, i.w.manager)


def _completed(i: ImprovementWorld, **fields: Any) -> str:
    rca = i.rca(**fields)
    for status in ("in_progress", "completed"):
        i.run(UpdateRootCauseAnalysis(rca=rca, status=status))
    return rca


@case("rca.approved")
def _rca_changed_after_approval(i: ImprovementWorld) -> Attempt:
    rca = _completed(i)
    i.run(UpdateRootCauseAnalysis(rca=rca, status="approved"), i.executive)
    return Attempt(UpdateRootCauseAnalysis(rca=rca, findings="More"), i.w.manager)


@case("rca.approver_not_allowed", Forbidden)
def _support_approves(i: ImprovementWorld) -> Attempt:
    rca = _completed(i)
    return Attempt(UpdateRootCauseAnalysis(rca=rca, status="approved"), i.w.support)


@case("rca.self_approval", Forbidden)
def _manager_approves_own(i: ImprovementWorld) -> Attempt:
    rca = _completed(i, assigned_to=i.w.other_manager)
    return Attempt(UpdateRootCauseAnalysis(rca=rca, status="approved"), i.w.other_manager)


@case("rca.self_approval", Forbidden, how="reassigned to self while approving")
def _manager_approves_after_taking_it(i: ImprovementWorld) -> Attempt:
    rca = _completed(i)
    command = UpdateRootCauseAnalysis(rca=rca, status="approved", assigned_to=i.w.other_manager)
    return Attempt(command, i.w.other_manager)


@case("rca.not_assigned_to_you", Forbidden)
def _support_updates_others_rca(i: ImprovementWorld) -> Attempt:
    rca = i.rca(assigned_to=i.w.other_manager)
    return Attempt(UpdateRootCauseAnalysis(rca=rca, findings="Mine now"), i.w.support)


@case("user.inactive", how="rca reassigned")
def _rca_reassigned_to_inactive(i: ImprovementWorld) -> Attempt:
    rca = i.rca()
    i.w.deactivate(i.w.other_manager)
    return Attempt(UpdateRootCauseAnalysis(rca=rca, assigned_to=i.w.other_manager), i.w.manager)


@case("rca.not_found", NotFound, how="update")
def _update_unknown_rca(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdateRootCauseAnalysis(rca="RCA9999999", findings="x"), i.w.manager)


@case("role.forbidden", Forbidden, how="account manager updates an rca")
def _account_manager_updates_rca(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdateRootCauseAnalysis(rca=i.rca(), findings="x"), i.w.account_manager)


# --- SchedulePostIncidentReview / UpdatePostIncidentReview (SOP 17 C, D) --------------------------


def schedule(w: World, incident: str, **fields: Any) -> SchedulePostIncidentReview:
    return SchedulePostIncidentReview(
        **{"incident": incident, "scheduled_date": DUE, "facilitator": w.other_manager, **fields}
    )


@case("pir.incident_not_closed", how="resolved")
def _pir_on_resolved(i: ImprovementWorld) -> Attempt:
    return Attempt(schedule(i.w, i.p1), i.w.manager)


@case("user.inactive", how="facilitator")
def _pir_inactive_facilitator(i: ImprovementWorld) -> Attempt:
    i.w.close_incident()
    i.w.deactivate(i.w.other_manager)
    return Attempt(schedule(i.w, i.w.incident), i.w.manager)


@case("pir.finished", how="completed")
def _pir_changed_after_completion(i: ImprovementWorld) -> Attempt:
    pir = i.pir()
    i.run(UpdatePostIncidentReview(pir=pir, status="completed", lessons_learned="Pools"))
    return Attempt(UpdatePostIncidentReview(pir=pir, action_items="More"), i.w.manager)


@case("pir.finished", how="cancelled then completed")
def _pir_completed_after_cancel(i: ImprovementWorld) -> Attempt:
    pir = i.pir()
    i.run(UpdatePostIncidentReview(pir=pir, status="cancelled"))
    return Attempt(UpdatePostIncidentReview(pir=pir, status="completed"), i.w.manager)


@case("pir.no_change")
def _pir_same_values(i: ImprovementWorld) -> Attempt:
    pir = i.pir()
    command = UpdatePostIncidentReview(pir=pir, status="scheduled", facilitator=i.w.other_manager)
    return Attempt(command, i.w.manager)


@case("pir.not_found", NotFound, how="update")
def _update_unknown_pir(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdatePostIncidentReview(pir=uuid4(), review_notes="x"), i.w.manager)


# --- GenerateIncidentReport / UpdateIncidentReport (SOP 18) ---------------------------------------


@case("report.incident_not_resolved")
def _report_on_open_incident(i: ImprovementWorld) -> Attempt:
    command = GenerateIncidentReport(
        incident=i.w.incident, report_type="compliance", report_title="T", report_content="C"
    )
    return Attempt(command, i.w.manager)


@case("report.invalid_transition", how="draft to approved")
def _report_skips_completion(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdateIncidentReport(report=i.report(), status="approved"), i.w.manager)


@case("report.invalid_transition", how="archived to draft")
def _report_back_from_archive(i: ImprovementWorld) -> Attempt:
    report = i.report()
    for status in ("completed", "approved", "archived"):
        i.run(UpdateIncidentReport(report=report, status=status))
    return Attempt(UpdateIncidentReport(report=report, status="draft"), i.w.manager)


@case("report.locked")
def _report_edited_after_approval(i: ImprovementWorld) -> Attempt:
    report = i.report()
    for status in ("completed", "approved"):
        i.run(UpdateIncidentReport(report=report, status=status))
    return Attempt(UpdateIncidentReport(report=report, report_content="Edited"), i.w.manager)


@case("report.no_change")
def _report_same_values(i: ImprovementWorld) -> Attempt:
    command = UpdateIncidentReport(report=i.report(), report_type="client_impact", status="draft")
    return Attempt(command, i.w.manager)


@case("report.not_found", NotFound, how="update")
def _update_unknown_report(i: ImprovementWorld) -> Attempt:
    return Attempt(UpdateIncidentReport(report="RPT9999999", report_title="x"), i.w.manager)


@pytest.mark.parametrize(("build", "code", "error"), CASES)
def test_improvement_command_is_refused_with_its_code_and_appends_nothing(
    iw: ImprovementWorld, build: Case, code: str, error: type[LedgerError]
) -> None:
    attempt = build(iw)
    assert_refused(iw.w, attempt.command, attempt.actor, error, code)


def test_rca_names_exactly_one_of_incident_or_problem() -> None:
    for parents in ({}, {"incident": "INC0000001", "problem": "PRB0000001"}):
        with pytest.raises(ValidationError):
            StartRootCauseAnalysis(
                rca_title="x",
                assigned_to=uuid4(),
                due_date=DUE,
                analysis_method="timeline",
                **parents,
            )
    with pytest.raises(ValidationError):
        StartRootCauseAnalysis(
            incident="INC0000001",
            rca_title="x",
            assigned_to=uuid4(),
            due_date=DUE,
            analysis_method="guesswork",
        )


# --- the status machines, written down ------------------------------------------------------------


def test_status_machines_are_the_specs() -> None:
    assert {k.value: sorted(v.value for v in vs) for k, vs in RCA_TRANSITIONS.items()} == {
        "assigned": ["in_progress"],
        "in_progress": ["completed"],
        "completed": ["approved"],
        "approved": [],
    }
    assert {k.value: sorted(v.value for v in vs) for k, vs in PIR_TRANSITIONS.items()} == {
        "scheduled": ["cancelled", "completed"],
        "completed": [],
        "cancelled": [],
    }
    assert {k.value: sorted(v.value for v in vs) for k, vs in REPORT_TRANSITIONS.items()} == {
        "draft": ["completed"],
        "completed": ["approved"],
        "approved": ["archived"],
        "archived": [],
    }


@pytest.mark.parametrize("target", list(RcaStatus))
@pytest.mark.parametrize("start_at", list(RcaStatus))
def test_rca_moves_only_along_its_machine(
    iw: ImprovementWorld, start_at: RcaStatus, target: RcaStatus
) -> None:
    rca = iw.rca()
    path = list(RcaStatus)[1 : list(RcaStatus).index(start_at) + 1]
    for status in path:
        approver = iw.executive if status == RcaStatus.APPROVED else iw.w.manager
        iw.run(UpdateRootCauseAnalysis(rca=rca, status=status), approver)
    command = UpdateRootCauseAnalysis(rca=rca, status=target)
    actor = iw.executive if target == RcaStatus.APPROVED else iw.w.manager
    if target in RCA_TRANSITIONS[start_at]:
        iw.run(command, actor)
        assert iw.w.ledger.find(RootCauseAnalysis, rca, "rca").status == target
    else:
        code = "rca.approved" if start_at == RcaStatus.APPROVED else "rca.invalid_transition"
        code = "rca.no_change" if target == start_at else code
        assert_refused(iw.w, command, actor, RuleViolation, code)


@pytest.mark.parametrize("target", list(PirStatus))
@pytest.mark.parametrize("start_at", list(PirStatus))
def test_pir_moves_only_along_its_machine(
    iw: ImprovementWorld, start_at: PirStatus, target: PirStatus
) -> None:
    pir = iw.pir()
    if start_at != PirStatus.SCHEDULED:
        iw.run(UpdatePostIncidentReview(pir=pir, status=start_at))
    command = UpdatePostIncidentReview(pir=pir, status=target)
    if target in PIR_TRANSITIONS[start_at]:
        iw.run(command)
    else:
        finished = not PIR_TRANSITIONS[start_at] and target != start_at
        code = "pir.finished" if finished else "pir.no_change"
        assert_refused(iw.w, command, iw.w.manager, RuleViolation, code)


@pytest.mark.parametrize("target", list(ReportStatus))
@pytest.mark.parametrize("start_at", list(ReportStatus))
def test_report_moves_only_along_its_machine(
    iw: ImprovementWorld, start_at: ReportStatus, target: ReportStatus
) -> None:
    report = iw.report()
    for status in list(ReportStatus)[1 : list(ReportStatus).index(start_at) + 1]:
        iw.run(UpdateIncidentReport(report=report, status=status))
    command = UpdateIncidentReport(report=report, status=target)
    if target in REPORT_TRANSITIONS[start_at]:
        iw.run(command)
    else:
        code = "report.no_change" if target == start_at else "report.invalid_transition"
        assert_refused(iw.w, command, iw.w.manager, RuleViolation, code)


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_rca_on_resolved_or_closed_problem_is_started(iw: ImprovementWorld, status: str) -> None:
    problem = iw.problem(status)
    outcome = iw.run(start(iw.w, problem=problem))
    rca = iw.w.ledger.find(RootCauseAnalysis, str(outcome.number), "rca")
    assert (rca.problem_id, rca.incident_id, rca.status) == (
        UUID(problem),
        None,
        RcaStatus.ASSIGNED,
    )
