"""Response models of the analysts' reads: SLA breaches (and the reference tool's result), one
incident's clocks explained, the SLA policies, and MTTA / MTTR with provenance."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

ClockStatus = Literal["met", "breached", "running", "at_risk"]


class SLAClockState(BaseModel):
    status: ClockStatus = Field(description="As of `now`: met, breached, running or at_risk.")
    target_minutes: int
    elapsed_minutes: float = Field(
        description="Minutes used by `now` (or when it stopped): working minutes on a "
        "business-hours clock."
    )
    used_percent: float
    stopped_at: datetime | None = Field(description="When it stopped, if by `now`.")
    at_risk_at: datetime | None = Field(description="When 75 % of the target is used.")
    due_at: datetime | None = Field(description="The last instant the target holds.")


class SLAPair(BaseModel):
    """One (incident, affected client) pair and its two clocks."""

    incident_id: UUID
    number: str
    client_id: UUID
    client_name: str | None
    status: str = Field(description="The incident's current status.")
    severity: str
    category: str
    assigned_to: UUID | None
    detection_time: datetime
    reopen_count: int
    tier: str = Field(description="The client's tier at detection.")
    support_coverage: str | None
    agreement_id: UUID
    policy_id: UUID | None
    business_calendar_id: UUID | None
    clock: Literal["round_the_clock", "business_hours"]
    sla_status: ClockStatus = Field(description="The worse of the two clocks' statuses.")
    response: SLAClockState
    resolution: SLAClockState


class SLASummary(BaseModel):
    met: int
    breached: int
    running: int
    at_risk: int


class SLABreachPage(BaseModel):
    mode: Literal["default"]
    now: datetime
    summary: SLASummary = Field(description="Pairs per status under the filters (all statuses).")
    items: list[SLAPair]
    next_cursor: str | None


class ReferenceBreach(BaseModel):
    incident_id: UUID
    number: str
    client_id: UUID
    client_name: str | None
    sla_tier: str
    sla_id: UUID
    status: str
    severity: str
    detection_time: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_sla_breach: bool
    expected_response_minutes: int | None
    actual_response_minutes: float | None
    response_breach_by_minutes: float | None
    resolution_sla_breach: bool
    expected_resolution_minutes: int | None
    actual_resolution_minutes: float | None
    resolution_breach_by_minutes: float | None


class SLAReferenceResult(BaseModel):
    """What the SOP's `fetch_sla_breach_incidents` returned."""

    mode: Literal["reference"]
    success: bool
    count: int
    breach_incidents: list[ReferenceBreach]


class SLAPolicyState(BaseModel):
    id: UUID
    name: str
    effective_from: datetime
    recorded_at: datetime
    position: int
    default: bool
    in_force_now: bool
    round_the_clock: dict[str, dict[str, dict[str, int]]]
    business_hours: dict[str, dict[str, dict[str, int]]]


class SLAPolicyList(BaseModel):
    items: list[SLAPolicyState]


# --- one incident's clocks explained ------------------------------------------------------------


class Counted(BaseModel):
    start: datetime
    end: datetime
    minutes: float


class ClockExplained(SLAClockState):
    started_at: datetime
    stopped_by: str | None = Field(description="acknowledged, resolved or closed (or null).")
    counted: list[Counted] = Field(
        description="The periods counted (working periods on a business-hours clock), at most 200."
    )
    counted_truncated: bool


class AffectedThrough(BaseModel):
    configuration_item_id: UUID
    assigned_at: datetime
    position: int


class PairExplained(BaseModel):
    client_id: UUID
    client_name: str | None
    affected_through: list[AffectedThrough]
    agreement: dict[str, Any] | None
    policy: dict[str, Any] | None
    business_calendar: dict[str, Any] | None
    clock: Literal["round_the_clock", "business_hours"]
    sla_status: ClockStatus | None
    response: ClockExplained | None
    resolution: ClockExplained | None
    steps: list[str] = Field(description="How each figure follows from the facts, in order.")


class IncidentStep(BaseModel):
    version: int
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    effect: str


class SLAExplanation(BaseModel):
    incident_id: UUID
    number: str
    now: datetime
    detection_time: datetime
    severity: str
    status: str
    history: list[IncidentStep] = Field(description="The incident's events the clocks read.")
    clients: list[PairExplained]


# --- MTTA / MTTR --------------------------------------------------------------------------------


class MinutesOf(BaseModel):
    incident_id: UUID
    number: str
    minutes: float


class Stat(BaseModel):
    count: int
    mean: float | None
    median: float | None
    p90: float | None
    provenance: list[MinutesOf] | None = Field(description="The incidents behind the figure.")


class ReopenedOf(BaseModel):
    incident_id: UUID
    number: str
    reopen_count: int


class ReopenRate(BaseModel):
    rate: float | None = Field(description="Percent of the incidents resolved at least once.")
    reopened: int
    resolved: int
    provenance: list[ReopenedOf] | None


class PairOutcome(BaseModel):
    incident_id: UUID
    number: str
    client_id: UUID
    tier: str | None
    response_status: ClockStatus
    resolution_status: ClockStatus
    compliant: bool


class Compliance(BaseModel):
    percent: float | None
    compliant: int
    decided: int = Field(description="Pairs whose outcome is known (a breach, or both met).")
    provenance: list[PairOutcome] | None


class MetricGroup(BaseModel):
    key: dict[str, str | None]
    incidents: int
    mtta: Stat
    mttr: Stat
    reopen_rate: ReopenRate
    sla_compliance: Compliance


class MetricsReport(BaseModel):
    now: datetime
    detected_from: str | None
    detected_to: str | None
    group_by: list[str]
    overall: MetricGroup
    groups: list[MetricGroup]
