"""Business calendars: a time zone, working hours per weekday and holidays. A client whose SLA
agreement has `business_hours` coverage and who has a calendar is measured in working minutes of
that calendar against the business-hours targets. A calendar never changes once recorded (a new
calendar is recorded and given to the client instead), so earlier results never move."""

from __future__ import annotations

import re
from datetime import date
from itertools import pairwise
from typing import Annotated, Self
from uuid import UUID

from eventsourcing.domain import event
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from domain.base import Aggregate, Command, Meta
from domain.sla import Day
from domain.text import Name
from domain.user import ADMIN, Timezone

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PERIOD = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")


def minutes_of(period: str) -> tuple[int, int]:
    """A period "HH:MM-HH:MM" as (start, end) minutes of the day (end up to 1440)."""
    match = PERIOD.match(period)
    if match is None:
        raise ValueError(f"{period!r} is not a period like 09:00-17:30")
    h1, m1, h2, m2, h24, _ = match.groups()
    end = 1440 if h24 else int(h2) * 60 + int(m2)
    return int(h1) * 60 + int(m1), end


def _ordered(period: str) -> str:
    start, end = minutes_of(period)
    if start >= end:
        raise ValueError("a period must end after it starts")
    return period


Period = Annotated[
    str,
    StringConstraints(pattern=PERIOD.pattern, max_length=11),
    AfterValidator(_ordered),
    Field(description='Working time on that day, local: "09:00-17:30" (end "24:00" allowed).'),
]
Periods = Annotated[list[Period], Field(default_factory=list, max_length=8)]


class WorkingWeek(BaseModel):
    """Working periods per weekday in the calendar's time zone; a day with none is not worked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    monday: Periods
    tuesday: Periods
    wednesday: Periods
    thursday: Periods
    friday: Periods
    saturday: Periods
    sunday: Periods

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        total = 0
        for name in WEEKDAYS:
            spans = sorted(minutes_of(p) for p in getattr(self, name))
            for (_, end), (start, _) in pairwise(spans):
                if start < end:
                    raise ValueError(f"the periods of {name} overlap")
            total += len(spans)
        if total == 0:
            raise ValueError("a calendar needs at least one working period in the week")
        return self

    def day(self, weekday: int) -> list[tuple[int, int]]:
        """(start, end) minutes of each period on a weekday (0 = Monday), in order."""
        return sorted(minutes_of(p) for p in getattr(self, WEEKDAYS[weekday]))


def _unique_days(days: list[date]) -> list[date]:
    if len(set(days)) != len(days):
        raise ValueError("a holiday is listed twice")
    return sorted(days)


class RecordBusinessCalendar(Command):
    """Record a business calendar (time zone, working hours per weekday, holidays)."""

    roles = ADMIN
    name: Name
    time_zone: Timezone
    working_hours: WorkingWeek
    holidays: Annotated[
        list[Day],
        Field(default_factory=list, max_length=2000, description="Local dates not worked."),
        AfterValidator(_unique_days),
    ]


class AssignBusinessCalendar(Command):
    """Give a client a business calendar (null: none; its clocks then run round the clock)."""

    roles = ADMIN
    client: UUID
    business_calendar: UUID | None


class BusinessCalendar(Aggregate):
    class Recorded(Aggregate.Created):
        name: str
        time_zone: str
        working_hours: WorkingWeek
        holidays: list[date]

    @event(Recorded)
    def __init__(
        self,
        meta: Meta,
        name: str,
        time_zone: str,
        working_hours: WorkingWeek,
        holidays: list[date],
    ) -> None:
        self.name = name
        self.time_zone = time_zone
        self.working_hours = working_hours
        self.holidays = holidays
