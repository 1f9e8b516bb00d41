"""What of a point's readings the history stores: a change beyond its deadband, or a heartbeat.

Pure: no I/O, no clock (each reading brings its time). Per point, `SeriesFilter.keep()` says whether
a reading is stored; `MinuteFold` keeps the exact minute aggregates of every polled number, stored
or not.

The contract (what the tests prove): the stored samples, each held until the next (a step curve),
stay within the deadband of every reading offered — a reading is dropped only when it is within the
deadband of the last stored one and has its quality. A change of quality, the first reading (after
a start) and a reading `heartbeat` seconds after the last stored one are always stored, so a flat
line shows as such and not as a gap. `deadband=None` stores every reading.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.storage.series_codec import Minute

HEARTBEAT = 600.0
"""Seconds after which a reading is stored even when it has not moved."""
DEADBAND_PERCENT = 0.1
"""The default deadband of a number with a range: this percent of its span."""

_NUMBERS = (int, float)


def default_deadband(
    value_type: str,
    scale: float,
    value_range: tuple[float, float] | None,
    percent: float = DEADBAND_PERCENT,
) -> float:
    """A point's deadband from its type and range: 0 (every change) for bits, text and points
    without a range; `percent` of the span of a number with one (never below half its step)."""
    if value_type in ("bool", "string") or value_range is None:
        return 0.0
    band = (value_range[1] - value_range[0]) * percent / 100.0
    if value_type != "float32" and value_type != "float64":
        band = max(band, abs(scale) / 2)  # an integer register moves by whole steps of `scale`
    return band


def _is_number(value: Any) -> bool:
    return value.__class__ in _NUMBERS or value.__class__ is bool


class SeriesFilter:
    """One point's store-on-change decision.

    Args:
        deadband: how far a number may move from the last stored value unstored; 0: any change
            is stored; None: every reading is stored.
        heartbeat: seconds after the last stored reading when the next is stored anyway.
    """

    __slots__ = ("deadband", "heartbeat", "quality", "ts", "value")

    def __init__(self, deadband: float | None, heartbeat: float = HEARTBEAT) -> None:
        self.deadband = deadband
        self.heartbeat = heartbeat
        self.ts: float | None = None
        self.value: Any = None
        self.quality = -1

    def keep(self, ts: float, quality: int, value: Any) -> bool:
        """Whether to store this reading (and remember it as the last stored when so)."""
        band = self.deadband
        last_ts = self.ts
        if (
            band is not None
            and last_ts is not None
            and quality == self.quality
            and abs(ts - last_ts) < self.heartbeat
            and self._within(value, band)
        ):
            return False
        self.ts, self.quality, self.value = ts, quality, value
        return True

    def _within(self, value: Any, band: float) -> bool:
        last = self.value
        if _is_number(value) and _is_number(last):
            if value != value or last != last:  # NaN: only another NaN is the same
                return bool(value != value and last != last)
            try:
                return bool(abs(value - last) <= band)
            except OverflowError:
                return False
        return bool(value.__class__ is last.__class__ and value == last)


class MinuteFold:
    """One point's current minute: min, max, sum, count and last of its good finite numbers."""

    __slots__ = ("hi", "last", "last_ts", "lo", "minute", "n", "total")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.lo = math.inf
        self.hi = -math.inf
        self.total = 0.0
        self.n = 0
        self.last = math.nan
        self.last_ts = -math.inf

    def add(self, ts: float, value: float) -> None:
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        self.total += value
        self.n += 1
        if ts >= self.last_ts:
            self.last, self.last_ts = value, ts

    def row(self) -> Minute:
        return (self.minute, self.lo, self.hi, self.total, self.n, self.last, self.last_ts)


def merge_minutes(rows: list[Minute]) -> list[Minute]:
    """Minutes from several places (a restart, late readings) merged per minute, in order."""
    merged: dict[int, Minute] = {}
    for row in rows:
        old = merged.get(row[0])
        if old is None:
            merged[row[0]] = row
            continue
        last, last_ts = (row[5], row[6]) if row[6] >= old[6] else (old[5], old[6])
        merged[row[0]] = (row[0], min(old[1], row[1]), max(old[2], row[2]), old[3] + row[3],
                          old[4] + row[4], last, last_ts)  # fmt: skip
    return [merged[m] for m in sorted(merged)]
