"""Five-field cron expressions (`minute hour day month weekday`) evaluated in the site's time zone.

Why our own: a maintenance plan needs only the classic Vixie-cron grammar, evaluated in a named
zone with a clear answer for the two DST edge cases, and a parser that gives a building engineer a
message naming the field that is wrong. That is a hundred lines, not a dependency.

Grammar per field: `*`, `N`, `A-B`, `*/S`, `A-B/S`, `N/S` (from N to the end), lists with `,`;
months `jan`..`dec`, weekdays `sun`..`sat` (0 and 7 are both Sunday). As in Vixie cron, when both the
day of month and the weekday are restricted, a day matching either one fires.

DST: times are matched on the local wall clock. A wall time skipped by a spring-forward transition
fires at the same instant an hour later (zoneinfo's fold=0 reading); a wall time that happens twice
on a fall-back night fires once, the first time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("weekday", 0, 7, _DAYS),
)

SEARCH_DAYS = 366 * 8
"""How far ahead a next fire time is looked for (29 February on a Monday recurs within 28 years,
but no plan needs that; eight years covers every leap-day schedule)."""


class CronError(ValueError):
    """A cron expression that cannot be parsed; the message names the field."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron expression. Use `Cron.parse(text)` and `next_after(instant, zone)`."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday .. 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                f"cron needs five fields (minute hour day month weekday), got {len(parts)}"
            )
        sets = [
            _field(part, name, low, high, names)
            for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            text=" ".join(parts),
            minutes=sets[0],
            hours=sets[1],
            days=sets[2],
            months=sets[3],
            weekdays=weekdays,
            days_restricted=parts[2] != "*",
            weekdays_restricted=parts[4] != "*",
        )

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def next_after(self, instant: datetime, zone: ZoneInfo) -> datetime:
        """The first fire time strictly after `instant` (aware), as an aware datetime in `zone`.

        Raises:
            CronError: the expression never fires (e.g. `0 0 31 2 *`).
        """
        after = instant.astimezone(UTC)
        day = instant.astimezone(zone).date()
        times = sorted(time(h, m) for h in self.hours for m in self.minutes)
        for _ in range(SEARCH_DAYS):
            if self.matches_day(day):
                for t in times:
                    # compared in UTC: aware datetimes sharing a tzinfo compare wall times only
                    candidate = datetime.combine(day, t, tzinfo=zone).astimezone(UTC)
                    if candidate > after:
                        return candidate.astimezone(zone)
            day += timedelta(days=1)
        raise CronError(f"cron {self.text!r} never fires")


def _field(part: str, name: str, low: int, high: int, names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        if not item:
            raise CronError(f"cron {name}: empty list item in {part!r}")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"cron {name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise CronError(f"cron {name}: range {body!r} runs backwards")
        else:
            first = _value(body, name, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int, names: list[str]) -> int:
    lowered = text.lower()
    if names and lowered in names:
        return names.index(lowered) + (1 if name == "month" else 0)
    if not text.isdigit():
        hint = f" or a name ({names[0]}, {names[1]}, …)" if names else ""
        raise CronError(f"cron {name}: {text!r} is not a number{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"cron {name}: {value} is outside {low}..{high}")
    return value
