"""SLA agreements (SPEC 4.1): commands, the agreement aggregate, and the client's SLA record that
keeps "at most one active agreement per client" true under concurrency (it is saved in the same
append as every activation) and records which business calendar the client's clocks use."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.domain import event
from pydantic import AfterValidator, Field

from domain.base import Aggregate, Changes, Command, Meta, RecordCommand, stable_id
from domain.client import SupportCoverage
from domain.errors import require
from domain.user import ADMIN


def _sane_day(day: date) -> date:
    if not 1970 <= day.year <= 2200:
        raise ValueError("must lie between 1970 and 2200")
    return day


Day = Annotated[date, AfterValidator(_sane_day), Field(description="A date, YYYY-MM-DD.")]


class Tier(StrEnum):
    PREMIUM = "premium"
    STANDARD = "standard"
    BASIC = "basic"


class AgreementStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    EXPIRED = "expired"


# --- commands -------------------------------------------------------------------------------------


class RecordSLAAgreement(Command):
    """Record a client's SLA agreement (at most one active agreement per client)."""

    roles = ADMIN
    client: UUID
    tier: Tier
    support_coverage: SupportCoverage
    effective_date: Day
    expiration_date: Day | None = None
    status: AgreementStatus = AgreementStatus.ACTIVE


class UpdateSLAAgreement(RecordCommand):
    """Change an agreement's tier, coverage, dates or status (only the fields given)."""

    roles = ADMIN
    agreement: UUID
    tier: Tier | None = None
    support_coverage: SupportCoverage | None = None
    effective_date: Day | None = None
    expiration_date: Day | None = None
    status: AgreementStatus | None = None


# --- aggregates -----------------------------------------------------------------------------------


def require_dates(effective: date, expiration: date | None) -> None:
    require(
        expiration is None or expiration >= effective,
        "sla_agreement.invalid_dates",
        f"The expiration date {expiration} is before the effective date {effective}.",
    )


class SLAAgreement(Aggregate):
    class Recorded(Aggregate.Created):
        client_id: UUID
        tier: Tier
        support_coverage: SupportCoverage
        effective_date: date
        expiration_date: date | None
        status: AgreementStatus

    @event(Recorded)
    def __init__(
        self,
        meta: Meta,
        client_id: UUID,
        tier: Tier,
        support_coverage: SupportCoverage,
        effective_date: date,
        expiration_date: date | None,
        status: AgreementStatus,
    ) -> None:
        self.client_id = client_id
        self.tier = tier
        self.support_coverage = support_coverage
        self.effective_date = effective_date
        self.expiration_date = expiration_date
        self.status = status

    @property
    def is_active(self) -> bool:
        return self.status == AgreementStatus.ACTIVE

    def update(self, meta: Meta, changes: Changes) -> None:
        require(bool(changes), "sla_agreement.no_change", "The update changes nothing.")
        self._updated(meta, changes)

    class Updated(Aggregate.Event):
        changes: Changes

    @event(Updated)
    def _updated(self, meta: Meta, changes: Changes) -> None:
        self.apply_changes(changes, SLAAgreement.Recorded)


class ClientSLA(Aggregate):
    """One per client: its active agreement (claimed in the same append as each activation, so
    two concurrent activations cannot both commit) and its business calendar."""

    @staticmethod
    def create_id(client_id: UUID, **_: Any) -> UUID:
        return stable_id("client_sla", str(client_id))

    class Started(Aggregate.Created):
        client_id: UUID

    @event(Started)
    def __init__(self, meta: Meta, client_id: UUID) -> None:
        self.client_id = client_id
        self.active_agreement_id: UUID | None = None
        self.business_calendar_id: UUID | None = None

    def activate(self, meta: Meta, agreement_id: UUID) -> None:
        if self.active_agreement_id == agreement_id:
            return
        require(
            self.active_agreement_id is None,
            "sla_agreement.active_exists",
            f"The client already has an active SLA agreement ({self.active_agreement_id}); "
            "make it inactive or expired first.",
            active_agreement=str(self.active_agreement_id),
        )
        self._activated(meta, agreement_id)

    def deactivate(self, meta: Meta, agreement_id: UUID) -> None:
        if self.active_agreement_id == agreement_id:
            self._deactivated(meta, agreement_id)

    def assign_calendar(self, meta: Meta, calendar_id: UUID | None) -> None:
        require(
            calendar_id != self.business_calendar_id,
            "business_calendar.already_assigned",
            "The client already uses that business calendar."
            if calendar_id
            else "The client has no business calendar to remove.",
        )
        self._calendar_assigned(meta, self.client_id, calendar_id, self.business_calendar_id)

    class AgreementActivated(Aggregate.Event):
        agreement_id: UUID

    @event(AgreementActivated)
    def _activated(self, meta: Meta, agreement_id: UUID) -> None:
        self.active_agreement_id = agreement_id

    class AgreementDeactivated(Aggregate.Event):
        agreement_id: UUID

    @event(AgreementDeactivated)
    def _deactivated(self, meta: Meta, agreement_id: UUID) -> None:
        self.active_agreement_id = None

    class BusinessCalendarAssigned(Aggregate.Event):
        client_id: UUID
        business_calendar_id: UUID | None
        previous: UUID | None

    @event(BusinessCalendarAssigned)
    def _calendar_assigned(
        self, meta: Meta, client_id: UUID, business_calendar_id: UUID | None, previous: UUID | None
    ) -> None:
        self.business_calendar_id = business_calendar_id
