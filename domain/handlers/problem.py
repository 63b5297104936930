"""Handlers for problem tickets (SOP 6, 7, 8, 9) and their follow-ups: the incidents' links, the
work notes and the communications, each saved in the same append as the main action."""

from __future__ import annotations

from uuid import UUID

from domain.base import Aggregate, Role, changes_between
from domain.communication import (
    Communication,
    CommunicationType,
    DeliveryMethod,
    DeliveryStatus,
    RecipientType,
)
from domain.configuration_item import ConfigurationItem
from domain.context import WORKERS, Context, Decision, entry, outcome
from domain.errors import Forbidden, require
from domain.incident import Incident
from domain.problem import (
    PREFIX,
    LinkCIToProblem,
    LinkIncidentToProblem,
    OpenProblem,
    Problem,
    ProblemCommand,
    ProblemStatus,
    UpdateProblem,
)
from domain.user import User
from domain.work_note import NoteType, WorkNote

UPDATED_NOTE = "Problem ticket updated with new investigation details"


def _note(
    ctx: Context, text: str, *, incident: UUID | None = None, problem: UUID | None = None
) -> WorkNote:
    return WorkNote(
        meta=ctx.meta,
        incident_id=incident,
        problem_id=problem,
        note_type=NoteType.PROGRESS_UPDATE,
        note_text=text,
    )


def _notify(
    ctx: Context,
    recipient_id: UUID,
    kind: CommunicationType,
    message: str,
    extra: dict[str, str],
    *,
    incident: UUID | None = None,
    problem: UUID | None = None,
) -> list[Aggregate]:
    """A communication to an internal user, if that user may still be referenced (active when
    the append commits); an inactive recipient is not written to, and the action still stands.
    Its id goes into the outcome's `extra`."""
    recipient = ctx.find(User, recipient_id, "user", guard=True)
    if not recipient.is_active:
        return []
    communication = Communication(
        meta=ctx.meta,
        incident_id=incident,
        problem_id=problem,
        communication_type=kind,
        recipient_type=RecipientType.INTERNAL,
        sender=ctx.actor_id,
        recipient=recipient.id,
        delivery_method=DeliveryMethod.EMAIL,
        delivery_status=DeliveryStatus.PENDING,
        message_content=message,
    )
    extra["communication_id"] = str(communication.id)
    return [communication]


def _after_detection(ctx: Context, problem: Problem) -> None:
    ctx.not_before(problem.detected_at, f"the detection of {problem.number}")


def _linked_problem(cmd: ProblemCommand, ctx: Context) -> Problem:
    """The problem a link names. Its state is the rule (not closed) and the link saves it, so a
    concurrent close either commits first (the link is decided again, and refused) or after.
    Two links racing on one problem are decided again, not refused, unless the client named a
    version."""
    problem = ctx.find(Problem, cmd.problem, "problem", guard=True)
    if cmd.expected_version is not None:
        ctx.address(problem, cmd.expected_version)
    _after_detection(ctx, problem)
    return problem


def _incident_for_link(ctx: Context, ref: str) -> Incident:
    incident = ctx.find(Incident, ref, "incident", guard=True)
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    return incident


def open_problem(cmd: OpenProblem, ctx: Context) -> Decision:
    detected_at = cmd.detected_at or ctx.meta.occurred_at
    ctx.not_in_future(detected_at, "detected_at")
    if cmd.occurred_at is not None:
        ctx.not_before(detected_at, "the problem's detection")
    elif detected_at > ctx.meta.occurred_at:
        # Within the clock-skew margin, but the opening (now) cannot precede the detection.
        ctx.not_in_future(detected_at, "detected_at", skew=False)
    reporter_id = cmd.reported_by or ctx.actor_id
    assert reporter_id is not None  # only the ledger itself acts without a user
    reporter = ctx.active_user(reporter_id, "reporter")
    ctx.active_user(cmd.assigned_to, "assignee", WORKERS)
    incidents = [_incident_for_link(ctx, ref) for ref in cmd.incidents]
    for n, incident in enumerate(incidents):  # one incident named by its number and its id
        require(
            incident.id not in {i.id for i in incidents[:n]},
            "problem.incident_listed_twice",
            f"'incidents' names incident {incident.number} twice.",
        )
    number, counter = ctx.next_number(PREFIX)
    problem = Problem(
        meta=ctx.meta,
        number=number,
        title=cmd.title,
        description=cmd.description,
        category=cmd.category,
        reported_by=reporter.id,
        assigned_to=cmd.assigned_to,
        detected_at=detected_at,
    )
    saved: list[Aggregate] = [counter, problem]
    for incident in incidents:  # SOP 6 step 4: each incident records its link
        problem.link_incident(ctx.meta, incident.id)
        incident.link_to_problem(ctx.meta, problem.id)
        saved.append(incident)
    extra: dict[str, str] = {}
    if incidents:  # SOP 6 step 5: one note on the problem records the links
        note = _note(ctx, f"Incident(s) linked to Problem Ticket {number}", problem=problem.id)
        saved.append(note)
        extra["work_note_id"] = str(note.id)
    return outcome(problem, **extra), saved


def update_problem(cmd: UpdateProblem, ctx: Context) -> Decision:
    problem = ctx.address(ctx.find(Problem, cmd.problem, "problem"), cmd.expected_version)
    _after_detection(ctx, problem)
    if ctx.actor is not None and ctx.actor.role == Role.TECHNICAL_SUPPORT:
        if problem.assigned_to != ctx.actor.id:
            raise Forbidden(
                "problem.not_assigned_to_you",
                f"Technical support may only update problems assigned to them; "
                f"{problem.number} is not.",
            )
        if cmd.assigned_to is not None and cmd.assigned_to != problem.assigned_to:
            raise Forbidden(
                "role.forbidden", "Your role (technical_support) may not reassign a problem."
            )
    if cmd.assigned_to is not None and cmd.assigned_to != problem.assigned_to:
        ctx.active_user(cmd.assigned_to, "assignee", WORKERS)
    fields = {"title", "description", "category", "assigned_to"}
    changes = changes_between(problem, cmd.model_dump(include=fields, exclude_none=True))
    entering = cmd.status if cmd.status != problem.status else None
    problem.update(ctx.meta, changes, cmd.status)
    note = _note(ctx, UPDATED_NOTE, problem=problem.id)  # SOP 7 step 4
    saved: list[Aggregate] = [problem, note]
    extra = {"work_note_id": str(note.id)}
    # SOP 7 step 5: tell the reporter, unless the reporter is the one acting.
    if entering in (ProblemStatus.RESOLVED, ProblemStatus.CLOSED) and (
        problem.reported_by != ctx.actor_id
    ):
        assert entering is not None
        kind = (
            CommunicationType.RESOLUTION_NOTICE
            if entering == ProblemStatus.RESOLVED
            else CommunicationType.STATUS_UPDATE
        )
        message = f"Problem {problem.number} ({problem.title}) is now {entering.value}."
        saved += _notify(ctx, problem.reported_by, kind, message, extra, problem=problem.id)
    return outcome(problem, **extra), saved


def link_incident(cmd: LinkIncidentToProblem, ctx: Context) -> Decision:
    problem = _linked_problem(cmd, ctx)
    incident = _incident_for_link(ctx, cmd.incident)
    problem.link_incident(ctx.meta, incident.id)
    incident.link_to_problem(ctx.meta, problem.id)
    # SOP 8 steps 4 and 5: a note on each record.
    on_incident = _note(
        ctx, f"Incident linked to Problem Ticket {problem.number}", incident=incident.id
    )
    on_problem = _note(
        ctx, f"Incident {incident.number} linked to this problem ticket", problem=problem.id
    )
    saved: list[Aggregate] = [problem, incident, on_incident, on_problem]
    extra = {
        "incident_id": str(incident.id),
        "incident_work_note_id": str(on_incident.id),
        "problem_work_note_id": str(on_problem.id),
    }
    if incident.assigned_to is not None:  # SOP 8 step 6: tell the incident's manager
        message = (
            f"Incident {incident.number} is linked to Problem Ticket {problem.number} "
            f"({problem.title})."
        )
        saved += _notify(
            ctx,
            incident.assigned_to,
            CommunicationType.STATUS_UPDATE,
            message,
            extra,
            incident=incident.id,
            problem=problem.id,
        )
    return outcome(problem, **extra), saved


def link_ci(cmd: LinkCIToProblem, ctx: Context) -> Decision:
    problem = _linked_problem(cmd, ctx)
    ci = ctx.find(ConfigurationItem, cmd.configuration_item, "configuration_item")
    problem.link_configuration_item(ctx.meta, ci.id)
    return outcome(problem), [problem]


HANDLERS = dict(
    [
        entry(OpenProblem, open_problem),
        entry(UpdateProblem, update_problem),
        entry(LinkIncidentToProblem, link_incident),
        entry(LinkCIToProblem, link_ci),
    ]
)
