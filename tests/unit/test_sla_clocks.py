"""The SLA clocks' pure parts: working time of a business calendar (time zones, daylight saving,
holidays, the last instant before a breach) and the facts as of detection (clients, agreement,
calendar, policy), hand-computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from domain.sla_policy import BUSINESS_HOURS, ROUND_THE_CLOCK
from projections.business_time import Calendar
from projections.sla_rules import (
    Fact,
    IncidentFacts,
    Policy,
    References,
    agreement_at,
    clients_at,
    derive,
    policy_at,
    status,
    stops,
)

NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = {d: ["09:00-17:00"] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}


def ny(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=NEW_YORK)  # type: ignore[misc]


def calendar(holidays: list[str] | None = None, **hours: list[str]) -> Calendar:
    return Calendar.of(uuid4(), "NY", "America/New_York", hours or WEEKDAYS, holidays or [])


def minutes(span: timedelta) -> float:
    return span.total_seconds() / 60


def test_working_time_skips_weekend_when_it_crosses_daylight_saving_change() -> None:
    # DST starts Sunday 2025-03-09: Friday 16:00 EST → Monday 10:00 EDT is 60 + 60 minutes
    assert minutes(calendar().working(ny(2025, 3, 7, 16), ny(2025, 3, 10, 10))) == 120


def test_working_time_skips_holiday_in_calendar_time_zone() -> None:
    cal = calendar(["2025-07-04"])  # a Friday
    assert minutes(cal.working(ny(2025, 7, 3, 16), ny(2025, 7, 7, 9, 30))) == 90


def test_working_time_zero_when_outside_working_hours() -> None:
    assert minutes(calendar().working(ny(2025, 7, 5, 10), ny(2025, 7, 6, 23))) == 0


def test_working_time_counts_split_days_and_midnight_end() -> None:
    cal = calendar(monday=["08:00-12:00", "13:00-24:00"])
    assert minutes(cal.working(ny(2025, 7, 7, 11), ny(2025, 7, 8, 1))) == 60 + 660


def test_reach_latest_moves_to_next_period_when_target_ends_with_a_day() -> None:
    cal = calendar()
    start = ny(2025, 7, 11, 16)  # Friday, 60 minutes left

    assert cal.reach(start, timedelta(minutes=60)) == ny(2025, 7, 11, 17)
    assert cal.reach(start, timedelta(minutes=60), latest=True) == ny(2025, 7, 14, 9)
    assert cal.reach(start, timedelta(minutes=61), latest=True) == ny(2025, 7, 14, 9, 1)


def test_reach_none_when_calendar_never_works_enough() -> None:
    cal = calendar([f"2025-07-{d:02d}" for d in range(1, 32)], monday=["09:00-09:01"])
    found = cal.reach(ny(2025, 7, 1), timedelta(days=3650))
    assert found is None or found > ny(2040, 1, 1)


def test_working_time_matches_day_by_day_sum_over_years() -> None:
    cal = calendar(["2026-12-25"])
    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2028, 2, 29, 12, tzinfo=UTC)
    by_day, day = timedelta(), cal.local_day(start)
    while day <= cal.local_day(end):
        for a, b in cal.periods(day):
            by_day += max(timedelta(), min(b, end) - max(a, start))
        day += timedelta(days=1)
    assert cal.working(start, end) == by_day


# --- facts as of detection --------------------------------------------------------------------

T0 = datetime(2025, 3, 1, tzinfo=UTC)
DETECTED = datetime(2025, 3, 10, 9, tzinfo=UTC)


def incident(**fields: object) -> IncidentFacts:
    values: dict[str, object] = {
        "id": uuid4(), "number": "INC0000001", "severity": "P1", "category": "network",
        "status": "open", "assigned_to": None, "detection_time": DETECTED,
        "acknowledged_at": None, "resolved_at": None, "closed_at": None, "reopen_count": 0,
    }  # fmt: skip
    return IncidentFacts(**(values | fields))  # type: ignore[arg-type]


def policy(effective: datetime, position: int) -> Policy:
    return Policy(
        uuid4(), f"p{position}", effective, position,
        ROUND_THE_CLOCK.model_dump(), BUSINESS_HOURS.model_dump(),
    )  # fmt: skip


def fields(tier: str, status: str = "active", coverage: str = "24x7", **dates: str) -> dict:  # type: ignore[type-arg]
    return {"tier": tier, "status": status, "support_coverage": coverage,
            "effective_date": dates.get("effective", "2025-01-01"),
            "expiration_date": dates.get("expiration")}  # fmt: skip


def test_clients_at_detection_ignore_later_assignments_and_follow_unassignments() -> None:
    ci, a, b = uuid4(), UUID(int=1), UUID(int=2)
    refs = References(ci_facts={ci: [
        Fact(1, T0, ci, a, True),
        Fact(2, T0 + timedelta(days=2), ci, b, True),
        Fact(3, T0 + timedelta(days=3), ci, b, False),
        Fact(4, DETECTED + timedelta(seconds=1), ci, a, False),
        Fact(5, DETECTED, ci, b, True),  # at detection: counts
    ]})  # fmt: skip

    assert list(clients_at(incident(ci_ids=(ci,)), refs)) == [a, b]


def test_agreement_at_detection_is_active_and_in_force_then() -> None:
    client, first, second = uuid4(), uuid4(), uuid4()
    facts = [
        Fact(1, T0, client, first, fields=fields("basic")),
        Fact(2, DETECTED + timedelta(hours=1), client, first, fields={"status": "inactive"}),
        Fact(3, DETECTED + timedelta(hours=1), client, second, fields=fields("premium")),
        Fact(4, T0, client, uuid4(), fields=fields("standard", effective="2025-03-11")),
        Fact(5, T0, client, uuid4(), fields=fields("standard", expiration="2025-03-09")),
    ]
    refs = References(agreement_facts={client: facts})

    found = agreement_at(client, refs, DETECTED)
    assert found is not None
    assert (found["id"], found["tier"]) == (first, "basic")
    later = agreement_at(client, refs, DETECTED + timedelta(hours=2))
    assert later is not None
    assert later["tier"] == "premium"


def test_policy_at_detection_is_latest_in_force_then() -> None:
    default, june, march = (
        policy(T0.replace(year=1970), 1),
        policy(T0.replace(month=6), 2),
        policy(DETECTED, 3),
    )
    refs = References(policies=[default, june, march])

    assert policy_at(refs, DETECTED - timedelta(seconds=1)) == default
    assert policy_at(refs, DETECTED) == march
    assert policy_at(refs, T0.replace(month=7)) == june


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, (None, None)),
        ({"acknowledged_at": DETECTED + timedelta(minutes=5)}, (5, None)),
        (
            {"status": "resolved", "resolved_at": DETECTED + timedelta(minutes=50)},
            (50, 50),  # no acknowledgment: responded when resolved
        ),
        (
            {
                "status": "in_progress",
                "resolved_at": DETECTED + timedelta(minutes=50),
                "acknowledged_at": DETECTED + timedelta(minutes=5),
                "reopen_count": 1,
            },
            (5, None),  # reopened: the resolution clock runs again
        ),
        ({"status": "closed", "closed_at": DETECTED + timedelta(minutes=70)}, (70, 70)),
    ],
    ids=["open", "acknowledged", "resolved-unacknowledged", "reopened", "closed-legacy"],
)
def test_stops_follow_status(facts: dict[str, object], expected: tuple[int | None, ...]) -> None:
    found = stops(incident(**facts))
    assert tuple(None if s is None else minutes(s - DETECTED) for s in found) == expected


def test_derive_uses_business_hours_targets_only_with_calendar_and_coverage() -> None:
    ci, with_cal, without = uuid4(), UUID(int=1), UUID(int=2)
    cal = Calendar.of(uuid4(), "UTC", "UTC", WEEKDAYS, [])
    hours_only = fields("premium", coverage="business_hours")
    refs = References(
        ci_facts={ci: [Fact(1, T0, ci, with_cal), Fact(2, T0, ci, without)]},
        agreement_facts={
            with_cal: [Fact(3, T0, with_cal, uuid4(), fields=hours_only)],
            without: [Fact(4, T0, without, uuid4(), fields=hours_only)],
        },
        calendar_facts={with_cal: [Fact(5, T0, with_cal, cal.id)]},
        calendars={cal.id: cal},  # type: ignore[dict-item]
        policies=[policy(T0.replace(year=1970), 1)],
    )  # fmt: skip
    # Monday 2025-03-10 09:00 UTC; acknowledged Monday 16:30
    pairs = derive(incident(ci_ids=(ci,), acknowledged_at=DETECTED + timedelta(hours=7.5)), refs)

    by_client = {p.client_id: p for p in pairs}
    hours, clock = by_client[with_cal], by_client[without]
    assert (hours.kind, hours.response.target, hours.response.minutes) == (  # type: ignore[union-attr]
        "business_hours", 15, 450.0
    )  # fmt: skip
    assert (clock.kind, clock.response.target) == ("round_the_clock", 30)  # type: ignore[union-attr]
    assert status(hours.response, DETECTED + timedelta(days=1)) == "breached"  # type: ignore[arg-type]
