"""Handlers for the incident itself (SOP 2, 10) and its follow-ups (bridge, draft report)."""

from __future__ import annotations

from domain.base import Aggregate, Role, changes_between
from domain.bridge import BridgeType
from domain.configuration_item import ConfigurationItem
from domain.context import WORKERS, Context, Decision, entry, outcome
from domain.handlers.bridge import host_follows, open_bridge
from domain.incident import (
    AcknowledgeIncident,
    AssignIncident,
    ChangeIncidentStatus,
    Incident,
    IncidentCommand,
    IncidentStatus,
    LinkCIToIncident,
    OpenIncident,
    UpdateIncidentDetails,
)
from domain.report import IncidentReport, ReportType
from domain.severity import Severity, SeverityAssessment, SeverityDecision, assess_severity


def addressed_incident(cmd: IncidentCommand, ctx: Context) -> Incident:
    """The incident the command names; a concurrent change to it is the client's 409."""
    incident = ctx.address(ctx.find(Incident, cmd.incident, "incident"), cmd.expected_version)
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    return incident


def _severity(
    given: Severity | None, assessment: SeverityAssessment | None
) -> tuple[Severity | None, SeverityDecision | None]:
    """A given severity wins; else the SOP 2.1 assessment decides (and is recorded either way)."""
    decision = assess_severity(assessment) if assessment is not None else None
    return given or (decision.severity if decision else None), decision


def open_incident(cmd: OpenIncident, ctx: Context) -> Decision:
    ctx.not_in_future(cmd.detection_time, "detection_time")
    if cmd.occurred_at is not None:
        ctx.not_before(cmd.detection_time, "the detection time")
    elif cmd.detection_time > ctx.meta.occurred_at:
        # Within the clock-skew margin, but the opening (now) cannot precede the detection.
        ctx.not_in_future(cmd.detection_time, "detection_time", skew=False)
    ctx.active_user(cmd.reported_by, "reporter")
    assignee = ctx.active_user(cmd.assigned_to, "assignee", WORKERS) if cmd.assigned_to else None
    cis = [ctx.find(ConfigurationItem, ci, "configuration_item") for ci in cmd.configuration_items]
    severity, decision = _severity(cmd.severity, cmd.assessment)
    assert severity is not None  # the command's validator guarantees one of them
    number, counter = ctx.next_number("INC")
    incident = Incident(
        meta=ctx.meta,
        number=number,
        title=cmd.title,
        description=cmd.description,
        category=cmd.category,
        severity=severity,
        impact=cmd.impact,
        urgency=cmd.urgency,
        reported_by=cmd.reported_by,
        assigned_to=cmd.assigned_to,
        detection_time=cmd.detection_time,
        assessment=cmd.assessment,
        decision=decision,
    )
    for ci in cis:  # SOP 2.1 step 5 / SOP 10, in the same append
        incident.link_configuration_item(ctx.meta, ci.id)
    saved: list[Aggregate] = [counter, incident]
    extra: dict[str, str] = {}
    if (
        severity in (Severity.P1, Severity.P2)
        and assignee is not None
        and assignee.role == Role.INCIDENT_MANAGER
    ):
        # SOP 2.1 step 4 → SOP 4.1: a major-incident bridge hosted by the assigned incident
        # manager, and the incident moves to in_progress (the same code as OpenBridge). Without
        # an incident manager the incident is still recorded (never refuse to record an
        # outage); the missing bridge is an obligation.
        bridge, with_bridge = open_bridge(ctx, incident, BridgeType.MAJOR_INCIDENT, [])
        saved += with_bridge
        extra = {"bridge_id": str(bridge.id), "bridge_number": bridge.number}
    return outcome(incident, **extra), saved


def acknowledge(cmd: AcknowledgeIncident, ctx: Context) -> Decision:
    incident = addressed_incident(cmd, ctx)
    ctx.require_assignee_if_support(incident)
    incident.acknowledge(ctx.meta)
    return outcome(incident), [incident]


def assign(cmd: AssignIncident, ctx: Context) -> Decision:
    incident = addressed_incident(cmd, ctx)
    assignee = ctx.active_user(cmd.assigned_to, "assignee", WORKERS)
    incident.assign(ctx.meta, cmd.assigned_to)
    return outcome(incident), [incident, *host_follows(ctx, incident, assignee)]


def change_status(cmd: ChangeIncidentStatus, ctx: Context) -> Decision:
    incident = addressed_incident(cmd, ctx)
    ctx.require_assignee_if_support(incident)
    incident.change_status(ctx.meta, cmd.status)
    saved: list[Aggregate] = [incident]
    extra: dict[str, str] = {}
    if cmd.status == IncidentStatus.CLOSED:  # SOP 2.2 step 5: the draft postmortem report
        number, counter = ctx.next_number("RPT")
        report = IncidentReport(
            meta=ctx.meta,
            number=number,
            incident_id=incident.id,
            report_type=ReportType.POST_INCIDENT_REVIEW,
            report_title=f"Post Incident Review - {incident.number}",
            report_content=f"Incident {incident.number} has been closed.",
        )
        saved += [counter, report]
        extra = {"report_id": str(report.id), "report_number": number}
    return outcome(incident, **extra), saved


def update_details(cmd: UpdateIncidentDetails, ctx: Context) -> Decision:
    incident = addressed_incident(cmd, ctx)
    fields = {"title", "description", "category", "impact", "urgency"}
    changes = changes_between(incident, cmd.model_dump(include=fields, exclude_none=True))
    severity, decision = _severity(cmd.severity, cmd.assessment)
    incident.update_details(ctx.meta, changes, severity, cmd.assessment, decision)
    return outcome(incident), [incident]


def link_ci(cmd: LinkCIToIncident, ctx: Context) -> Decision:
    incident = addressed_incident(cmd, ctx)
    ci = ctx.find(ConfigurationItem, cmd.configuration_item, "configuration_item")
    incident.link_configuration_item(ctx.meta, ci.id)
    return outcome(incident), [incident]


HANDLERS = dict(
    [
        entry(OpenIncident, open_incident),
        entry(AcknowledgeIncident, acknowledge),
        entry(AssignIncident, assign),
        entry(ChangeIncidentStatus, change_status),
        entry(UpdateIncidentDetails, update_details),
        entry(LinkCIToIncident, link_ci),
    ]
)
