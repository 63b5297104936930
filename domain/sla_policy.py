"""SLA policies (SPEC 8) as recorded facts: each policy is a target table (minutes to respond and
to resolve, per tier and severity) for round-the-clock clocks and one for business-hours clocks,
in force from `effective_from`. A policy never takes effect in the past, so a new one never
rewrites an earlier result; the SPEC 8 table is recorded as the default at the ledger's first
start, in force from the beginning of time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.base import Aggregate, Command, Meta, Moment, stable_id
from domain.errors import require
from domain.severity import Severity
from domain.sla import Tier
from domain.text import Name
from domain.user import ADMIN

MAX_MINUTES = 5_256_000
"""Ten years: no target is longer."""
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
"""When the default policy takes effect: before any incident the ledger can hold."""
DEFAULT_POLICY_NAME = "SPEC 8 default"


class Target(BaseModel):
    """Minutes from detection to the first acknowledgment, and to the resolution."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    response: int = Field(ge=1, le=MAX_MINUTES)
    resolution: int = Field(ge=1, le=MAX_MINUTES)


class SeverityTargets(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    P1: Target
    P2: Target
    P3: Target
    P4: Target


class TargetTable(BaseModel):
    """Targets for every tier and severity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    premium: SeverityTargets
    standard: SeverityTargets
    basic: SeverityTargets

    def target(self, tier: Tier | str, severity: Severity | str) -> Target:
        found: Target = getattr(getattr(self, Tier(tier).value), Severity(severity).value)
        return found

    def require_response_first(self, name: str) -> None:
        """Responding cannot be allowed longer than resolving."""
        for tier in Tier:
            for severity in Severity:
                target = self.target(tier, severity)
                require(
                    target.response <= target.resolution,
                    "sla_policy.response_after_resolution",
                    f"{name} {tier.value} {severity.value}: the response target "
                    f"({target.response}) exceeds the resolution target ({target.resolution}).",
                )


def table(rows: dict[str, list[tuple[int, int]]]) -> TargetTable:
    """A target table from {tier: [(response, resolution) for P1..P4]}."""
    return TargetTable.model_validate(
        {
            tier: {f"P{n}": {"response": r, "resolution": s} for n, (r, s) in enumerate(row, 1)}
            for tier, row in rows.items()
        }
    )


ROUND_THE_CLOCK = table(
    {
        "premium": [(30, 240), (120, 1440), (480, 4320), (2880, 7680)],
        "standard": [(120, 1440), (480, 2880), (1440, 7200), (4320, 10080)],
        "basic": [(480, 2880), (1440, 7200), (4320, 14400), (10080, 20160)],
    }
)
"""SPEC 8: the round-the-clock targets (those of the SOP's reference tool)."""
BUSINESS_HOURS = table(
    {
        "premium": [(15, 120), (60, 480), (240, 2880), (1440, 7680)],
        "standard": [(60, 480), (240, 1440), (1440, 4320), (2880, 10080)],
        "basic": [(240, 1440), (1440, 4320), (2880, 7200), (7200, 20160)],
    }
)
"""SPEC 8: the business-hours targets (working minutes)."""


class RecordSLAPolicy(Command):
    """Record a new SLA policy; it applies to incidents detected from `effective_from` on."""

    roles = ADMIN
    name: Name
    effective_from: Moment | None = Field(
        default=None,
        description="When it takes effect (default: now); never in the past. Incidents "
        "detected from then on are measured against it.",
    )
    round_the_clock: TargetTable
    business_hours: TargetTable


class RecordDefaultSLAPolicy(Command):
    """The SPEC 8 policy, recorded by the ledger itself at its first start."""

    system = True


class SLAPolicy(Aggregate):
    @staticmethod
    def create_id(default: bool = False, **_: Any) -> UUID:
        return stable_id("sla_policy", "default") if default else Aggregate.create_id()

    class Recorded(Aggregate.Created):
        name: str
        effective_from: AwareDatetime
        round_the_clock: TargetTable
        business_hours: TargetTable
        default: bool = False
        """The ledger's own SPEC 8 policy (one, with a fixed id)."""

    @event(Recorded)
    def __init__(
        self,
        meta: Meta,
        name: str,
        effective_from: datetime,
        round_the_clock: TargetTable,
        business_hours: TargetTable,
        default: bool = False,
    ) -> None:
        self.name = name
        self.default = default
        self.effective_from = effective_from
        self.round_the_clock = round_the_clock
        self.business_hours = business_hours
