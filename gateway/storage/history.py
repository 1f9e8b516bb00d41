"""Local history: every reading for a while, then 1-minute aggregates for a year — in bounded space.

The console's trends and `GET /api/v1/points/{device}/{point}/history` read from here; it needs no
database server. Its own file, `<storage>/history.sqlite3`, keeps the alarm journal's file small and
its writes (many, cheap) apart from the journal's (few, fsynced).

    stream(id, device, points)                  the point names a device's polls deliver, in order
    poll(stream, ts, vals, quals, times)        every poll, for `raw_window` (default 48 h)
    agg(series, minute, min, max, sum, n, last) numeric good readings per minute, `aggregate_window`

Why one row per poll, not per reading: a gateway polling 10,000 points a second would insert
10,000 rows and 10,000 index entries a second, each index entry on its own page of a
`(series, ts)` index — the writer's CPU, the WAL and the page cache grew with the table. A poll's
readings travel together, in the order of its stream's points: `vals` packs them in binary when all
are numbers (a layout code per value, `d` or `q`, then the values) and is a JSON list otherwise;
`quals` is one digit per reading, NULL when all are good; `ts` is the earliest reading's time and
`times` each reading's own (packed doubles), NULL when they are all the same — a poll reads its
blocks one after the other, so a row may spread over `ROW_SPAN` seconds at most. One row and one
index entry carry a device's whole poll. A point's raw answer reads the streams of its device that
hold it; its reading count is still exact (rows wholly inside the span are counted by the index,
the few at its edges by their readings' own times).

Why aggregates are folded in memory: an upsert per point per commit dirtied a page of `agg` per
point every second. The current minute of each point is kept in memory (the query adds it to what
is on disk) and written once, when its minute is over, in the writer's next transaction. A stop
writes it; an abrupt end (power cut) loses at most that minute's aggregates (the raw rows stay).

Why a writer thread: the event loop must not wait on the disk. `add()` only appends to a buffer;
the thread (`fgw[history].writer`) commits the buffer every `commit_interval` in one transaction —
never a commit per row — and upserts finished minutes (merging min/max/sum/count, so restarts and
late readings are fine). The same thread prunes in the background: rows older than their window,
then the oldest rows while the file is over `max_bytes` (raw first, then aggregates), and gives
freed pages back to the file system.

Upgrading: a history file of the first layout (`raw`, one row per reading) is kept readable as is —
the query reads both, pruning ages its rows out and drops the table once it is empty. Nothing is
rewritten at start, so an upgraded gateway starts as fast on a full file as on a new one.

A full disk does not stop the gateway: the failed batch is counted in `dropped`, `error` says why
(the health check reports it), the failure is logged once and the recovery once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import operator
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.components import Component
from gateway.model import Quality, Reading
from gateway.storage.db import open_database

if TYPE_CHECKING:
    from gateway.config.site import Site
    from gateway.service import Gateway

log = logging.getLogger("fgw.history")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id      INTEGER PRIMARY KEY,
    device  TEXT NOT NULL,
    point   TEXT NOT NULL,
    UNIQUE (device, point)
);
CREATE TABLE IF NOT EXISTS stream (
    id      INTEGER PRIMARY KEY,
    device  TEXT NOT NULL,
    points  TEXT NOT NULL,
    UNIQUE (device, points)
);
CREATE TABLE IF NOT EXISTS poll (
    stream  INTEGER NOT NULL,
    ts      REAL NOT NULL,
    vals    TEXT NOT NULL,
    quals   TEXT,
    times   BLOB
);
CREATE INDEX IF NOT EXISTS poll_by_stream ON poll (stream, ts);
CREATE TABLE IF NOT EXISTS agg (
    series  INTEGER NOT NULL,
    minute  INTEGER NOT NULL,
    min     REAL NOT NULL,
    max     REAL NOT NULL,
    sum     REAL NOT NULL,
    n       INTEGER NOT NULL,
    last    REAL NOT NULL,
    last_ts REAL NOT NULL,
    PRIMARY KEY (series, minute)
) WITHOUT ROWID;
"""

_UPSERT_AGG = """
INSERT INTO agg (series, minute, min, max, sum, n, last, last_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (series, minute) DO UPDATE SET
    min = min(agg.min, excluded.min),
    max = max(agg.max, excluded.max),
    sum = agg.sum + excluded.sum,
    n = agg.n + excluded.n,
    last = CASE WHEN excluded.last_ts >= agg.last_ts THEN excluded.last ELSE agg.last END,
    last_ts = max(agg.last_ts, excluded.last_ts)
"""

_INSERT_POLL = "INSERT INTO poll (stream, ts, vals, quals, times) VALUES (?, ?, ?, ?, ?)"

LEGACY_RAW = "raw"
"""The first layout's table of raw readings (one row per reading): read and aged out, never written."""

QUALITY_CODE = {Quality.GOOD: 0, Quality.BAD: 1, Quality.STALE: 2}
QUALITY_NAME = {code: str(quality) for quality, code in QUALITY_CODE.items()}
_QUALITY_DIGIT = {quality: str(code) for quality, code in QUALITY_CODE.items()}

RAW_WINDOW = 48 * 3600.0
AGGREGATE_WINDOW = 365 * 86400.0
MAX_BYTES = 1024 * 1024 * 1024
MIN_RAW_KEPT = 3600.0
"""Raw readings younger than this are never pruned for space (aggregates go first)."""
CACHE_KIB = 1024
"""The connection's page cache, KiB."""
AGG_PRUNE_STEP = 3600
"""Seconds the aggregates' cutoff moves before they are pruned again."""
CLOSE_TIMEOUT = 10.0
"""Seconds a stop may spend writing what is buffered."""
MAX_BUFFERED = 200_000
"""Readings waiting for the writer at most; beyond this the oldest batches are dropped (counted)."""
ROW_SPAN = 2.0
"""Seconds a row's readings may spread over (a poll reads its blocks one after the other, each
with its own time); its `ts` is the earliest, `times` each reading's when they differ."""
MAX_STREAMS_PER_DEVICE = 64
"""Point combinations kept as streams per device; beyond, a batch is stored one point per row (an
MQTT device whose messages carry ever new subsets of points must not grow the table without end)."""
_FLOAT_RANGE = 1.7e308
"""Integers beyond a float's range are stored but not aggregated (float() would overflow)."""

_NUMBERS = frozenset((float, int, bool))
# a reading's fields, for `map`: a whole poll's times, points, values read in C, not a comprehension
_TS = operator.attrgetter("ts")
_POINT = operator.attrgetter("point")
_VALUE = operator.attrgetter("value")
_QUALITY = operator.attrgetter("quality")
_DEVICE = operator.attrgetter("device")
_PACK_CODE = {float: b"d", int: b"q", bool: b"q"}
_packings: dict[tuple[type, ...], tuple[bytes, struct.Struct] | None] = {}
"""Per kinds of a poll's values: its layout codes and packer (None: not all numbers)."""


class HistoryStore:
    """Raw readings and 1-minute aggregates of one site, in `<folder>/history.sqlite3`.

    Args:
        folder: the storage folder.
        raw_window: seconds raw readings are kept.
        aggregate_window: seconds 1-minute aggregates are kept.
        max_bytes: the bound on the file's used pages; the oldest rows go first when over it.
        wall: the wall clock (for windows), injectable for tests.
        commit_interval: seconds between the writer's commits.
        prune_interval: seconds between the writer's prunes.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        raw_window: float = RAW_WINDOW,
        aggregate_window: float = AGGREGATE_WINDOW,
        max_bytes: int = MAX_BYTES,
        wall: Callable[[], float] = time.time,
        commit_interval: float = 1.0,
        prune_interval: float = 60.0,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "history.sqlite3"
        self.raw_window = raw_window
        self.aggregate_window = aggregate_window
        self.max_bytes = max_bytes
        self.commit_interval = commit_interval
        self.prune_interval = prune_interval
        self._wall = wall
        self._db, _ = open_database(
            self.path, synchronous="NORMAL", fresh_pragmas=("auto_vacuum=INCREMENTAL",)
        )
        self._db.execute("PRAGMA journal_size_limit=8388608")
        # 1 MiB of page cache (SQLite's default is 2): each commit touches the last index page of
        # every stream, more than either holds, so the larger cache saved no CPU, only memory
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        self._legacy = self._has_table(LEGACY_RAW)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(poll)")}
        if "times" not in columns:  # a file written before the column came (one time per row)
            self._db.execute("ALTER TABLE poll ADD COLUMN times BLOB")
        self._db_lock = threading.Lock()  # the writer thread and queries share the connection
        self._streams: dict[tuple[str, tuple[str, ...]], tuple[int, tuple[int, ...]]] = {}
        self._open: dict[int, _Minute] = {}  # stream -> its newest minute, not yet on disk
        self._open_scan: int | None = None  # the wall minute of the last scan for finished ones
        self._buffer: list[Sequence[Reading]] = []
        self._buffered = 0
        self._cond = threading.Condition()
        self._added = 0  # batches added, ever
        self._written = 0  # batches handled by the writer (committed or dropped), ever
        self._stopping = False
        self._flush_requested = False
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._agg_cutoff = -math.inf  # the cutoff of the last prune of aggregates
        self.rows_written = 0
        self.commits = 0
        self.dropped = 0
        self.error: str | None = None
        self.last_commit: float | None = None

    @classmethod
    def for_site(cls, site: Site) -> HistoryStore:
        history = site.file.history
        return cls(
            site.storage_dir,
            raw_window=history.raw_window,
            aggregate_window=history.aggregate_window,
            max_bytes=int(history.max_mb * 1024 * 1024),
        )

    def _has_table(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None

    # ------------------------------------------------------------------------------ writing

    def add(self, batch: Sequence[Reading]) -> None:
        """Queue a batch for the writer; never blocks on the disk."""
        if not batch:
            return
        with self._cond:
            self._buffer.append(batch)
            self._buffered += len(batch)
            self._added += 1
            while self._buffered > MAX_BUFFERED and len(self._buffer) > 1:
                old = self._buffer.pop(0)
                self._buffered -= len(old)
                self.dropped += len(old)
                self._written += 1

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(
            target=self._writer, name="fgw[history].writer", daemon=True
        )
        self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every batch added so far is written (or dropped); False on timeout.

        The current minute's aggregates stay in memory (queries see them); `close()` writes them.
        """
        if self._thread is None:
            self.write_pending()
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._added
            self._flush_requested = True
            self._cond.notify_all()
            while self._written < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is buffered (within `timeout`) and end the writer thread."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout)
        if thread.is_alive():
            log.warning("history: writer did not finish within %.0fs", timeout)
        self._thread = None

    def close(self) -> None:
        """Stop the writer, write the minutes still in memory and close the file."""
        self.stop()
        if self._thread is None:
            self.write_pending(finish=True)
        with self._db_lock:
            self._db.close()

    def _writer(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.commit_interval
                while not (self._stopping or self._flush_requested):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)  # paced: one transaction per interval, not per batch
                self._flush_requested = False
                stopping = self._stopping
            self.write_pending()
            now = self._wall()
            if now - self._last_prune >= self.prune_interval:
                self._last_prune = now
                try:
                    self.prune(now)
                except sqlite3.Error as exc:
                    self._failed(exc)
            if stopping:
                self.write_pending(finish=True)
                return

    def write_pending(self, finish: bool = False) -> int:
        """Write everything buffered in one transaction (the writer calls this); readings written.

        Args:
            finish: also write the minutes still open in memory (at a stop).
        """
        with self._cond:
            batches, self._buffer = self._buffer, []
            self._buffered = 0
        if not batches and not finish and not self._minute_turned():
            return 0
        try:
            written = self._write(batches, finish)
        except sqlite3.Error as exc:
            self._failed(exc)
            self.dropped += sum(len(b) for b in batches)
            written = 0
        else:
            if self.error is not None:
                log.info("history: writing again (%s)", self.path)
                self.error = None
            self.rows_written += written
            self.commits += 1
            self.last_commit = self._wall()
        with self._cond:
            self._written += len(batches)
            self._cond.notify_all()
        return written

    def _failed(self, exc: sqlite3.Error) -> None:
        if self.error is None:
            log.error(
                "history: cannot write %s: %s (readings are dropped until it can)", self.path, exc
            )
        self.error = str(exc)

    def _minute_turned(self) -> bool:
        return int(self._wall() // 60 * 60) != self._open_scan

    def _write(self, batches: list[Sequence[Reading]], finish: bool = False) -> int:
        rows: list[tuple[int, float, str | bytes, str | None, bytes | None]] = []
        done: list[tuple[Any, ...]] = []  # finished minutes, for the agg upsert
        late: dict[tuple[int, int], list[float]] = {}  # readings older than their open minute
        created: list[int] = []  # stream ids inserted by this transaction
        readings = 0
        with self._db_lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for batch in batches:
                    for group in _polls(batch):
                        readings += len(group)
                        self._store_poll(group, rows, done, late, created)
                if rows:
                    db.executemany(_INSERT_POLL, rows)
                done.extend((sid, minute, *a) for (sid, minute), a in late.items())
                self._finished_minutes(done, finish)
                if done:
                    db.executemany(_UPSERT_AGG, done)
                db.execute("COMMIT")
            except BaseException:
                # ids inserted in this transaction are gone: forget those streams and what was
                # folded under them (the other streams and their minutes stay)
                gone = set(created)
                self._streams = {k: v for k, v in self._streams.items() if v[0] not in gone}
                for stream_id in gone:
                    self._open.pop(stream_id, None)
                db.execute("ROLLBACK")
                raise
        return readings

    def _store_poll(
        self,
        group: Sequence[Reading],
        rows: list[tuple[int, float, str | bytes, str | None, bytes | None]],
        done: list[tuple[Any, ...]],
        late: dict[tuple[int, int], list[float]],
        created: list[int],
    ) -> None:
        """One poll (a device's readings within `ROW_SPAN`): its row, and its values' minutes."""
        first = group[0]
        stream = self._stream(first.device, tuple(map(_POINT, group)), created)
        if stream is None:  # a point twice, or too many combinations: one point per row
            for r in group:
                self._store_poll((r,), rows, done, late, created)
            return
        stream_id, sids = stream
        n = len(group)
        times = list(map(_TS, group))
        ts = min(times)
        newest = max(times)
        times_packed = None if newest == ts else _times_struct(n).pack(*times)
        minute = int(ts // 60 * 60)
        current = self._open.get(stream_id)
        if current is not None and current.minute < minute:
            done.extend(current.rows())
            current = None
        if current is None:
            current = self._open[stream_id] = _Minute(minute, sids)
        values = list(map(_VALUE, group))
        packing = _packing(tuple(map(type, values)))
        if packing is not None and list(map(_QUALITY, group)).count(Quality.GOOD) == n:
            # the usual poll: good numbers only, packed in binary, folded a whole list at a time
            # (integers and true/false as they are: a minute becomes floats when it is read)
            layout, packer = packing
            try:
                packed = layout + packer.pack(*values)
            except struct.error:  # an integer beyond 64 bits
                packed = b""
            total = sum(values)
            if packed and total - total == 0:  # every value finite
                rows.append((stream_id, ts, packed, None, times_packed))
                if ts >= current.newest and int(newest // 60 * 60) == current.minute:
                    current.add_all(values, times, newest)
                else:
                    self._fold_each(current, sids, group, values, late)
                return
        # anything else, reading by reading: NaN is stored as NULL (as SQLite stores it)
        values = [int(v) if v.__class__ is bool else (None if v != v else v) for v in values]
        quals = None
        if [r.quality for r in group].count(Quality.GOOD) != n:
            quals = "".join([_QUALITY_DIGIT.get(r.quality, "1") for r in group])
        text = json.dumps(values, separators=(",", ":"), default=str)
        rows.append((stream_id, ts, text, quals, times_packed))
        self._fold_each(current, sids, group, values, late)

    @staticmethod
    def _fold_each(
        current: _Minute,
        sids: tuple[int, ...],
        group: Sequence[Reading],
        values: list[Any],
        late: dict[tuple[int, int], list[float]],
    ) -> None:
        """Fold a poll's numeric good values one by one (mixed qualities, text, late polls)."""
        for i, (r, v) in enumerate(zip(group, values, strict=True)):
            if r.quality != Quality.GOOD or v.__class__ not in _NUMBERS:
                continue
            if not -_FLOAT_RANGE < v < _FLOAT_RANGE:  # inf, NaN, beyond a float
                continue
            if int(r.ts // 60 * 60) == current.minute:
                current.add_one(i, float(v), r.ts)
            else:
                _fold(late, sids[i], r.ts, float(v))

    def _finished_minutes(self, done: list[tuple[Any, ...]], finish: bool) -> None:
        """Move the minutes that are over (by the wall clock), or all at a stop, into `done`."""
        now_minute = int(self._wall() // 60 * 60)
        if not finish and now_minute == self._open_scan:
            return
        self._open_scan = now_minute
        open_ = self._open
        over = [s for s, m in open_.items() if finish or m.minute < now_minute]
        for stream_id in over:
            done.extend(open_.pop(stream_id).rows())

    def _stream(
        self, device: str, points: tuple[str, ...], created: list[int]
    ) -> tuple[int, tuple[int, ...]] | None:
        """The stream id and series ids of `points` of `device`; None when the device has too many."""
        key = (device, points)
        stream = self._streams.get(key)
        if stream is not None:
            return stream
        db = self._db
        text = json.dumps(list(points))
        row = db.execute(
            "SELECT id FROM stream WHERE device = ? AND points = ?", (device, text)
        ).fetchone()
        if row is None:
            if len(points) > 1:
                (count,) = db.execute(
                    "SELECT count(*) FROM stream WHERE device = ?", (device,)
                ).fetchone()
                if count >= MAX_STREAMS_PER_DEVICE:
                    return None
            if len(set(points)) < len(points):
                return None
            row = db.execute(
                "INSERT INTO stream (device, points) VALUES (?, ?) RETURNING id", (device, text)
            ).fetchone()
            created.append(row[0])
        stream = (row[0], tuple(self._series_id(device, p) for p in points))
        self._streams[key] = stream
        return stream

    def _series_id(self, device: str, point: str) -> int:
        """The point's series id (asked only when a stream is first met: not cached)."""
        key = (device, point)
        row = self._db.execute(
            "SELECT id FROM series WHERE device = ? AND point = ?", key
        ).fetchone()
        if row is None:
            row = self._db.execute(
                "INSERT INTO series (device, point) VALUES (?, ?) RETURNING id", key
            ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------------------ pruning

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete rows past their window, then the oldest rows while over `max_bytes`.

        Returns:
            How many raw rows (polls; readings of the first layout) and aggregate rows were deleted.
        """
        now = self._wall() if now is None else now
        deleted = {"raw": 0, "agg": 0}
        with self._db_lock:
            db = self._db
            cutoff = now - self.raw_window
            for table in self._raw_tables():
                deleted["raw"] += _delete_older(db, table, cutoff)
            if (
                self._legacy
                and db.execute(f"SELECT 1 FROM {LEGACY_RAW} LIMIT 1").fetchone() is None
            ):
                db.execute(f"DROP TABLE {LEGACY_RAW}")  # the first layout has aged out
                self._legacy = False
            minute_cutoff = int(now - self.aggregate_window)
            if not 0 <= minute_cutoff - self._agg_cutoff < AGG_PRUNE_STEP:
                # a statement per series (each a range of the primary key), so once an hour:
                # a year's window does not need the minute
                self._agg_cutoff = minute_cutoff
                for (sid,) in db.execute("SELECT id FROM series").fetchall():
                    deleted["agg"] += db.execute(
                        "DELETE FROM agg WHERE series = ? AND minute < ?", (sid, minute_cutoff)
                    ).rowcount
            # over the bound: the oldest raw rows (the last hour always stays), then the oldest
            # minutes — a year of aggregates must not wipe out the raw readings of today
            keep_raw = now - min(self.raw_window, MIN_RAW_KEPT)
            for _ in range(100):
                if self._used_bytes() <= self.max_bytes:
                    break
                for table in self._raw_tables():
                    (count,) = db.execute(
                        f"SELECT count(*) FROM {table} WHERE ts < ?", (keep_raw,)
                    ).fetchone()
                    if count > 0:
                        deleted["raw"] += db.execute(
                            f"DELETE FROM {table} WHERE rowid IN "
                            f"(SELECT rowid FROM {table} WHERE ts < ? ORDER BY rowid LIMIT ?)",
                            (keep_raw, max(1, count // 10)),
                        ).rowcount
                        break
                else:
                    oldest = db.execute("SELECT min(minute) FROM agg").fetchone()[0]
                    if oldest is None:
                        break
                    deleted["agg"] += db.execute(
                        "DELETE FROM agg WHERE minute < ?", (oldest + 86400,)
                    ).rowcount
            if deleted["raw"] or deleted["agg"]:
                db.execute("PRAGMA incremental_vacuum")
        return deleted

    def _raw_tables(self) -> tuple[str, ...]:
        """The tables of raw rows, the oldest first."""
        return (LEGACY_RAW, "poll") if self._legacy else ("poll",)

    def _used_bytes(self) -> int:
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    # ------------------------------------------------------------------------------ reading

    def query(
        self,
        device: str,
        point: str,
        start: float,
        end: float,
        max_points: int = 1000,
    ) -> list[dict[str, Any]]:
        """One point's history between `start` and `end` (epoch seconds), oldest first.

        Raw readings when the span lies inside the raw window and holds at most `max_points` of
        them: `{"ts", "value", "quality"}`. Otherwise aggregates in buckets of whole minutes, as
        many minutes per bucket as keep the answer within `max_points`:
        `{"ts" (bucket start), "min", "mean", "max", "last", "count"}` (numeric good readings only).
        What the writer has not committed yet (at most `commit_interval` old) is not included.
        """
        if end < start or max_points < 1:
            return []
        with self._db_lock:
            db = self._db
            row = db.execute(
                "SELECT id FROM series WHERE device = ? AND point = ?", (device, point)
            ).fetchone()
            if row is None:
                return []
            sid = row[0]
            places = self._places(device, point)
            if start >= self._wall() - self.raw_window:
                raw = self._raw(places, sid, start, end, max_points)
                if raw is not None:
                    return raw
            first_minute = math.floor(start / 60) * 60
            minutes = db.execute(
                "SELECT minute, min, max, sum, n, last, last_ts FROM agg "
                "WHERE series = ? AND minute BETWEEN ? AND ? ORDER BY minute",
                (sid, first_minute, end),
            ).fetchall()
            for stream_id, (i, _) in places.items():
                current = self._open.get(stream_id)
                if current is not None and first_minute <= current.minute <= end:
                    open_row = current.row(i)
                    if open_row is not None:
                        minutes = _with_open_minute(minutes, open_row)
        bucket = 60 * max(1, math.ceil((end - start) / 60 / max_points))
        out: list[dict[str, Any]] = []
        for minute, lo, hi, total, n, last, _ in minutes:
            ts = minute - minute % bucket
            if out and out[-1]["ts"] == ts:
                b = out[-1]
                b["min"], b["max"] = min(b["min"], lo), max(b["max"], hi)
                b["_sum"] += total
                b["count"] += n
                b["last"] = last
            else:
                out.append(
                    {"ts": ts, "min": lo, "max": hi, "_sum": total, "count": n, "last": last}
                )
        for b in out:
            b["mean"] = b.pop("_sum") / b["count"]
        return out

    def _places(self, device: str, point: str) -> dict[int, tuple[int, int]]:
        """The streams of `device` that hold `point`: the point's place, and the stream's size."""
        places: dict[int, tuple[int, int]] = {}
        for stream_id, points in self._db.execute(
            "SELECT id, points FROM stream WHERE device = ?", (device,)
        ):
            names = json.loads(points)
            if point in names:
                places[stream_id] = names.index(point), len(names)
        return places

    def _raw(
        self, where: dict[int, tuple[int, int]], sid: int, start: float, end: float, max_points: int
    ) -> list[dict[str, Any]] | None:
        """The point's raw readings in the span, or None when there are more than `max_points`.

        Args:
            where: the point's streams and its place in each (`_places`).
            sid: the point's series (for the first layout's rows).
        """
        db = self._db
        count = 0
        if where:
            streams = f"stream IN ({','.join('?' * len(where))})"
            inner_end = end - ROW_SPAN  # a row starting in [start, inner_end] lies all inside
            if inner_end >= start:
                count += db.execute(
                    f"SELECT count(*) FROM poll WHERE {streams} AND ts BETWEEN ? AND ?",
                    (*where, start, inner_end),
                ).fetchone()[0]
            edges = [("ts > ? AND ts < ?", start - ROW_SPAN, start)]
            if inner_end >= start:
                edges.append(("ts > ? AND ts <= ?", inner_end, end))
            else:
                edges.append(("ts >= ? AND ts <= ?", start, end))
            for between, lo, hi in edges:  # rows at the edges: the point's own time decides
                for stream_id, ts, times in db.execute(
                    f"SELECT stream, ts, times FROM poll WHERE {streams} AND {between}",
                    (*where, lo, hi),
                ):
                    i, n = where[stream_id]
                    if start <= _time_of(ts, times, i, n) <= end:
                        count += 1
        if self._legacy:
            count += db.execute(
                f"SELECT count(*) FROM {LEGACY_RAW} WHERE series = ? AND ts BETWEEN ? AND ?",
                (sid, start, end),
            ).fetchone()[0]
        if count > max_points:
            return None
        out: list[dict[str, Any]] = []
        if self._legacy:
            for ts, value, q in db.execute(
                f"SELECT ts, value, quality FROM {LEGACY_RAW} "
                "WHERE series = ? AND ts BETWEEN ? AND ? ORDER BY ts",
                (sid, start, end),
            ):
                out.append({"ts": ts, "value": value, "quality": QUALITY_NAME.get(q, "bad")})
        if where:
            for stream_id, ts, vals, quals, times in db.execute(
                f"SELECT stream, ts, vals, quals, times FROM poll WHERE {streams} "
                "AND ts > ? AND ts <= ? ORDER BY ts, rowid",
                (*where, start - ROW_SPAN, end),
            ):
                i, n = where[stream_id]
                t = _time_of(ts, times, i, n)
                if start <= t <= end:
                    quality = "good" if quals is None else QUALITY_NAME.get(int(quals[i]), "bad")
                    out.append({"ts": t, "value": _unpack(vals, n)[i], "quality": quality})
        out.sort(key=lambda x: x["ts"])  # stable: a poll's order (and the first layout's) on a tie
        return out

    def stats(self) -> dict[str, Any]:
        """For health and /metrics: written, dropped, buffered, error, last commit, file size."""
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        return {
            "rows_written": self.rows_written,
            "commits": self.commits,
            "dropped": self.dropped,
            "buffered": self._buffered,
            "error": self.error,
            "last_commit": self.last_commit,
            "file_bytes": size,
            "writer_running": self._thread is not None and self._thread.is_alive(),
        }


class _Minute:
    """One stream's current minute: per point the min, max, sum, count and last good number.

    Whole polls are folded a list at a time (`map` over the points, no loop in Python); a count
    common to all points (`polls`) plus one per point for the readings folded one by one.
    """

    __slots__ = (
        "counts",
        "hi",
        "last_ts",
        "lasts",
        "lo",
        "minute",
        "newest",
        "polls",
        "sids",
        "sums",
    )  # fmt: skip

    def __init__(self, minute: int, sids: tuple[int, ...]) -> None:
        n = len(sids)
        self.minute = minute
        self.sids = sids
        self.lo = [math.inf] * n
        self.hi = [-math.inf] * n
        self.sums = [0.0] * n
        self.polls = 0
        self.counts = [0] * n
        self.lasts: list[Any] = [math.nan] * n
        self.last_ts = [-math.inf] * n
        self.newest = -math.inf

    def add_all(self, values: list[Any], times: list[float], newest: float) -> None:
        """A poll of good finite numbers in this minute, no older than any folded so far."""
        self.lo = [a if a < b else b for a, b in zip(self.lo, values, strict=True)]
        self.hi = [a if a > b else b for a, b in zip(self.hi, values, strict=True)]
        self.sums = list(map(operator.add, self.sums, values))
        self.polls += 1
        self.lasts = values
        self.last_ts = times
        self.newest = newest

    def add_one(self, i: int, value: float, ts: float) -> None:
        if value < self.lo[i]:
            self.lo[i] = value
        if value > self.hi[i]:
            self.hi[i] = value
        self.sums[i] += value
        self.counts[i] += 1
        if ts >= self.last_ts[i]:
            self.lasts[i] = value
            self.last_ts[i] = ts
        if ts > self.newest:
            self.newest = ts

    def row(self, i: int) -> tuple[Any, ...] | None:
        """Point `i`'s minute as `(minute, min, max, sum, n, last, last_ts)`; None if empty."""
        n = self.polls + self.counts[i]
        if not n:
            return None
        return (self.minute, float(self.lo[i]), float(self.hi[i]), float(self.sums[i]), n,
                float(self.lasts[i]), self.last_ts[i])  # fmt: skip

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """The agg rows to upsert: `(series, minute, min, max, sum, n, last, last_ts)`."""
        for i, sid in enumerate(self.sids):
            row = self.row(i)
            if row is not None:
                yield (sid, *row)


def _packing(kinds: tuple[type, ...]) -> tuple[bytes, struct.Struct] | None:
    """The layout and packer of a poll of numbers (`d` a float, `q` an integer), cached per kinds."""
    try:
        return _packings[kinds]
    except KeyError:
        pass
    packing = None
    if all(kind in _NUMBERS for kind in kinds):
        layout = b"".join(_PACK_CODE[kind] for kind in kinds)
        packing = layout, struct.Struct(b"<" + layout)
    if len(_packings) >= 1024:  # kinds vary little (a device's points keep their types)
        _packings.clear()
    _packings[kinds] = packing
    return packing


@functools.lru_cache(maxsize=256)
def _times_struct(n: int) -> struct.Struct:
    """The packer of `n` readings' times."""
    return struct.Struct(f"<{n}d")


def _time_of(ts: float, times: bytes | None, i: int, n: int) -> float:
    """The time of a row's `i`-th reading: the row's own, or the `i`-th of `times`."""
    return ts if times is None else float(_times_struct(n).unpack(times)[i])


def _unpack(vals: str | bytes, n: int) -> list[Any] | tuple[Any, ...]:
    """A poll's values: JSON text, or `n` layout codes then the values packed (a poll of numbers)."""
    if isinstance(vals, str):
        return json.loads(vals)  # type: ignore[no-any-return]
    return struct.unpack(b"<" + vals[:n], vals[n:])


def _polls(batch: Sequence[Reading]) -> Iterator[Sequence[Reading]]:
    """A batch cut into polls: consecutive readings of one device within `ROW_SPAN` seconds (a
    point twice is cut apart when a poll is stored)."""
    first = batch[0]
    times = list(map(_TS, batch))
    if max(times) - min(times) < ROW_SPAN and list(map(_DEVICE, batch)).count(first.device) == len(
        batch
    ):
        yield batch  # a device's poll: the usual batch
        return
    group: list[Reading] = []
    seen: set[str] = set()
    lo = hi = first.ts
    for r in batch:
        if group and (
            r.device != group[0].device
            or r.point in seen
            or max(hi, r.ts) - min(lo, r.ts) >= ROW_SPAN
        ):
            yield group
            group, seen = [], set()
        if not group:
            lo = hi = r.ts
        group.append(r)
        seen.add(r.point)
        lo, hi = min(lo, r.ts), max(hi, r.ts)
    if group:
        yield group


def _delete_older(db: sqlite3.Connection, table: str, cutoff: float) -> int:
    """Delete `table`'s rows older than `cutoff`; rows arrive roughly in time order (by rowid)."""
    # everything before the first young row is old
    first = db.execute(
        f"SELECT rowid FROM {table} WHERE ts >= ? ORDER BY rowid LIMIT 1", (cutoff,)
    ).fetchone()
    if first is None:
        return db.execute(f"DELETE FROM {table} WHERE ts < ?", (cutoff,)).rowcount
    return db.execute(
        f"DELETE FROM {table} WHERE rowid < ? AND ts < ?", (first[0], cutoff)
    ).rowcount


def _with_open_minute(minutes: list[Any], current: tuple[Any, ...]) -> list[Any]:
    """The minutes read from disk with the one still in memory merged in, in order."""
    minute, lo, hi, total, n, last, last_ts = current
    out = [m for m in minutes if m[0] != minute]
    same = [m for m in minutes if m[0] == minute]
    for m in same:  # the minute was also written before (a restart, late readings)
        lo, hi, total, n = min(lo, m[1]), max(hi, m[2]), total + m[3], n + m[4]
        if m[6] > last_ts:
            last, last_ts = m[5], m[6]
    out.append((minute, lo, hi, total, n, last, last_ts))
    out.sort(key=lambda m: m[0])
    return out


def _fold(acc: dict[tuple[int, int], list[float]], sid: int, ts: float, value: float) -> None:
    """Fold one value into its minute: [min, max, sum, n, last, last_ts]."""
    minute = int(ts // 60 * 60)
    a = acc.get((sid, minute))
    if a is None:
        acc[(sid, minute)] = [value, value, value, 1, value, ts]
        return
    a[0] = min(a[0], value)
    a[1] = max(a[1], value)
    a[2] += value
    a[3] += 1
    if ts >= a[5]:
        a[4], a[5] = value, ts


# ------------------------------------------------------------------------------ the component


def history_component(gateway: Gateway) -> Component:
    """The `COMPONENTS` factory: feeds `gateway.history` and runs its writer thread."""
    return HistoryRecorder(gateway.history)


class HistoryRecorder(Component):
    """Hands every reading batch to the history store; starts and stops its writer thread."""

    name = "history"

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.store.add(batch)

    async def run(self) -> None:
        self.store.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.store.stop, CLOSE_TIMEOUT)

    def stats(self) -> dict[str, Any]:
        return self.store.stats()
