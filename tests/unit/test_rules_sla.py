"""Every rule code of SLA agreements, SLA policies and business calendars, refused on the in-memory
ledger with its error type and code and nothing appended; the follow-ups (the client's SLA record)
are saved in the same append as the command's record, or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from domain.base import Command
from domain.business_calendar import AssignBusinessCalendar, RecordBusinessCalendar
from domain.errors import Forbidden, LedgerError, NotFound, RuleViolation
from domain.sla import ClientSLA, RecordSLAAgreement, SLAAgreement, UpdateSLAAgreement
from domain.sla_policy import (
    BUSINESS_HOURS,
    ROUND_THE_CLOCK,
    RecordDefaultSLAPolicy,
    RecordSLAPolicy,
    SLAPolicy,
)
from tests.unit.test_rules import NOW, World, assert_refused, build_world


@pytest.fixture
def world() -> Iterator[World]:
    built = build_world()
    yield built
    built.ledger.close()


def agreement(w: World, status: str = "active", **fields: Any) -> RecordSLAAgreement:
    values: dict[str, Any] = {
        "client": w.client,
        "tier": "premium",
        "support_coverage": "24x7",
        "effective_date": "2025-01-01",
        "status": status,
    }
    return RecordSLAAgreement(**(values | fields))


def calendar() -> RecordBusinessCalendar:
    return RecordBusinessCalendar(
        name="Paris office",
        time_zone="Europe/Paris",
        working_hours={"monday": ["09:00-12:00", "13:00-17:30"], "friday": ["09:00-16:00"]},
        holidays=["2025-05-01"],
    )


def policy(**fields: Any) -> RecordSLAPolicy:
    values = {"name": "2026", "round_the_clock": ROUND_THE_CLOCK, "business_hours": BUSINESS_HOURS}
    return RecordSLAPolicy(**(values | fields))


def recorded(w: World, command: Command) -> UUID:
    return UUID(str(w.ledger.handle(command, w.admin).id))


Case = Callable[[World], tuple[Command, UUID | None]]
CASES: list[Any] = []


def case(code: str, error: type[LedgerError] = RuleViolation, *, how: str = "") -> Any:
    def add(build: Case) -> Case:
        CASES.append(pytest.param(build, code, error, id=f"{code}-{how}" if how else code))
        return build

    return add


@case("sla_agreement.active_exists", how="record")
def _second_active_agreement(w: World) -> tuple[Command, UUID | None]:
    recorded(w, agreement(w))
    return agreement(w, tier="basic"), w.admin


@case("sla_agreement.active_exists", how="update to active")
def _activate_while_another_active(w: World) -> tuple[Command, UUID | None]:
    recorded(w, agreement(w))
    dormant = recorded(w, agreement(w, status="inactive"))
    return UpdateSLAAgreement(agreement=dormant, status="active"), w.admin


@case("sla_agreement.invalid_dates", how="record")
def _expires_before_effective(w: World) -> tuple[Command, UUID | None]:
    return agreement(w, expiration_date="2024-12-31"), w.admin


@case("sla_agreement.invalid_dates", how="update")
def _moved_after_expiry(w: World) -> tuple[Command, UUID | None]:
    made = recorded(w, agreement(w, expiration_date="2025-12-31"))
    return UpdateSLAAgreement(agreement=made, effective_date="2026-01-01"), w.admin


@case("sla_agreement.no_change")
def _update_to_same_values(w: World) -> tuple[Command, UUID | None]:
    made = recorded(w, agreement(w))
    return UpdateSLAAgreement(agreement=made, tier="premium", status="active"), w.admin


@case("sla_agreement.not_found", NotFound)
def _update_unknown_agreement(w: World) -> tuple[Command, UUID | None]:
    return UpdateSLAAgreement(agreement=uuid4(), tier="basic"), w.admin


@case("client.not_found", NotFound, how="agreement")
def _agreement_of_unknown_client(w: World) -> tuple[Command, UUID | None]:
    return agreement(w, client=uuid4()), w.admin


@case("client.not_found", NotFound, how="calendar")
def _calendar_for_unknown_client(w: World) -> tuple[Command, UUID | None]:
    made = recorded(w, calendar())
    return AssignBusinessCalendar(client=uuid4(), business_calendar=made), w.admin


@case("business_calendar.not_found", NotFound)
def _unknown_calendar(w: World) -> tuple[Command, UUID | None]:
    return AssignBusinessCalendar(client=w.client, business_calendar=uuid4()), w.admin


@case("business_calendar.already_assigned", how="same calendar")
def _same_calendar_twice(w: World) -> tuple[Command, UUID | None]:
    made = recorded(w, calendar())
    recorded(w, AssignBusinessCalendar(client=w.client, business_calendar=made))
    return AssignBusinessCalendar(client=w.client, business_calendar=made), w.admin


@case("business_calendar.already_assigned", how="none to remove")
def _remove_missing_calendar(w: World) -> tuple[Command, UUID | None]:
    return AssignBusinessCalendar(client=w.client, business_calendar=None), w.admin


@case("sla_policy.effective_in_past")
def _policy_in_the_past(w: World) -> tuple[Command, UUID | None]:
    return policy(effective_from=NOW - timedelta(seconds=1)), w.admin


@case("sla_policy.response_after_resolution")
def _response_longer_than_resolution(w: World) -> tuple[Command, UUID | None]:
    table = BUSINESS_HOURS.model_dump()
    table["basic"]["P4"] = {"response": 30000, "resolution": 20160}
    return policy(business_hours=table), w.admin


@case("sla_policy.default_exists")
def _default_policy_twice(w: World) -> tuple[Command, UUID | None]:
    w.ledger.handle(RecordDefaultSLAPolicy(), None)
    return RecordDefaultSLAPolicy(), None


@case("role.forbidden", Forbidden, how="agreement by a manager")
def _manager_records_agreement(w: World) -> tuple[Command, UUID | None]:
    return agreement(w), w.manager


@case("role.forbidden", Forbidden, how="policy by an auditor")
def _auditor_records_policy(w: World) -> tuple[Command, UUID | None]:
    return policy(), w.auditor


@pytest.mark.parametrize(("build", "code", "error"), CASES)
def test_sla_command_is_refused_with_its_code_and_appends_nothing(
    world: World, build: Case, code: str, error: type[LedgerError]
) -> None:
    command, actor = build(world)
    assert_refused(world, command, actor, error, code)


# --- follow-ups: one append ---------------------------------------------------------------------


def events_of(w: World, record: UUID) -> list[Any]:
    return list(w.ledger.events.get(record))


def test_active_agreement_claims_client_record_in_same_append(world: World) -> None:
    done = world.ledger.handle(agreement(world), world.admin)

    index = world.ledger.find(ClientSLA, ClientSLA.create_id(client_id=world.client), "x")
    assert index.active_agreement_id == done.id
    commands = {e.meta.command_id for e in events_of(world, done.id)}
    commands |= {e.meta.command_id for e in events_of(world, index.id)}
    assert len(commands) == 1


def test_refused_activation_records_nothing_of_the_agreement(world: World) -> None:
    first = recorded(world, agreement(world))
    dormant = recorded(world, agreement(world, status="inactive"))

    assert_refused(
        world,
        UpdateSLAAgreement(agreement=dormant, status="active", tier="basic"),
        world.admin,
        RuleViolation,
        "sla_agreement.active_exists",
    )

    found = world.ledger.find(SLAAgreement, dormant, "sla_agreement")
    assert (found.status, found.tier, found.version) == ("inactive", "premium", 1)
    assert world.ledger.find(SLAAgreement, first, "sla_agreement").is_active


def test_deactivation_frees_client_for_another_active_agreement(world: World) -> None:
    first = recorded(world, agreement(world))
    world.ledger.handle(UpdateSLAAgreement(agreement=first, status="expired"), world.admin)

    second = recorded(world, agreement(world, tier="basic"))

    index = world.ledger.find(ClientSLA, ClientSLA.create_id(client_id=world.client), "x")
    assert index.active_agreement_id == second
    expired = events_of(world, first)[-1]
    freed = [e for e in events_of(world, index.id) if isinstance(e, ClientSLA.AgreementDeactivated)]
    assert [(e.agreement_id, e.meta.command_id) for e in freed] == [
        (first, expired.meta.command_id)
    ]


def test_calendar_assignment_recorded_on_client_record(world: World) -> None:
    made = recorded(world, calendar())

    world.ledger.handle(
        AssignBusinessCalendar(client=world.client, business_calendar=made), world.admin
    )
    world.ledger.handle(
        AssignBusinessCalendar(client=world.client, business_calendar=None), world.admin
    )

    index = world.ledger.find(ClientSLA, ClientSLA.create_id(client_id=world.client), "x")
    assert index.business_calendar_id is None
    assigned = [
        e for e in events_of(world, index.id) if isinstance(e, ClientSLA.BusinessCalendarAssigned)
    ]
    assert [(e.business_calendar_id, e.previous) for e in assigned] == [(made, None), (None, made)]


def test_default_policy_has_fixed_id_and_spec_8_targets(world: World) -> None:
    done = world.ledger.handle(RecordDefaultSLAPolicy(), None)

    found = world.ledger.find(SLAPolicy, done.id, "sla_policy")
    assert found.id == SLAPolicy.create_id(default=True)
    assert found.default is True
    assert found.effective_from.year == 1970
    assert found.round_the_clock.target("premium", "P1").response == 30
    assert found.business_hours.target("basic", "P4").resolution == 20160


def test_policy_takes_effect_now_when_no_time_given(world: World) -> None:
    done = world.ledger.handle(policy(), world.admin)

    assert world.ledger.find(SLAPolicy, done.id, "sla_policy").effective_from == NOW


# --- malformed input (422 at the boundary) -------------------------------------------------------


@pytest.mark.parametrize(
    "hours",
    [
        {"monday": ["09:00-17:00", "16:00-18:00"]},  # overlapping
        {"monday": ["17:00-09:00"]},  # ends before it starts
        {"monday": ["9:00-17:00"]},  # not HH:MM
        {"monday": ["09:00-24:30"]},
        {},  # no working time at all
    ],
)
def test_calendar_refused_when_working_hours_malformed(hours: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError):
        RecordBusinessCalendar(name="x", time_zone="Europe/Paris", working_hours=hours)


def test_calendar_refused_when_time_zone_unknown_or_holiday_twice() -> None:
    with pytest.raises(ValidationError):
        RecordBusinessCalendar(
            name="x", time_zone="Mars/Olympus", working_hours={"monday": ["09:00-17:00"]}
        )
    with pytest.raises(ValidationError):
        RecordBusinessCalendar(
            name="x",
            time_zone="UTC",
            working_hours={"monday": ["09:00-24:00"]},
            holidays=["2025-01-01", "2025-01-01"],
        )
