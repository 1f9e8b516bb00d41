"""Compaction: the blocks of the hours past become one chunk row per point and hour.

A query then reads one row per hour for its point instead of every block of that hour; chunk rows
are appended at the end of the file too (keyed `(hour, series)`), nothing is rewritten in place.
"""

from __future__ import annotations

import sqlite3
import zlib

from gateway.storage.series_codec import Section

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
    samples: dict[int, list[bytes]] = {}
    minutes: dict[int, list[bytes]] = {}
    for blob_s, blob_m in db.execute(
        "SELECT samples, minutes FROM block WHERE hour = ? ORDER BY id", (hour,)
    ):
        for blob, into in ((blob_s, samples), (blob_m, minutes)):
            if blob is None:
                continue
            section = Section(blob)
            for sid in section.series():
                if low <= sid < high:
                    into.setdefault(sid, []).append(section.records(sid))
    for table, records in (("sample_chunk", samples), ("minute_chunk", minutes)):
        for sid in sorted(records):
            data = b"".join(records[sid])
            old = db.execute(
                f"SELECT data FROM {table} WHERE hour = ? AND series = ?", (hour, sid)
            ).fetchone()
            if old is not None:  # blocks of this hour came after it was compacted (a clock)
                data = zlib.decompress(old[0]) + data
            db.execute(
                f"INSERT OR REPLACE INTO {table} (hour, series, data) VALUES (?, ?, ?)",
                (hour, sid, zlib.compress(data, 6)),
            )
    return len(samples) + len(minutes)
