"""SOP 2.1 severity assessment (SPEC section 7): each rule fires, the first rule that holds wins,
missing inputs count as false, and the result always matches a plain re-statement of the rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.severity import Severity, SeverityAssessment, assess_severity

BOOLEAN_INPUTS = (
    "complete_outage",
    "no_workaround",
    "enterprise_impact",
    "regulatory_implications",
    "high_priority_customer",
    "recurrent_incident",
    "major_degradation",
    "workaround_available",
    "multiple_departments",
    "sla_breach_risk",
    "single_department",
    "moderate_degradation",
    "minimal_workaround",
)

# (rule number, severity, inputs that make this rule - and no earlier one - hold)
EACH_RULE: list[tuple[int, Severity, dict[str, Any]]] = [
    (1, Severity.P1, {"complete_outage": True, "no_workaround": True}),
    (2, Severity.P1, {"enterprise_impact": True}),
    (2, Severity.P1, {"affected_parties_count": 5}),
    (2, Severity.P1, {"affected_parties_count": 1_000}),
    (3, Severity.P1, {"regulatory_implications": True}),
    (4, Severity.P1, {"high_priority_customer": True}),
    (4, Severity.P1, {"recurrent_incident": True}),
    (5, Severity.P2, {"major_degradation": True, "workaround_available": True}),
    (6, Severity.P2, {"multiple_departments": True}),
    (7, Severity.P2, {"sla_breach_risk": True}),
    (8, Severity.P3, {"single_department": True}),
    (9, Severity.P3, {"moderate_degradation": True, "minimal_workaround": True}),
    (10, Severity.P4, {}),
    (10, Severity.P4, {"affected_parties_count": 4}),
]


@pytest.mark.parametrize(
    ("rule", "severity", "inputs"),
    EACH_RULE,
    ids=[f"rule{rule}-{'-'.join(inputs) or 'nothing'}" for rule, _, inputs in EACH_RULE],
)
def test_assess_severity_fires_rule_when_only_its_inputs_hold(
    rule: int, severity: Severity, inputs: dict[str, Any]
) -> None:
    decision = assess_severity(SeverityAssessment(**inputs))

    assert (decision.rule, decision.severity) == (rule, severity)
    assert decision.reason


# (expected rule, expected severity, inputs where several rules hold)
PRECEDENCE: list[tuple[int, Severity, dict[str, Any]]] = [
    # every input true: rule 1 wins
    (1, Severity.P1, dict.fromkeys(BOOLEAN_INPUTS, True) | {"affected_parties_count": 9}),
    # rule 1 beats rule 2 (both P1, but the rule number is recorded)
    (1, Severity.P1, {"complete_outage": True, "no_workaround": True, "enterprise_impact": True}),
    (2, Severity.P1, {"affected_parties_count": 5, "regulatory_implications": True}),
    (3, Severity.P1, {"regulatory_implications": True, "recurrent_incident": True}),
    # a P1 rule beats every P2/P3 rule
    (
        4,
        Severity.P1,
        {
            "high_priority_customer": True,
            "major_degradation": True,
            "workaround_available": True,
            "multiple_departments": True,
            "single_department": True,
        },
    ),
    (
        5,
        Severity.P2,
        {"major_degradation": True, "workaround_available": True, "sla_breach_risk": True},
    ),
    (6, Severity.P2, {"multiple_departments": True, "sla_breach_risk": True}),
    # the rule-6 and rule-8 flags contradict each other; the earlier rule still wins
    (6, Severity.P2, {"multiple_departments": True, "single_department": True}),
    (7, Severity.P2, {"sla_breach_risk": True, "single_department": True}),
    (
        8,
        Severity.P3,
        {"single_department": True, "moderate_degradation": True, "minimal_workaround": True},
    ),
]


@pytest.mark.parametrize(
    ("rule", "severity", "inputs"),
    PRECEDENCE,
    ids=[f"rule{rule}-wins-{i}" for i, (rule, _, _) in enumerate(PRECEDENCE)],
)
def test_assess_severity_picks_first_rule_when_several_hold(
    rule: int, severity: Severity, inputs: dict[str, Any]
) -> None:
    decision = assess_severity(SeverityAssessment(**inputs))

    assert (decision.rule, decision.severity) == (rule, severity)


# A conjunctive rule whose other half is missing must not fire: the missing input is false.
HALF_GIVEN = [
    {"complete_outage": True},
    {"no_workaround": True},
    {"major_degradation": True},
    {"workaround_available": True},
    {"moderate_degradation": True},
    {"minimal_workaround": True},
    {"complete_outage": True, "minimal_workaround": True},
]


@pytest.mark.parametrize("inputs", HALF_GIVEN, ids=["-".join(i) for i in HALF_GIVEN])
def test_assess_severity_treats_missing_input_as_false_when_rule_needs_two(
    inputs: dict[str, Any],
) -> None:
    decision = assess_severity(SeverityAssessment.model_validate(inputs))

    assert (decision.rule, decision.severity) == (10, Severity.P4)


def test_assess_severity_falls_to_p4_when_assessment_is_empty() -> None:
    decision = assess_severity(SeverityAssessment.model_validate({}))

    assert (decision.rule, decision.severity) == (10, Severity.P4)


def _spec_section_7(inputs: dict[str, Any]) -> tuple[int, Severity]:
    """SPEC section 7, restated literally; anything not given is false (or zero)."""

    def on(name: str) -> bool:
        return bool(inputs.get(name, False))

    if on("complete_outage") and on("no_workaround"):
        return 1, Severity.P1
    if on("enterprise_impact") or inputs.get("affected_parties_count", 0) >= 5:
        return 2, Severity.P1
    if on("regulatory_implications"):
        return 3, Severity.P1
    if on("high_priority_customer") or on("recurrent_incident"):
        return 4, Severity.P1
    if on("major_degradation") and on("workaround_available"):
        return 5, Severity.P2
    if on("multiple_departments"):
        return 6, Severity.P2
    if on("sla_breach_risk"):
        return 7, Severity.P2
    if on("single_department"):
        return 8, Severity.P3
    if on("moderate_degradation") and on("minimal_workaround"):
        return 9, Severity.P3
    return 10, Severity.P4


# Some inputs left out entirely (missing), the rest drawn; counts cluster around the 5 boundary.
assessment_inputs = st.fixed_dictionaries(
    {},
    optional={
        **{name: st.booleans() for name in BOOLEAN_INPUTS},
        "affected_parties_count": st.one_of(
            st.integers(min_value=0, max_value=10), st.integers(min_value=0, max_value=10**6)
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(inputs=assessment_inputs)
def test_assess_severity_matches_spec_restatement_for_any_inputs(inputs: dict[str, Any]) -> None:
    decision = assess_severity(SeverityAssessment.model_validate(inputs))

    assert (decision.rule, decision.severity) == _spec_section_7(inputs)
