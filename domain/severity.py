"""SOP 2.1 severity assessment (`determine_incident_severity`): the first rule that holds wins."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class SeverityAssessment(BaseModel):
    """The SOP 2.1 inputs; a missing input counts as false."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    complete_outage: bool = False
    no_workaround: bool = False
    enterprise_impact: bool = False
    affected_parties_count: int = Field(default=0, ge=0)
    regulatory_implications: bool = False
    high_priority_customer: bool = False
    recurrent_incident: bool = False
    major_degradation: bool = False
    workaround_available: bool = False
    multiple_departments: bool = False
    sla_breach_risk: bool = False
    single_department: bool = False
    moderate_degradation: bool = False
    minimal_workaround: bool = False


class SeverityDecision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    severity: Severity
    rule: int = Field(description="Number (1-10) of the SOP 2.1 rule that fired.")
    reason: str


def assess_severity(a: SeverityAssessment) -> SeverityDecision:
    rules: list[tuple[bool, Severity, str]] = [
        (a.complete_outage and a.no_workaround, Severity.P1, "complete outage with no workaround"),
        (
            a.enterprise_impact or a.affected_parties_count >= 5,
            Severity.P1,
            "enterprise-wide impact or five or more affected parties",
        ),
        (a.regulatory_implications, Severity.P1, "regulatory, safety or financial implications"),
        (
            a.high_priority_customer or a.recurrent_incident,
            Severity.P1,
            "high-priority customer or recurrent incident",
        ),
        (
            a.major_degradation and a.workaround_available,
            Severity.P2,
            "major degradation with a workaround",
        ),
        (a.multiple_departments, Severity.P2, "multiple departments affected"),
        (a.sla_breach_risk, Severity.P2, "risk of breaching a high-priority SLA"),
        (a.single_department, Severity.P3, "impact localised to a single department"),
        (
            a.moderate_degradation and a.minimal_workaround,
            Severity.P3,
            "moderate degradation with a minimal workaround",
        ),
    ]
    for number, (holds, severity, reason) in enumerate(rules, start=1):
        if holds:
            return SeverityDecision(severity=severity, rule=number, reason=reason)
    return SeverityDecision(severity=Severity.P4, rule=10, reason="no higher rule applies")
