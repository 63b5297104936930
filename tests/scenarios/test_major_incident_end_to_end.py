"""Issue 9's scenario, on the in-memory ledger and on PostgreSQL: a P1 from detection through its
bridge, participants, an escalation and its approval, an emergency change with the executive's
approval, scheduled, implemented, rolled back with a new incident, resolved, bridge closed,
closed, RCA to approved, PIR completed, report approved; and the incident's timeline holds all of
it, in the ledger's order (on PostgreSQL, the timeline view itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.approval import DecideApproval, RequestApproval
from domain.base import DomainEvent, Role
from domain.bridge import AddBridgeParticipants, CloseBridge
from domain.change import RequestChange, UpdateChangeStatus
from domain.escalation import Escalate, UpdateEscalationStatus
from domain.incident import AcknowledgeIncident, ChangeIncidentStatus, Incident, OpenIncident
from domain.pir import SchedulePostIncidentReview, UpdatePostIncidentReview
from domain.rca import StartRootCauseAnalysis, UpdateRootCauseAnalysis
from domain.report import IncidentReport, UpdateIncidentReport
from domain.rollback import RequestRollback, UpdateRollbackStatus
from projections.folds import Inherit, link_rows
from projections.queries import incident_timeline
from tests.scenarios.conftest import Driver, Step, qualname


def timeline_of(events: list[DomainEvent], root: UUID) -> list[str]:
    """The incident's timeline computed from the events alone, by the timeline's own link rules
    (each record belongs to the roots its created event names, or inherits its reference's)."""
    links: set[tuple[Any, Any]] = set()
    for event in events:
        for row in link_rows(event):
            inherit = next(iter(row.values.values()), None)
            if isinstance(inherit, Inherit):
                links |= {(row.key["record_id"], r) for s, r in list(links) if s == inherit.source}
            else:
                links.add((row.key["record_id"], row.key["root_id"]))
    records = {record for record, r in links if r == root}
    return [qualname(e) for e in events if e.originator_id in records]


def test_a_p1_from_detection_to_its_approved_report(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    deputy = d.user(Role.INCIDENT_MANAGER, "Olu")
    support = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    executive = d.user(Role.EXECUTIVE, "Eve")
    steps: list[Step] = []

    def run(command: Any, actor: UUID) -> Step:
        step = d.run(command, actor)
        step.assert_one_command(actor)
        steps.append(step)
        return step

    detected = datetime.now(UTC) - timedelta(hours=3)
    opened = run(
        OpenIncident(
            title="Checkout down",
            description="every payment fails",
            category="software",
            impact="critical",
            urgency="critical",
            severity="P1",
            reported_by=manager,
            assigned_to=manager,
            detection_time=detected,
        ),
        manager,
    )
    number, bridge = opened.outcome.number, opened.outcome.extra["bridge_number"]
    assert number is not None
    assert "Bridge.Opened" in opened.types
    run(AcknowledgeIncident(incident=number), manager)
    run(
        AddBridgeParticipants(
            bridge=bridge,
            participants=[
                {"user": support, "role_in_bridge": "technical_support"},
                {"user": executive, "role_in_bridge": "executive"},
            ],
        ),
        manager,
    )
    escalation = run(Escalate(incident=number, escalated_to=deputy, reason="DBA needed"), manager)
    asked = run(
        RequestApproval(
            reference_type="escalation",
            reference=str(escalation.id),
            requested_action="create_escalation",
            approver=executive,
        ),
        manager,
    )
    run(DecideApproval(approval=asked.id, decision="approved", comment="go"), executive)
    run(UpdateEscalationStatus(escalation=escalation.id, status="approved"), manager)
    change = run(
        RequestChange(
            title="Fail over to the replica",
            description="promote db-2",
            change_type="emergency",
            risk_level="high",
            incident=number,
            approver=executive,
        ),
        manager,
    )
    assert "Approval.Requested" in change.types  # in the same append
    change_number = change.outcome.number
    assert change_number is not None
    approval_id = UUID(change.outcome.extra["approval_id"])
    granted = run(DecideApproval(approval=approval_id, decision="approved"), executive)
    assert "Change.ApprovalGranted" in granted.types
    run(UpdateChangeStatus(change=change_number, status="scheduled"), manager)
    run(UpdateChangeStatus(change=change_number, status="implemented"), manager)
    rollback = run(
        RequestRollback(
            change=change_number,
            title="Fail back",
            reason="replica lags",
            new_incident=OpenIncident(
                title="Replica lag after failover",
                description="reads are stale",
                category="database",
                impact="high",
                urgency="high",
                severity="P3",
                reported_by=manager,
                assigned_to=manager,
                detection_time=datetime.now(UTC) - timedelta(minutes=5),
            ),
        ),
        manager,
    )
    assert "Incident.Opened" in rollback.types  # the new incident, in the rollback's append
    rollback_number = rollback.outcome.number
    assert rollback_number is not None
    run(UpdateRollbackStatus(rollback=rollback_number, status="approved"), manager)
    run(UpdateRollbackStatus(rollback=rollback_number, status="executed"), manager)
    run(ChangeIncidentStatus(incident=number, status="resolved"), manager)
    run(CloseBridge(bridge=bridge), manager)
    closed = run(ChangeIncidentStatus(incident=number, status="closed"), manager)
    report_number = closed.outcome.extra["report_number"]
    rca = run(
        StartRootCauseAnalysis(
            incident=number,
            rca_title="Why payments failed",
            assigned_to=support,
            due_date=datetime.now(UTC) + timedelta(days=7),
            analysis_method="5_whys",
        ),
        manager,
    )
    rca_number = rca.outcome.number
    assert rca_number is not None
    run(UpdateRootCauseAnalysis(rca=rca_number, status="in_progress"), support)
    run(UpdateRootCauseAnalysis(rca=rca_number, status="completed", root_cause="pool"), support)
    run(UpdateRootCauseAnalysis(rca=rca_number, status="approved"), deputy)
    pir = run(
        SchedulePostIncidentReview(
            incident=number,
            scheduled_date=datetime.now(UTC) + timedelta(days=1),
            facilitator=deputy,
        ),
        manager,
    )
    run(UpdatePostIncidentReview(pir=pir.id, status="completed", lessons_learned="alert"), manager)
    run(UpdateIncidentReport(report=report_number, status="completed"), manager)
    run(UpdateIncidentReport(report=report_number, status="approved"), manager)

    incident = d.ledger.find(Incident, number, "incident")
    assert incident.status.value == "closed"
    assert d.ledger.find(IncidentReport, report_number, "report").status.value == "approved"
    assert d.get(rca.id).status.value == "approved"
    assert d.get(rca.id).approved_by == deputy
    assert d.get(change.id).approved_by == executive
    assert d.get(rollback.id).status.value == "executed"
    assert d.get(pir.id).status.value == "completed"

    everything = [e for step in steps for e in step.events]
    expected = timeline_of(everything, incident.id)
    for main in (
        "Incident.Opened", "Bridge.Opened", "Incident.Acknowledged", "Bridge.ParticipantsAdded",
        "Escalation.Created", "Approval.Requested", "Approval.Decided",
        "Escalation.StatusUpdated", "Change.Requested", "Change.ApprovalGranted",
        "Change.StatusChanged", "Rollback.Requested", "Rollback.StatusChanged",
        "Bridge.Closed", "IncidentReport.Generated", "RootCauseAnalysis.Started",
        "RootCauseAnalysis.StatusChanged", "PostIncidentReview.Scheduled",
        "PostIncidentReview.StatusChanged", "IncidentReport.StatusChanged",
    ):  # fmt: skip
        assert main in expected, main
    # In order: each step's events after the previous step's.
    firsts = [expected.index(t) for t in ("Incident.Opened", "Escalation.Created",
              "Change.Requested", "Rollback.Requested", "Bridge.Closed",
              "RootCauseAnalysis.Started", "PostIncidentReview.Scheduled")]  # fmt: skip
    assert firsts == sorted(firsts)
    # The new incident of the rollback keeps its own history; the rollback is on both timelines.
    new_incident = UUID(rollback.outcome.extra["incident_id"])
    assert "Rollback.Requested" in timeline_of(everything, new_incident)
    assert "Change.Requested" not in timeline_of(everything, new_incident)

    if d.name == "postgres":
        service = d.service
        service.project()
        with service.read_view("timeline", None) as (curs, _position):
            entries = incident_timeline(curs, incident.id)
        mine = {e.originator_id for e in everything}
        seen = [e["event_type"] for e in entries if e["record_id"] in mine]
        assert seen == expected
