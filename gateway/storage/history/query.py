"""Reading a point back: its stored samples, or its minute aggregates in buckets.

The functions read the file (chunks, then blocks not yet compacted) and add what the writer holds
in memory and has not committed, so the last seconds of a trend are not held back by the commit
interval. The store calls them under its connection's lock.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.storage.deadband import merge_minutes
from gateway.storage.history.layout import LATE, QUALITY_NAME, blocks, chunks
from gateway.storage.history.minutes import Series
from gateway.storage.series_codec import Minute, Sample, decode_minutes, decode_samples

Pending = Sequence[list[Sample] | None]
"""The point's samples taken by the writer and not committed yet (oldest first)."""


def point_samples(
    db: sqlite3.Connection, sid: int, start: float, end: float, pending: Pending
) -> list[Sample]:
    """The point's samples of [start, end], stored or pending, in time order."""
    out: list[Sample] = []
    for data in chunks(db, "sample_chunk", sid, start, end):
        out += decode_samples(data)
    for data in blocks(db, "samples", sid, start, end):
        out += decode_samples(data)
    for waiting in pending:
        if waiting:  # not committed yet: a trend shows a step of the last seconds at once
            out += [sample for sample in waiting if start <= sample[0] <= end]
    out.sort(key=_sample_time)  # stable: a poll's order on a tie
    return out


def raw_answer(
    db: sqlite3.Connection,
    sid: int,
    series: Series | None,
    start: float,
    end: float,
    max_points: int,
    *,
    heartbeat: float,
    committed: bool,
    pending: Pending,
) -> list[dict[str, Any]] | None:
    """The point's stored samples in the span, or None when there are more than `max_points`;
    with a deadband, the value held at `start` and at the last reading too (once the writer has
    `committed`)."""
    held = series is not None and series.filter.deadband is not None
    lookback = max(heartbeat, LATE) if held else 0.0
    found = point_samples(db, sid, start - lookback, end, pending)
    inside = [s for s in found if start <= s[0] <= end]
    if len(inside) > max_points:
        return None
    out = [
        {"ts": ts, "value": value, "quality": QUALITY_NAME.get(q, "bad")} for ts, q, value in inside
    ]
    if not held or series is None:
        return out
    before = [s for s in found if s[0] < start]
    if before and (not inside or inside[0][0] > start) and len(out) < max_points:
        _, q, value = before[-1]
        out.insert(0, {"ts": start, "value": value, "quality": QUALITY_NAME.get(q, "bad")})
    if out and len(out) < max_points:
        last = out[-1]
        until = min(end, series.seen)
        if until > last["ts"] and committed:
            out.append({**last, "ts": until})
    return out


def point_minutes(db: sqlite3.Connection, sid: int, start: float, end: float) -> list[Minute]:
    """The point's stored minute aggregates of the minutes from `start`'s to `end`, merged."""
    first_minute = math.floor(start / 60) * 60
    rows: list[Minute] = []
    for data in chunks(db, "minute_chunk", sid, start, end):
        rows += decode_minutes(data)
    for data in blocks(db, "minutes", sid, start, end):
        rows += decode_minutes(data)
    return merge_minutes([m for m in rows if first_minute <= m[0] <= end])


def in_buckets(
    rows: list[Minute], start: float, end: float, max_points: int
) -> list[dict[str, Any]]:
    """Minutes in buckets of whole minutes, as many per bucket as keep the answer within
    `max_points`: `{"ts" (bucket start), "min", "mean", "max", "last", "count"}`."""
    bucket = 60 * max(1, math.ceil((end - start) / 60 / max_points))
    out: list[dict[str, Any]] = []
    for minute, lo, hi, total, n, last, _ in rows:
        ts = minute - minute % bucket
        if out and out[-1]["ts"] == ts:
            b = out[-1]
            b["min"], b["max"] = min(b["min"], lo), max(b["max"], hi)
            b["_sum"] += total
            b["count"] += n
            b["last"] = last
        else:
            out.append({"ts": ts, "min": lo, "max": hi, "_sum": total, "count": n, "last": last})
    for b in out:
        b["mean"] = b.pop("_sum") / b["count"]
    return out


def _sample_time(sample: Sample) -> float:
    return sample[0]
