"""Handlers for the improvement records (SOP 17, 18): root-cause analyses, post-incident reviews
and incident reports. Each rule on the incident (or problem) analysed reads its status, so that
record is guarded: a concurrent reopen either commits first (and the command is decided again,
and refused) or after the record is made."""

from __future__ import annotations

from uuid import UUID

from domain.base import changes_between
from domain.context import Context, Decision, entry, outcome
from domain.errors import require
from domain.incident import Incident, IncidentStatus
from domain.pir import PostIncidentReview, SchedulePostIncidentReview, UpdatePostIncidentReview
from domain.problem import Problem
from domain.rca import RootCauseAnalysis, StartRootCauseAnalysis, UpdateRootCauseAnalysis
from domain.report import GenerateIncidentReport, IncidentReport, UpdateIncidentReport
from domain.severity import Severity

FINISHED = frozenset({IncidentStatus.RESOLVED, IncidentStatus.CLOSED})
MAJOR = frozenset({Severity.P1, Severity.P2})
PROBLEM_FINISHED = frozenset({"resolved", "closed"})


def _incident(ctx: Context, ref: UUID | str) -> Incident:
    """The incident a record is about: its state is the rule, so it is guarded."""
    incident = ctx.find(Incident, ref, "incident", guard=True)
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    return incident


def _after_detection(ctx: Context, incident_id: UUID | None) -> None:
    if incident_id is not None:
        incident = ctx.find(Incident, incident_id, "incident")
        ctx.not_before(incident.detection_time, f"the detection of {incident.number}")


def _problem(ctx: Context, ref: str) -> Problem:
    """The problem an RCA analyses, resolved or closed as the append commits."""
    found = ctx.find(Problem, ref, "problem", guard=True)
    require(
        found.status.value in PROBLEM_FINISHED,
        "rca.problem_not_resolved",
        f"Problem {found.number} is {found.status.value}; only a resolved or closed problem is "
        "analysed.",
        current_status=found.status.value,
    )
    return found


# --- root-cause analyses (SOP 17 A, B) ------------------------------------------------------------


def start_rca(cmd: StartRootCauseAnalysis, ctx: Context) -> Decision:
    incident_id = problem_id = None
    if cmd.incident is not None:
        incident = _incident(ctx, cmd.incident)
        require(
            incident.status in FINISHED,
            "rca.incident_not_resolved",
            f"Incident {incident.number} is {incident.status.value}; only a resolved or closed "
            "incident is analysed.",
            current_status=incident.status.value,
        )
        require(
            incident.severity in MAJOR,
            "rca.not_major_incident",
            f"Incident {incident.number} is {incident.severity.value}; a root-cause analysis is "
            "for P1 and P2 incidents.",
        )
        incident_id = incident.id
    else:
        assert cmd.problem is not None  # the command's validator guarantees exactly one
        problem_id = _problem(ctx, cmd.problem).id
    ctx.active_user(cmd.assigned_to, "assignee")
    number, counter = ctx.next_number("RCA")
    rca = RootCauseAnalysis(
        meta=ctx.meta,
        number=number,
        incident_id=incident_id,
        problem_id=problem_id,
        rca_title=cmd.rca_title,
        assigned_to=cmd.assigned_to,
        due_date=cmd.due_date,
        analysis_method=cmd.analysis_method,
        findings=cmd.findings,
        root_cause=cmd.root_cause,
        recommendations=cmd.recommendations,
    )
    return outcome(rca), [counter, rca]


def update_rca(cmd: UpdateRootCauseAnalysis, ctx: Context) -> Decision:
    rca = ctx.find(RootCauseAnalysis, cmd.rca, "rca")
    ctx.address(rca, cmd.expected_version)
    _after_detection(ctx, rca.incident_id)
    actor = ctx.actor
    assert actor is not None  # never a system command
    rca.require_editor(actor.id, actor.role)
    fields = {
        "rca_title",
        "assigned_to",
        "due_date",
        "analysis_method",
        "findings",
        "root_cause",
        "recommendations",
    }
    changes = changes_between(rca, cmd.model_dump(include=fields, exclude_none=True))
    if "assigned_to" in changes and cmd.assigned_to is not None:
        ctx.active_user(cmd.assigned_to, "assignee")
    rca.update(ctx.meta, changes, cmd.status, actor.role)
    return outcome(rca), [rca]


# --- post-incident reviews (SOP 17 C, D) ----------------------------------------------------------


def schedule_pir(cmd: SchedulePostIncidentReview, ctx: Context) -> Decision:
    incident = _incident(ctx, cmd.incident)
    require(
        incident.status == IncidentStatus.CLOSED,
        "pir.incident_not_closed",
        f"Incident {incident.number} is {incident.status.value}; a post-incident review is "
        "scheduled once the incident is closed.",
        current_status=incident.status.value,
    )
    ctx.active_user(cmd.facilitator, "facilitator")
    pir = PostIncidentReview(
        meta=ctx.meta,
        incident_id=incident.id,
        scheduled_date=cmd.scheduled_date,
        facilitator=cmd.facilitator,
        review_notes=cmd.review_notes,
        lessons_learned=cmd.lessons_learned,
        action_items=cmd.action_items,
    )
    return outcome(pir), [pir]


def update_pir(cmd: UpdatePostIncidentReview, ctx: Context) -> Decision:
    pir = ctx.address(ctx.find(PostIncidentReview, cmd.pir, "pir"), cmd.expected_version)
    _after_detection(ctx, pir.incident_id)
    fields = {"scheduled_date", "facilitator", "review_notes", "lessons_learned", "action_items"}
    changes = changes_between(pir, cmd.model_dump(include=fields, exclude_none=True))
    if "facilitator" in changes and cmd.facilitator is not None:
        ctx.active_user(cmd.facilitator, "facilitator")
    pir.update(ctx.meta, changes, cmd.status)
    return outcome(pir), [pir]


# --- incident reports (SOP 18) --------------------------------------------------------------------


def generate_report(cmd: GenerateIncidentReport, ctx: Context) -> Decision:
    incident = _incident(ctx, cmd.incident)
    require(
        incident.status in FINISHED,
        "report.incident_not_resolved",
        f"Incident {incident.number} is {incident.status.value}; reports are generated for "
        "resolved or closed incidents.",
        current_status=incident.status.value,
    )
    number, counter = ctx.next_number("RPT")
    report = IncidentReport(
        meta=ctx.meta,
        number=number,
        incident_id=incident.id,
        report_type=cmd.report_type,
        report_title=cmd.report_title,
        report_content=cmd.report_content,
    )
    return outcome(report), [counter, report]


def update_report(cmd: UpdateIncidentReport, ctx: Context) -> Decision:
    report = ctx.find(IncidentReport, cmd.report, "report")
    ctx.address(report, cmd.expected_version)
    _after_detection(ctx, report.incident_id)
    fields = {"report_type", "report_title", "report_content"}
    changes = changes_between(report, cmd.model_dump(include=fields, exclude_none=True))
    report.update(ctx.meta, changes, cmd.status)
    return outcome(report), [report]


HANDLERS = dict(
    [
        entry(StartRootCauseAnalysis, start_rca),
        entry(UpdateRootCauseAnalysis, update_rca),
        entry(SchedulePostIncidentReview, schedule_pir),
        entry(UpdatePostIncidentReview, update_pir),
        entry(GenerateIncidentReport, generate_report),
        entry(UpdateIncidentReport, update_report),
    ]
)
