"""Compaction: the blocks of the hours past become one chunk row per point and hour.

A query then reads one row per hour for its point instead of every block of that hour; chunk rows
are appended at the end of the file too (keyed `(hour, series)`), nothing is rewritten in place.

A block is filed under the hour of its commit, and a query looks `LATE` past its span for what was
committed after it. A record older than that (back-filled: a device's buffer sent after an
outage, a clock put right) goes to the chunk of its own hour instead, or no query would find it.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable
from typing import TypeVar

from gateway.storage.history.layout import LATE, hour_of
from gateway.storage.series_codec import (
    Minute,
    Sample,
    Section,
    decode_minutes,
    decode_samples,
    encode_minutes,
    encode_samples,
)

Row = TypeVar("Row", Sample, Minute)

COMPACT_SLICE = 1000
"""Series compacted per pass over an hour's blocks (bounds the memory of a compaction)."""


def compact_before(db: sqlite3.Connection, current: int) -> int:
    """Compact every hour before `current` (an hour start) in one transaction; rows written."""
    hours = [h for (h,) in db.execute("SELECT DISTINCT hour FROM block WHERE hour < ?",
                                      (current,))]  # fmt: skip
    if not hours:
        return 0
    written = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for hour in hours:
            written += _compact_hour(db, hour)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return written


def _compact_hour(db: sqlite3.Connection, hour: int) -> int:
    """Move one hour's blocks into chunk rows, `COMPACT_SLICE` series at a time: an hour of a
    large site does not sit in memory at once (its blocks are read once per slice)."""
    (top,) = db.execute("SELECT max(id) FROM series").fetchone()
    written = 0
    for low in range(0, (top or 0) + 1, COMPACT_SLICE):
        written += _compact_slice(db, hour, low, low + COMPACT_SLICE)
    db.execute("DELETE FROM block WHERE hour = ?", (hour,))
    return written


def _compact_slice(db: sqlite3.Connection, hour: int, low: int, high: int) -> int:
    samples: dict[tuple[int, int], list[bytes]] = {}  # (chunk hour, series) -> records
    minutes: dict[tuple[int, int], list[bytes]] = {}
    on_time = hour - LATE  # a record before it is found only in its own hour's chunk
    for t0, blob_s, blob_m in db.execute(
        "SELECT t0, samples, minutes FROM block WHERE hour = ? ORDER BY id", (hour,)
    ):
        for blob, into, late in (
            (blob_s, samples, _late_samples),
            (blob_m, minutes, _late_minutes),
        ):
            if blob is None:
                continue
            section = Section(blob)
            for sid in section.series():
                if not low <= sid < high:
                    continue
                records = section.records(sid)
                if t0 >= on_time:  # the usual block: nothing in it is late
                    into.setdefault((hour, sid), []).append(records)
                    continue
                for chunk_hour, data in late(records, hour, on_time):
                    into.setdefault((chunk_hour, sid), []).append(data)
    for table, filed in (("sample_chunk", samples), ("minute_chunk", minutes)):
        for chunk_hour, sid in sorted(filed):
            data = b"".join(filed[chunk_hour, sid])
            old = db.execute(
                f"SELECT data FROM {table} WHERE hour = ? AND series = ?", (chunk_hour, sid)
            ).fetchone()
            if old is not None:  # that hour was compacted before (late records, a clock)
                data = zlib.decompress(old[0]) + data
            db.execute(
                f"INSERT OR REPLACE INTO {table} (hour, series, data) VALUES (?, ?, ?)",
                (chunk_hour, sid, zlib.compress(data, 6)),
            )
    return len(samples) + len(minutes)


def _late_samples(records: bytes, hour: int, on_time: float) -> list[tuple[int, bytes]]:
    """A block's samples of one series, split: on time stay in `hour`, late go to their own."""
    return _refiled(decode_samples(records), encode_samples, hour, on_time)


def _late_minutes(records: bytes, hour: int, on_time: float) -> list[tuple[int, bytes]]:
    """As `_late_samples`, for minute aggregates (a minute's time is its start)."""
    return _refiled(decode_minutes(records), encode_minutes, hour, on_time)


def _refiled(
    rows: list[Row], encode: Callable[[list[Row]], bytes], hour: int, on_time: float
) -> list[tuple[int, bytes]]:
    by_hour: dict[int, list[Row]] = {}
    for row in rows:  # a row's time is its first field
        by_hour.setdefault(hour if row[0] >= on_time else hour_of(row[0]), []).append(row)
    return [(h, encode(group)) for h, group in by_hour.items()]
