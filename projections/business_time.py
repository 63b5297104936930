"""Working time of a business calendar: the working periods of each local day (in the calendar's
time zone, daylight saving included, holidays skipped), the working time between two instants, the
instant a clock reaches a number of working minutes, and the periods a clock counted. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.business_calendar import WEEKDAYS, minutes_of

Span = tuple[datetime, datetime]
ONE_DAY = timedelta(days=1)
SEARCH_DAYS = 366 * 20
"""How far `reach` looks for enough working time (a sparse calendar may never get there)."""


@dataclass(frozen=True)
class Calendar:
    id: UUID | None
    name: str
    time_zone: str
    week: tuple[tuple[tuple[int, int], ...], ...]
    """Per weekday (0 = Monday), its (start, end) minutes of the day, in order."""
    holidays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def of(
        cls,
        id: UUID | None,
        name: str,
        time_zone: str,
        working_hours: Mapping[str, Iterable[str]],
        holidays: Iterable[str | date],
    ) -> Calendar:
        week = tuple(
            tuple(sorted(minutes_of(p) for p in working_hours.get(day, ()))) for day in WEEKDAYS
        )
        days = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in holidays)
        return cls(id, name, time_zone, week, days)

    def describe(self) -> dict[str, Any]:
        def text(minute: int) -> str:
            return f"{minute // 60:02d}:{minute % 60:02d}"

        return {
            "id": str(self.id) if self.id else None,
            "name": self.name,
            "time_zone": self.time_zone,
            "working_hours": {
                day: [f"{text(a)}-{text(b)}" for a, b in self.week[n]]
                for n, day in enumerate(WEEKDAYS)
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    # --- days -------------------------------------------------------------------------------

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(ZoneInfo(self.time_zone)).date()

    def periods(self, day: date) -> tuple[Span, ...]:
        """The day's working periods as UTC instants (none on a holiday)."""
        return _periods(self, day)

    def day_time(self, day: date) -> timedelta:
        return sum((end - start for start, end in self.periods(day)), timedelta())

    def _before(self, day: date) -> timedelta:
        """Working time of the days of `day`'s year before it."""
        return _year_prefix(self, day.year)[day.timetuple().tm_yday - 1]

    def _days(self, first: date, stop: date) -> timedelta:
        """Working time of the whole days from `first` up to (not including) `stop`."""
        if stop <= first:
            return timedelta()
        total = -self._before(first) + self._before(stop)
        for year in range(first.year, stop.year):
            total += _year_prefix(self, year)[-1]
        return total

    # --- clocks -----------------------------------------------------------------------------

    def _overlap(self, day: date, start: datetime, end: datetime) -> timedelta:
        total = timedelta()
        for a, b in self.periods(day):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += hi - lo
        return total

    def working(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two instants (zero if `end` is not after `start`)."""
        if end <= start:
            return timedelta()
        first, last = self.local_day(start), self.local_day(end)
        if first == last:
            return self._overlap(first, start, end)
        return (
            self._overlap(first, start, end)
            + self._days(first + ONE_DAY, last)
            + self._overlap(last, start, end)
        )

    def reach(self, start: datetime, amount: timedelta, *, latest: bool = False) -> datetime | None:
        """The first instant at which the working time since `start` reaches `amount`; with
        `latest`, the last instant at which it still equals it (the start of the next working
        period when `amount` is used up exactly at the end of one). None: not within 20 years."""
        remaining = amount
        day = self.local_day(start)
        found: datetime | None = None
        for _ in range(SEARCH_DAYS):
            for a, b in self.periods(day):
                lo = max(a, start)
                if b <= lo:
                    continue
                if found is not None:  # used up at the end of a period: the next one begins
                    return lo if lo > found else found
                if b - lo >= remaining:
                    found = lo + remaining
                    if not latest or found < b:
                        return found
                else:
                    remaining -= b - lo
            day += ONE_DAY
        return found

    def segments(self, start: datetime, end: datetime, limit: int = 200) -> list[Span]:
        """The working periods counted between two instants (at most `limit`)."""
        spans: list[Span] = []
        if end <= start:
            return spans
        day, last = self.local_day(start), self.local_day(end)
        while day <= last and len(spans) < limit:
            for a, b in self.periods(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo and len(spans) < limit:
                    spans.append((lo, hi))
            day += ONE_DAY
        return spans


@lru_cache(maxsize=65536)
def _periods(calendar: Calendar, day: date) -> tuple[Span, ...]:
    if day in calendar.holidays:
        return ()
    zone = ZoneInfo(calendar.time_zone)
    spans = []
    for a, b in calendar.week[day.weekday()]:
        start = datetime.combine(day, time(a // 60, a % 60), zone)
        end_day, end_minute = (day + ONE_DAY, 0) if b == 1440 else (day, b)
        end = datetime.combine(end_day, time(end_minute // 60, end_minute % 60), zone)
        spans.append((start.astimezone(UTC), end.astimezone(UTC)))
    return tuple(spans)


@lru_cache(maxsize=4096)
def _year_prefix(calendar: Calendar, year: int) -> tuple[timedelta, ...]:
    """Working time of the year's days before each day (and the year's total, last)."""
    day, total = date(year, 1, 1), timedelta()
    prefix = [total]
    while day.year == year:
        total += calendar.day_time(day)
        prefix.append(total)
        day += ONE_DAY
    return tuple(prefix)
