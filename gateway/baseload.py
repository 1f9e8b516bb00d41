"""Night baseload against the four weeks before (PRODUCT §11): the figures and the verdict.

A *night* is 00:00-05:00 site time of a date. Its baseload is the mean of the meter's 1-minute
mean `active_power` inside it, each minute weighing the same (as `night_kw` of `fgw report
energy`), from exact minute aggregates, never from deadbanded samples. A night *counts* only when
the meter left at most `MAX_SILENT` seconds of it without a reading; the *reference* is the mean
of the nights that count among the `REFERENCE_NIGHTS` before. There is no verdict when the night
itself does not count, or fewer than `min_nights` reference nights do.

A night has *risen* when its baseload is at least `min_kw` and above `ratio` times the reference
(a reference below zero, a meter exporting at night, counts as zero).

`night_kw` and `judge` are pure; `evaluate` reads a `MinuteSource` (the history store).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from config.models import BaseloadRise

NIGHT_HOURS = (0, 5)
"""The night, site time: [00:00, 05:00) (the energy report's `night_kw` too)."""
REFERENCE_NIGHTS = 28
"""Nights before the one judged that make its reference: four weeks, each weekday four times."""
MAX_SILENT = 900.0
"""Seconds of a night without any reading beyond which the night does not count."""
POINT = "active_power"
TOLERANCE = 1e-9
"""Relative: a night above the limit by less than float rounding has not risen."""

MinuteMean = tuple[float, float]
"""(start of the minute, epoch seconds; mean kW in it)."""


class MinuteSource(Protocol):
    """What `evaluate` reads: `HistoryStore.minutes`."""

    def minutes(
        self, device: str, point: str, start: float, end: float
    ) -> Sequence[tuple[Any, ...]]: ...


@dataclass(frozen=True, slots=True)
class Night:
    """00:00-05:00 site time of `day`, as epoch seconds [start, end)."""

    day: date
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """One meter's night judged. `risen` is None when there is no verdict (`why` says why)."""

    meter: str
    night: str  # YYYY-MM-DD, site time
    night_kw: float | None
    reference_kw: float | None
    nights: int  # reference nights that count
    risen: bool | None
    why: str = ""

    @property
    def times(self) -> float | None:
        """The night's baseload over the reference (None without both, or a reference <= 0)."""
        if self.night_kw is None or self.reference_kw is None or self.reference_kw <= 0:
            return None
        return self.night_kw / self.reference_kw


def night(day: date, zone: ZoneInfo) -> Night:
    lo, hi = NIGHT_HOURS
    start = datetime.combine(day, time(lo), zone).timestamp()
    return Night(day, start, datetime.combine(day, time(hi), zone).timestamp())


def latest_night(now: float, zone: ZoneInfo, settle: float) -> date:
    """The date of the latest night that ended at least `settle` seconds before `now`."""
    today = datetime.fromtimestamp(now, zone).date()
    return today if night(today, zone).end + settle <= now else today - timedelta(days=1)


def reference_nights(day: date, zone: ZoneInfo) -> list[Night]:
    """The `REFERENCE_NIGHTS` nights before `day`, newest first."""
    return [night(day - timedelta(days=k), zone) for k in range(1, REFERENCE_NIGHTS + 1)]


def night_kw(minutes: Sequence[MinuteMean], span: Night, spacing: float = 60.0) -> float | None:
    """The night's mean kW over its minutes, or None when it does not count (`MAX_SILENT`).

    `spacing` is the time between two readings of the meter at the least (its poll interval, at
    least a minute): a meter polled every 5 minutes leaves 4 minutes out of 5 empty by design.
    """
    inside = sorted((t, v) for t, v in minutes if span.start <= t < span.end and math.isfinite(v))
    if not inside:
        return None
    spacing = max(60.0, spacing)
    slack = spacing - 60.0  # a minute stamp may lag its reading by this much at the edges
    silent = max(0.0, inside[0][0] - span.start - slack)
    silent += max(0.0, span.end - (inside[-1][0] + 60.0) - slack)
    for (a, _), (b, _) in itertools.pairwise(inside):
        silent += max(0.0, b - a - spacing)
    if silent > MAX_SILENT:
        return None
    return math.fsum(v for _, v in inside) / len(inside)


def judge(
    meter: str,
    day: date,
    tonight: float | None,
    references: Sequence[float | None],
    rule: BaseloadRise,
) -> Verdict:
    """The verdict on one night from its baseload and its reference nights' (None: not counted)."""
    counted = [r for r in references if r is not None]
    reference = math.fsum(counted) / len(counted) if counted else None
    name = day.isoformat()
    if tonight is None:
        return Verdict(meter, name, None, reference, len(counted), None, "the night has gaps")
    if reference is None or len(counted) < rule.min_nights:
        why = f"{len(counted)} reference nights, {rule.min_nights} needed"
        return Verdict(meter, name, tonight, reference, len(counted), None, why)
    limit = rule.ratio * max(reference, 0.0)
    risen = tonight >= rule.min_kw and tonight > limit + TOLERANCE * max(abs(limit), 1.0)
    return Verdict(meter, name, tonight, reference, len(counted), risen)


def minute_means(rows: Sequence[tuple[Any, ...]]) -> list[MinuteMean]:
    """History minute rows `(minute, min, max, sum, count, ...)` as (minute, mean)."""
    return [(float(r[0]), float(r[3]) / r[4]) for r in rows if r[4]]


def evaluate(
    source: MinuteSource,
    meter: str,
    day: date,
    zone: ZoneInfo,
    rule: BaseloadRise,
    spacing: float = 60.0,
) -> Verdict:
    """Judge the meter's night of `day` from its stored minutes (one query per night)."""

    def kw(span: Night) -> float | None:
        rows = source.minutes(meter, POINT, span.start, span.end - 1.0)
        return night_kw(minute_means(rows), span, spacing)

    tonight = kw(night(day, zone))
    return judge(meter, day, tonight, [kw(n) for n in reference_nights(day, zone)], rule)
