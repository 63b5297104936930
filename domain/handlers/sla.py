"""Handlers for SLA agreements, SLA policies and business calendars (SPEC 4.1 and 8)."""

from __future__ import annotations

from uuid import UUID

from domain.base import Aggregate, changes_between
from domain.business_calendar import (
    AssignBusinessCalendar,
    BusinessCalendar,
    RecordBusinessCalendar,
)
from domain.client import Client
from domain.context import Context, Decision, entry, outcome
from domain.errors import RuleViolation
from domain.sla import (
    ClientSLA,
    RecordSLAAgreement,
    SLAAgreement,
    UpdateSLAAgreement,
    require_dates,
)
from domain.sla_policy import (
    BEGINNING,
    BUSINESS_HOURS,
    DEFAULT_POLICY_NAME,
    ROUND_THE_CLOCK,
    RecordDefaultSLAPolicy,
    RecordSLAPolicy,
    SLAPolicy,
)


def _client_sla(ctx: Context, client_id: UUID) -> ClientSLA:
    """The client's SLA record, started now if it has none (saved in the same append)."""
    found = ctx.load(ClientSLA.create_id(client_id=client_id))
    if isinstance(found, ClientSLA):
        return found
    return ClientSLA(meta=ctx.meta, client_id=client_id)


def record_agreement(cmd: RecordSLAAgreement, ctx: Context) -> Decision:
    client = ctx.find(Client, cmd.client, "client")
    require_dates(cmd.effective_date, cmd.expiration_date)
    agreement = SLAAgreement(
        meta=ctx.meta,
        client_id=client.id,
        tier=cmd.tier,
        support_coverage=cmd.support_coverage,
        effective_date=cmd.effective_date,
        expiration_date=cmd.expiration_date,
        status=cmd.status,
    )
    saved: list[Aggregate] = [agreement]
    if agreement.is_active:
        index = _client_sla(ctx, client.id)
        index.activate(ctx.meta, agreement.id)
        saved.append(index)
    return outcome(agreement), saved


def update_agreement(cmd: UpdateSLAAgreement, ctx: Context) -> Decision:
    agreement = ctx.find(SLAAgreement, cmd.agreement, "sla_agreement")
    ctx.address(agreement, cmd.expected_version)
    fields = cmd.model_dump(
        exclude={"agreement", "occurred_at", "expected_version"}, exclude_none=True
    )
    require_dates(
        fields.get("effective_date", agreement.effective_date),
        fields.get("expiration_date", agreement.expiration_date),
    )
    was_active = agreement.is_active
    agreement.update(ctx.meta, changes_between(agreement, fields))
    saved: list[Aggregate] = [agreement]
    if agreement.is_active != was_active:
        index = _client_sla(ctx, agreement.client_id)
        if agreement.is_active:
            index.activate(ctx.meta, agreement.id)
        else:
            index.deactivate(ctx.meta, agreement.id)
        saved.append(index)
    return outcome(agreement), saved


def record_policy(cmd: RecordSLAPolicy, ctx: Context) -> Decision:
    effective_from = cmd.effective_from or ctx.now
    if effective_from < ctx.now:
        raise RuleViolation(
            "sla_policy.effective_in_past",
            f"effective_from {effective_from.isoformat()} is in the past (now "
            f"{ctx.now.isoformat()}): a policy applies only to incidents detected after it "
            "takes effect, so it never rewrites an earlier result.",
        )
    cmd.round_the_clock.require_response_first("round_the_clock")
    cmd.business_hours.require_response_first("business_hours")
    policy = SLAPolicy(
        meta=ctx.meta,
        name=cmd.name,
        effective_from=effective_from,
        round_the_clock=cmd.round_the_clock,
        business_hours=cmd.business_hours,
    )
    return outcome(policy), [policy]


def record_default_policy(cmd: RecordDefaultSLAPolicy, ctx: Context) -> Decision:
    if ctx.load(SLAPolicy.create_id(default=True)) is not None:
        raise RuleViolation("sla_policy.default_exists", "The default SLA policy is recorded.")
    policy = SLAPolicy(
        meta=ctx.meta,
        name=DEFAULT_POLICY_NAME,
        effective_from=BEGINNING,
        round_the_clock=ROUND_THE_CLOCK,
        business_hours=BUSINESS_HOURS,
        default=True,
    )
    return outcome(policy), [policy]


def record_calendar(cmd: RecordBusinessCalendar, ctx: Context) -> Decision:
    calendar = BusinessCalendar(
        meta=ctx.meta,
        name=cmd.name,
        time_zone=cmd.time_zone,
        working_hours=cmd.working_hours,
        holidays=cmd.holidays,
    )
    return outcome(calendar), [calendar]


def assign_calendar(cmd: AssignBusinessCalendar, ctx: Context) -> Decision:
    client = ctx.find(Client, cmd.client, "client")
    if cmd.business_calendar is not None:
        ctx.find(BusinessCalendar, cmd.business_calendar, "business_calendar")
    index = _client_sla(ctx, client.id)
    index.assign_calendar(ctx.meta, cmd.business_calendar)
    return outcome(index, client_id=str(client.id)), [index]


HANDLERS = dict(
    [
        entry(RecordSLAAgreement, record_agreement),
        entry(UpdateSLAAgreement, update_agreement),
        entry(RecordSLAPolicy, record_policy),
        entry(RecordDefaultSLAPolicy, record_default_policy),
        entry(RecordBusinessCalendar, record_calendar),
        entry(AssignBusinessCalendar, assign_calendar),
    ]
)
