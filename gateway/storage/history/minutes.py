"""Each point's minute aggregates: the open minute in memory, the minutes done encoded for a block.

Every good number polled is folded into its point's open minute (`MinuteFold`: min, max, sum,
count, last), whether the deadband stores it or not, so the aggregates are exact. A minute is done
when a reading of a later minute comes, when the wall clock has passed it (`finish_minutes`), or at
a stop; a reading older than the open minute is a minute of its own, merged with the others of its
minute when read (`merge_minutes`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from gateway.storage.deadband import MinuteFold, SeriesFilter
from gateway.storage.series_codec import Minute, encode_minutes


class MinutesDone:
    """Minutes done, encoded as they end (a few bytes each, not a tuple of floats), by series."""

    __slots__ = ("first", "last", "records")

    def __init__(self) -> None:
        self.records: dict[int, bytearray] = {}
        self.first = math.inf
        self.last = -math.inf

    def add(self, sid: int, row: Minute) -> None:
        record = self.records.get(sid)
        if record is None:
            record = self.records[sid] = bytearray()
        record += encode_minutes((row,))
        self.first = min(self.first, row[0])
        self.last = max(self.last, row[0])

    def __bool__(self) -> bool:
        return bool(self.records)


class Series:
    """One point as the writer knows it: its id, what it stored last, its open minute."""

    __slots__ = ("filter", "fold", "seen", "sid")

    def __init__(self, sid: int, filt: SeriesFilter) -> None:
        self.sid = sid
        self.filter = filt
        self.fold: MinuteFold | None = None
        self.seen = -math.inf  # the newest reading's time


def fold_other(series: Series, ts: float, value: float, done: MinutesDone) -> None:
    """A number outside its series' open minute: a new minute, or a late one of its own."""
    minute = int(ts // 60 * 60)
    fold = series.fold
    if fold is None or fold.minute < minute:
        if fold is not None:
            done.add(series.sid, fold.row())
        fold = series.fold = MinuteFold(minute)
        fold.add(ts, float(value))
    else:  # older than the open minute: a minute of its own, merged when read
        late = MinuteFold(minute)
        late.add(ts, float(value))
        done.add(series.sid, late.row())


def finish_minutes(
    series: Iterable[Series], now_minute: int, done: MinutesDone, *, finish: bool
) -> None:
    """Move the open minutes that are over (before `now_minute`), or all of them when `finish`,
    into `done`."""
    for one in series:
        fold = one.fold
        if fold is not None and (finish or fold.minute < now_minute):
            done.add(one.sid, fold.row())
            one.fold = None
