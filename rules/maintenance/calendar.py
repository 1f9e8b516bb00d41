"""Calendar arithmetic for plans and service targets, on the site's wall clock (zoneinfo).

Why a module of its own: "every month" and "by the next morning" are wall-clock ideas. A plan due
on the 31st of January is due at the end of February next (the last day, 28 or 29), a service due
"in 15 days" across a DST change is due at local midnight, not 23:00. All of that lives here, pure,
so that tests can check month ends, leap years and DST zones without waiting for them.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_PERIOD = re.compile(r"^(\d+)(d|w|mo|y)$")

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period as written in a plan's `every:` — `15d`, `2w`, `1mo`, `3mo`, `1y`."""

    count: int
    unit: str  # d, w, mo, y

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match(text.strip())
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"not a calendar period: {text!r} (use e.g. 15d, 2w, 1mo, 3mo, 1y)")
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def add_to(self, day: date) -> date:
        """`day` plus this period; months clamp to the month's last day (31 Jan + 1mo = 28/29 Feb)."""
        if self.unit == "d":
            return day + timedelta(days=self.count)
        if self.unit == "w":
            return day + timedelta(weeks=self.count)
        months = self.count * (12 if self.unit == "y" else 1)
        return add_months(day, months)

    @property
    def approx_seconds(self) -> float:
        """Roughly how long the period is (for default lead times, never for due dates)."""
        days = {"d": 1, "w": 7, "mo": 30.44, "y": 365.25}[self.unit]
        return self.count * days * DAY


def add_months(day: date, months: int) -> date:
    """Calendar months later, clamped to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def local_date(instant: float, zone: ZoneInfo) -> date:
    """The site's calendar date at an epoch instant."""
    return datetime.fromtimestamp(instant, zone).date()


def local_midnight(day: date, zone: ZoneInfo) -> float:
    """The epoch instant at which `day` begins on the site's wall clock."""
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


def end_of_day(day: date, zone: ZoneInfo) -> float:
    """The epoch instant at which `day` ends (the next local midnight): a date's deadline."""
    return local_midnight(day + timedelta(days=1), zone)


def wall_minus(instant: float, seconds: float, zone: ZoneInfo) -> float:
    """`instant` minus a duration on the wall clock (3 days before midnight is midnight, DST or not)."""
    local = datetime.fromtimestamp(instant, zone).replace(tzinfo=None)
    earlier = local - timedelta(seconds=seconds)
    return earlier.replace(tzinfo=zone).timestamp()


def month_bounds(month: str, zone: ZoneInfo) -> tuple[float, float]:
    """`2026-11` -> (start, end) epoch instants of that month on the site's wall clock.

    Raises:
        ValueError: not `YYYY-MM`.
    """
    match = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a month: {month!r} (use YYYY-MM, e.g. 2026-11)")
    first = date(int(match.group(1)), int(match.group(2)), 1)
    return local_midnight(first, zone), local_midnight(add_months(first, 1), zone)


def next_morning(created: float, zone: ZoneInfo, morning: time, at_least: float) -> float:
    """ "小事不过夜": the first `morning` (site time) at least `at_least` seconds after `created`.

    A fault reported at 15:00 is due at 08:00 the next day; one reported at 02:00 is due at 08:00
    the day after, because a night shift of six hours is not "by the morning" for a day team.
    """
    day = local_date(created, zone)
    for _ in range(4):
        candidate = datetime.combine(day, morning, tzinfo=zone).astimezone(UTC).timestamp()
        if candidate - created >= at_least:
            return candidate
        day += timedelta(days=1)
    raise AssertionError("unreachable: a morning always comes within four days")


def iso(instant: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with `Z` (seconds precision); None stays None."""
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """ISO 8601 (with `Z` or an offset) to epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
