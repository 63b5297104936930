"""SOP 17 and 18, on the in-memory ledger and on PostgreSQL: a root-cause analysis from assigned to
approved (the approver named), a post-incident review completed, an incident report generated as a
draft and carried to archived (the draft made on closing is the same record), and attachments on
each of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain.attachment import AddAttachment, Attachment
from domain.base import Role
from domain.bridge import CloseBridge
from domain.incident import ChangeIncidentStatus
from domain.pir import PirStatus, SchedulePostIncidentReview, UpdatePostIncidentReview
from domain.rca import AnalysisMethod, RcaStatus, StartRootCauseAnalysis, UpdateRootCauseAnalysis
from domain.report import (
    GenerateIncidentReport,
    IncidentReport,
    ReportStatus,
    ReportType,
    UpdateIncidentReport,
)
from tests.scenarios.conftest import Driver

DUE = datetime.now(UTC) + timedelta(days=7)


def resolved_p1(d: Driver, manager: UUID) -> tuple[UUID, str]:
    """A P1 incident, resolved, its bridge closed."""
    opened = d.open_incident(manager, severity="P1")
    number = str(opened.outcome.number)
    d.run(ChangeIncidentStatus(incident=number, status="resolved"), manager)
    d.run(CloseBridge(bridge=opened.outcome.extra["bridge_number"]), manager)
    return opened.id, number


def attach(d: Driver, reference_type: str, reference: str, actor: UUID) -> Attachment:
    step = d.run(
        AddAttachment(
            reference_type=reference_type,
            reference=reference,
            file_name="notes.md",
            file_url="https://files.example.test/notes.md",
            file_type="text/markdown",
            file_size_bytes=120,
        ),
        actor,
    )
    assert step.types == ["Attachment.Added"]
    attachment: Attachment = d.get(step.id)
    return attachment


def test_sop17_rca_from_assigned_to_approved(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    analyst = d.user(Role.TECHNICAL_SUPPORT, "Sam")
    executive = d.user(Role.EXECUTIVE, "Eve")
    incident_id, number = resolved_p1(d, manager)

    started = d.run(
        StartRootCauseAnalysis(
            incident=number,
            rca_title="Why checkout fell over",
            assigned_to=analyst,
            due_date=DUE,
            analysis_method="5_whys",
        ),
        manager,
    )
    assert started.types == ["Counter.NumberIssued", "RootCauseAnalysis.Started"]
    rca = str(started.outcome.number)
    assert rca.startswith("RCA")
    state = d.get(started.id)
    assert (state.status, state.incident_id, state.problem_id) == (
        RcaStatus.ASSIGNED,
        incident_id,
        None,
    )
    assert state.analysis_method == AnalysisMethod.FIVE_WHYS

    # The analyst (technical support) works on the analysis assigned to them.
    working = d.run(
        UpdateRootCauseAnalysis(rca=rca, status="in_progress", findings="Pool exhausted"), analyst
    )
    assert working.types == ["RootCauseAnalysis.Updated", "RootCauseAnalysis.StatusChanged"]
    working.assert_one_command(analyst)
    d.run(
        UpdateRootCauseAnalysis(
            rca=rca,
            status="completed",
            root_cause="Connection leak in the payment client",
            recommendations="Bound the pool; alert on saturation",
        ),
        analyst,
    )
    approved = d.run(UpdateRootCauseAnalysis(rca=rca, status="approved"), executive)

    assert approved.types == ["RootCauseAnalysis.StatusChanged"]
    state = d.get(started.id)
    assert (state.status, state.approved_by) == (RcaStatus.APPROVED, executive)
    assert state.approved_at == approved.events[0].meta.occurred_at
    assert approved.events[0].approved_by == executive
    assert (state.findings, state.root_cause) == (
        "Pool exhausted",
        "Connection leak in the payment client",
    )
    assert attach(d, "rca", rca, analyst).incident_id == incident_id


def test_sop17_post_incident_review_scheduled_and_completed(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    facilitator = d.user(Role.INCIDENT_MANAGER, "Fay")
    incident_id, number = resolved_p1(d, manager)
    d.run(ChangeIncidentStatus(incident=number, status="closed"), manager)

    scheduled = d.run(
        SchedulePostIncidentReview(incident=number, scheduled_date=DUE, facilitator=facilitator),
        manager,
    )
    assert scheduled.types == ["PostIncidentReview.Scheduled"]
    assert scheduled.outcome.number is None  # PIRs have no number
    pir = scheduled.id
    assert d.get(pir).status == PirStatus.SCHEDULED

    completed = d.run(
        UpdatePostIncidentReview(
            pir=pir,
            status="completed",
            review_notes="Walked the timeline",
            lessons_learned="Alert on pool saturation",
            action_items="CHG for pool bounds",
        ),
        facilitator,
    )
    assert completed.types == ["PostIncidentReview.Updated", "PostIncidentReview.StatusChanged"]
    state = d.get(pir)
    assert (state.status, state.lessons_learned) == (
        PirStatus.COMPLETED,
        "Alert on pool saturation",
    )
    assert attach(d, "pir", str(pir), manager).incident_id == incident_id


def test_sop18_report_generated_as_draft_and_carried_to_archived(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    incident_id, number = resolved_p1(d, manager)

    generated = d.run(
        GenerateIncidentReport(
            incident=number,
            report_type="client_impact",
            report_title="Impact on Acme",
            report_content="Checkout down for 40 minutes.",
        ),
        manager,
    )
    assert generated.types == ["Counter.NumberIssued", "IncidentReport.Generated"]
    report = str(generated.outcome.number)
    assert d.get(generated.id).status == ReportStatus.DRAFT

    edited = d.run(UpdateIncidentReport(report=report, report_content="Down 42 minutes."), manager)
    assert edited.types == ["IncidentReport.Updated"]
    for status in ("completed", "approved", "archived"):
        moved = d.run(UpdateIncidentReport(report=report, status=status), manager)
        assert moved.types == ["IncidentReport.StatusChanged"]
    state = d.get(generated.id)
    assert (state.status, state.report_content) == (ReportStatus.ARCHIVED, "Down 42 minutes.")
    assert attach(d, "report", report, manager).incident_id == incident_id


def test_sop2_2_closing_draft_is_an_incident_report_like_any_other(driver: Driver) -> None:
    d = driver
    manager = d.user(Role.INCIDENT_MANAGER, "Mia")
    _incident_id, number = resolved_p1(d, manager)
    closed = d.run(ChangeIncidentStatus(incident=number, status="closed"), manager)
    draft = closed.outcome.extra["report_number"]

    d.run(UpdateIncidentReport(report=draft, status="completed"), manager)

    report = d.get(UUID(closed.outcome.extra["report_id"]))
    assert isinstance(report, IncidentReport)
    assert (report.status, report.report_type) == (
        ReportStatus.COMPLETED,
        ReportType.POST_INCIDENT_REVIEW,
    )
