"""Handlers for bridges (SOP 4, 5): open (also OpenIncident's P1/P2 follow-up, through the same
`open_bridge`), add participants, a participant leaves, close; and `host_follows`, the bridge side
of AssignIncident."""

from __future__ import annotations

from domain.base import Aggregate, Role
from domain.bridge import (
    AddBridgeParticipants,
    Bridge,
    BridgeCommand,
    BridgeParticipant,
    BridgeStatus,
    BridgeType,
    CloseBridge,
    OpenBridge,
    RemoveBridgeParticipant,
    require_type,
)
from domain.context import Context, Decision, entry, outcome, refused_after
from domain.errors import require
from domain.incident import Incident, IncidentStatus
from domain.user import User
from domain.work_note import NoteType, WorkNote


def open_bridge(
    ctx: Context,
    incident: Incident,
    bridge_type: BridgeType,
    participants: list[BridgeParticipant],
) -> tuple[Bridge, list[Aggregate]]:
    """SOP 4.1, the one way a bridge opens: the incident is open or in progress and assigned to
    an active incident manager, who hosts; the type fits the severity; an open incident moves to
    in_progress; initial participants follow SOP 4.2. Records the bridge on the incident (at most
    one active bridge per incident). Answers the bridge and what to save besides the incident
    (which the caller saves: it may be new)."""
    incident.require_open_or_in_progress("open a bridge")
    host = _incident_manager(ctx, incident)
    incident.require_no_active_bridge()
    require_type(incident.severity, bridge_type)
    number, counter = ctx.next_number("BRG")
    bridge = Bridge(
        meta=ctx.meta,
        number=number,
        incident_id=incident.id,
        bridge_type=bridge_type,
        host=host.id,
        start_time=ctx.meta.occurred_at,
    )
    if incident.status == IncidentStatus.OPEN:  # SOP 4.1 step 7
        incident.change_status(ctx.meta, IncidentStatus.IN_PROGRESS)
    incident.record_bridge_opened(ctx.meta, bridge.id)
    saved: list[Aggregate] = [counter, bridge]
    if participants:  # SOP 4.1 step 8 → SOP 4.2
        saved.append(_add_participants(ctx, bridge, incident, participants))
    return bridge, saved


def _incident_manager(ctx: Context, incident: Incident) -> User:
    """The incident's assignee, who must be an incident manager, active as the append commits."""
    assignee = (
        ctx.find(User, incident.assigned_to, "user", guard=True) if incident.assigned_to else None
    )
    require(
        assignee is not None and assignee.role == Role.INCIDENT_MANAGER,
        "bridge.no_incident_manager",
        f"Incident {incident.number} has no assigned incident manager to host a bridge; assign "
        "one first.",
    )
    assert assignee is not None
    return ctx.active_user(assignee.id, "host")


def _add_participants(
    ctx: Context, bridge: Bridge, incident: Incident, participants: list[BridgeParticipant]
) -> WorkNote:
    """SOP 4.2: each user active (as the append commits), none twice; one work note."""
    for participant in participants:
        ctx.active_user(participant.user, "participant")
    bridge.add_participants(ctx.meta, participants)
    return WorkNote(
        meta=ctx.meta,
        incident_id=incident.id,
        problem_id=None,
        note_type=NoteType.PROGRESS_UPDATE,
        note_text=f"Bridge participant(s) added to bridge {bridge.number} "
        f"for incident {incident.number}",
    )


def _addressed(cmd: BridgeCommand, ctx: Context) -> tuple[Bridge, Incident]:
    bridge = ctx.address(ctx.find(Bridge, cmd.bridge, "bridge"), cmd.expected_version)
    incident = ctx.find(Incident, bridge.incident_id, "incident")
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    return bridge, incident


def open_bridge_command(cmd: OpenBridge, ctx: Context) -> Decision:
    # The incident's state is the rule, and the incident is saved (the bridge is recorded on it),
    # so a concurrent change to it makes this command be decided again.
    incident = ctx.find(Incident, cmd.incident, "incident", guard=True)
    if cmd.expected_version is not None:
        ctx.address(incident, cmd.expected_version)
    ctx.not_before(incident.detection_time, f"the detection of {incident.number}")
    bridge, saved = open_bridge(ctx, incident, cmd.bridge_type, cmd.participants)
    extra = {"incident_status": incident.status.value}
    notes = [a for a in saved if isinstance(a, WorkNote)]
    if notes:
        extra["work_note_id"] = str(notes[0].id)
    return outcome(bridge, **extra), [incident, *saved]


def add_participants(cmd: AddBridgeParticipants, ctx: Context) -> Decision:
    bridge, incident = _addressed(cmd, ctx)
    note = _add_participants(ctx, bridge, incident, cmd.participants)
    return outcome(bridge, work_note_id=str(note.id)), [bridge, note]


def remove_participant(cmd: RemoveBridgeParticipant, ctx: Context) -> Decision:
    bridge, _incident = _addressed(cmd, ctx)
    bridge.leave(ctx.meta, cmd.user)
    return outcome(bridge), [bridge]


def close_bridge(cmd: CloseBridge, ctx: Context) -> Decision:
    bridge, incident = _addressed(cmd, ctx)
    if bridge.status == BridgeStatus.CLOSED:
        # SOP 5 step 2: stop and record the work note; the client still gets its 409.
        note = _note(ctx, incident, "Bridge already closed.")
        answer = refused_after(
            note,
            "bridge.already_closed",
            f"Bridge {bridge.number} is already closed; the work note 'Bridge already closed.' "
            "was recorded on the incident.",
            work_note_id=str(note.id),
        )
        return answer, [note]
    # The incident's state is the rule: it is saved too (the bridge leaves it), so a concurrent
    # reopen either commits first (and this is decided again, and refused) or after the close.
    require(
        incident.status in (IncidentStatus.RESOLVED, IncidentStatus.MONITORING),
        "bridge.incident_not_resolved",
        f"Bridge {bridge.number} closes once incident {incident.number} is resolved or "
        f"monitoring; it is {incident.status.value}.",
        current_status=incident.status.value,
    )
    host = ctx.find(User, bridge.host, "user", guard=True)
    require(
        host.is_active,
        "bridge.host_inactive",
        f"The bridge's host ({host.full_name}) is inactive; reassign incident {incident.number} "
        "to an active incident manager (the host follows) and close again.",
    )
    bridge.close(ctx.meta)
    incident.record_bridge_closed(ctx.meta, bridge.id)
    assert ctx.actor is not None  # bridge commands are never issued by the ledger itself
    note = _note(
        ctx,
        incident,
        f"Bridge closed for the incident {incident.number} by {ctx.actor.first_name} "
        f"{ctx.actor.last_name} after all activities completed.",
    )
    return outcome(bridge, work_note_id=str(note.id)), [bridge, incident, note]


def _note(ctx: Context, incident: Incident, text: str) -> WorkNote:
    return WorkNote(
        meta=ctx.meta,
        incident_id=incident.id,
        problem_id=None,
        note_type=NoteType.PROGRESS_UPDATE,
        note_text=text,
    )


def host_follows(ctx: Context, incident: Incident, assignee: User) -> list[Aggregate]:
    """AssignIncident's follow-up: while the incident has an active bridge, a new incident
    manager becomes its host (SOP 5 checks the host). Assigned to technical support, the
    incident keeps its host: only an incident manager hosts a bridge."""
    if incident.active_bridge_id is None or assignee.role != Role.INCIDENT_MANAGER:
        return []
    bridge = ctx.find(Bridge, incident.active_bridge_id, "bridge")
    if bridge.host == assignee.id:
        return []
    bridge.change_host(ctx.meta, assignee.id)
    return [bridge]


HANDLERS = dict(
    [
        entry(OpenBridge, open_bridge_command),
        entry(AddBridgeParticipants, add_participants),
        entry(RemoveBridgeParticipant, remove_participant),
        entry(CloseBridge, close_bridge),
    ]
)
