"""Readings into rows: each reading's minute (a good number) and its sample (when kept).

What is stored (`gateway.storage.deadband`): per point, a reading that moved beyond the point's
deadband from the last stored one, changed quality, or comes `heartbeat` after the last stored one;
and per point and minute the min, max, sum, count and last of *every* good number polled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.storage.history.layout import QUALITY_CODE
from gateway.storage.history.minutes import MinutesDone, Series, fold_other
from gateway.storage.series_codec import Sample
from ground.model import Reading

_FLOAT_RANGE = 1.7e308
"""Integers beyond a float's range are stored but not aggregated (float() would overflow)."""
_NUMBERS = frozenset((float, int, bool))

SeriesKey = tuple[str, str]
"""`(device, point)`."""


def take(
    batch: Sequence[Reading],
    known: dict[SeriesKey, Series],
    new_series: Callable[[SeriesKey], Series],
    samples: dict[int, list[Sample]],
    done: MinutesDone,
) -> None:
    """Fold each reading of `batch` into its minute and add it to `samples` when its filter keeps
    it; `new_series` makes (and records in `known`) a point not met before.

    The writer's hot loop: one function for the batch, the usual reading decided inline.
    """
    for r in batch:
        key = (r.device, r.point)
        series = known.get(key)
        if series is None:
            series = new_series(key)
        ts = r.ts
        value: Any = r.value  # its exact class decides below (a bool is not taken for an int)
        quality = QUALITY_CODE.get(r.quality, 1)
        cls = value.__class__
        if cls is float:
            if value != value:
                value, number = None, False
            else:
                number = -_FLOAT_RANGE < value < _FLOAT_RANGE
        elif cls is int:
            number = -_FLOAT_RANGE < value < _FLOAT_RANGE
        elif cls is bool:
            value, number = int(value), True
        else:
            number = False
        if ts > series.seen:
            series.seen = ts
        if number and quality == 0:
            fold = series.fold
            if fold is not None and fold.minute <= ts < fold.minute + 60:
                fold.add(ts, value)  # the usual reading: its minute is open
            else:
                fold_other(series, ts, value, done)
        filt = series.filter
        band = filt.deadband
        last = filt.value
        if (  # the usual reading of a number within its deadband: not stored (`SeriesFilter`)
            number
            and band is not None
            and quality == filt.quality
            and last.__class__ in _NUMBERS
            and filt.ts is not None
            and abs(ts - filt.ts) < filt.heartbeat
            and abs(value - last) <= band
        ):
            continue
        if filt.keep(ts, quality, value):
            samples.setdefault(series.sid, []).append((ts, quality, value))
