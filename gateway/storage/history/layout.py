"""The history file's tables, and the reads and writes of its blocks and chunks.

    series(id, device, point)
    block(id, hour, t0, t1, samples, minutes)     not yet compacted; `hour` of its commit
    sample_chunk(hour, series, data)              the point's stored samples, for `raw_window`
    minute_chunk(hour, series, data)              its minute aggregates, for `aggregate_window`

A block's `samples` and `minutes` are sections (`gateway.storage.series_codec`) of every point;
a chunk's `data` is one point's records of an hour, zlib-compressed. A chunk `hour` is that of the
commit, so a chunk holds readings up to `LATE` seconds older than its hour.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Mapping
from pathlib import Path

from gateway.storage.db import open_database
from gateway.storage.series_codec import Sample, Section, encode_samples, pack_section
from ground.model import Quality

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id      INTEGER PRIMARY KEY,
    device  TEXT NOT NULL,
    point   TEXT NOT NULL,
    UNIQUE (device, point)
);
CREATE TABLE IF NOT EXISTS block (
    id      INTEGER PRIMARY KEY,
    hour    INTEGER NOT NULL,
    t0      REAL NOT NULL,
    t1      REAL NOT NULL,
    samples BLOB,
    minutes BLOB
);
CREATE TABLE IF NOT EXISTS sample_chunk (
    hour    INTEGER NOT NULL,
    series  INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (hour, series)
);
CREATE TABLE IF NOT EXISTS minute_chunk (
    hour    INTEGER NOT NULL,
    series  INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (hour, series)
);
"""

QUALITY_CODE = {Quality.GOOD: 0, Quality.BAD: 1, Quality.STALE: 2}
QUALITY_NAME = {code: str(quality) for quality, code in QUALITY_CODE.items()}

HOUR = 3600
LATE = 3600.0
"""Seconds a chunk's readings may be older than its hour (the commit's): queries look this far."""
CACHE_KIB = 1024
"""The connection's page cache, KiB."""
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
"""Bytes the write-ahead log is truncated to after a checkpoint."""


def open_history(path: Path) -> sqlite3.Connection:
    """The history file, its tables created; commits are on the card when they return."""
    # FULL: a power cut loses at most one commit interval; NORMAL would leave the commits since
    # the last checkpoint to chance, and checkpoints are far apart at the history's write rate
    db, _ = open_database(path, synchronous="FULL")
    db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    db.executescript(SCHEMA)
    return db


def hour_of(ts: float) -> int:
    """The start of the hour holding `ts`; a chunk of an earlier hour holds only readings before
    it (a reading is committed in its own hour or later)."""
    return int(ts // HOUR * HOUR)


def insert_block(
    db: sqlite3.Connection,
    hour: int,
    samples: Mapping[int, list[Sample]],
    minutes: Mapping[int, bytes | bytearray],
    first_minute: float,
    last_minute: float,
) -> None:
    """One commit's block: every point's `samples` and encoded `minutes` (by series id), spanning
    their times (the minutes' from `first_minute` to the end of `last_minute`)."""
    times = [s[0] for rows in samples.values() for s in rows]
    if minutes:
        times += [first_minute, last_minute + 60]
    db.execute(
        "INSERT INTO block (hour, t0, t1, samples, minutes) VALUES (?, ?, ?, ?, ?)",
        (
            hour,
            min(times),
            max(times),
            pack_section({sid: encode_samples(rows) for sid, rows in samples.items()})
            if samples
            else None,
            pack_section(minutes) if minutes else None,
        ),
    )


def chunks(db: sqlite3.Connection, table: str, sid: int, start: float, end: float) -> list[bytes]:
    """The point's chunk data (decompressed) of the hours that may hold [start, end]."""
    out = []
    first = hour_of(start)
    last = hour_of(end + LATE)
    for hour in range(first, last + 1, HOUR):
        row = db.execute(
            f"SELECT data FROM {table} WHERE hour = ? AND series = ?", (hour, sid)
        ).fetchone()
        if row is not None:
            out.append(zlib.decompress(row[0]))
    return out


def blocks(db: sqlite3.Connection, column: str, sid: int, start: float, end: float) -> list[bytes]:
    """The point's records in the blocks not yet compacted that overlap [start, end]."""
    out = []
    for (blob,) in db.execute(
        f"SELECT {column} FROM block WHERE t1 >= ? AND t0 <= ? AND {column} IS NOT NULL "
        "ORDER BY id",
        (start, end),
    ):
        records = Section(blob).records(sid)
        if records:
            out.append(records)
    return out


def used_bytes(db: sqlite3.Connection) -> int:
    """The file's bytes in use (its pages less the free ones): what `max_bytes` bounds."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)
