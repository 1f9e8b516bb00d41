"""Local history: each point's changes and exact minute aggregates, written in few, large pieces.

The console's trends and `GET /api/v1/points/{device}/{point}/history` read from here; it needs no
database server. Its own file, `<storage>/history.sqlite3`, keeps the alarm journal's file small and
its writes (many, cheap) apart from the journal's (few, fsynced).

What is stored (`gateway.storage.deadband`): per point, a reading that moved beyond the point's
deadband from the last stored one, changed quality, or comes `heartbeat` after the last stored one;
and per point and minute the min, max, sum, count and last of *every* good number polled.

How it is laid out, for a flash card: a card wears by the pages rewritten, not by the bytes of
payload, so nothing is written per point in place. The writer thread commits every
`commit_interval` one row to `block` (everything of that interval, all points, in time order: the
end of the file is the only page it touches), and once an hour moves the blocks of the hour past
into `sample_chunk` and `minute_chunk`, one row per point and hour, keyed `(hour, series)` — again
appended at the end. A query looks its point up hour by hour. Sections are zlib-compressed
(`gateway.storage.series_codec`).

    series(id, device, point)
    block(id, hour, t0, t1, samples, minutes)     not yet compacted; `hour` of its commit
    sample_chunk(hour, series, data)              the point's stored samples, for `raw_window`
    minute_chunk(hour, series, data)              its minute aggregates, for `aggregate_window`

A chunk `hour` is that of the commit, so a chunk holds readings up to `LATE` seconds older than
its hour; queries look that far back. The current minute of each point is kept in memory (queries
add it) and written at the first commit after it ends. A power cut loses at most what was not yet
committed: the readings of the last `commit_interval` and the minutes still open.

A full disk does not stop the gateway: the failed interval is counted in `dropped`, `error` says
why (the health check reports it), the failure is logged once and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.components import Capabilities, Component, ComponentContext, History
from gateway.storage.db import open_database
from gateway.storage.deadband import HEARTBEAT, MinuteFold, SeriesFilter, merge_minutes
from gateway.storage.deadbands import site_deadbands
from gateway.storage.series_codec import (
    Minute,
    Sample,
    Section,
    decode_minutes,
    decode_samples,
    encode_minutes,
    encode_samples,
    pack_section,
)
from ground.model import Quality, Reading

if TYPE_CHECKING:
    from config.site import Site

log = logging.getLogger("fgw.history")

_SCHEMA = """
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

RAW_WINDOW = 48 * 3600.0
AGGREGATE_WINDOW = 365 * 86400.0
MAX_BYTES = 1024 * 1024 * 1024
COMMIT_INTERVAL = 30.0
"""Seconds between the writer's commits by default: what a power cut may lose of the readings."""
MIN_RAW_KEPT = 3600.0
"""Stored samples younger than this are never pruned for space (aggregates go first)."""
CACHE_KIB = 1024
"""The connection's page cache, KiB."""
INGEST_INTERVAL = 1.0
"""Seconds between the writer's folds of the readings waiting (between commits: memory stays
small whatever the commit interval)."""
CLOSE_TIMEOUT = 10.0
"""Seconds a stop may spend writing what is buffered."""
MAX_BUFFERED = 200_000
"""Readings waiting for the writer at most; beyond this the oldest batches are dropped (counted)."""
HOUR = 3600
COMPACT_SLICE = 1000
"""Series compacted per pass over an hour's blocks (bounds the memory of a compaction)."""
LATE = 3600.0
"""Seconds a chunk's readings may be older than its hour (the commit's): queries look this far."""
_FLOAT_RANGE = 1.7e308
"""Integers beyond a float's range are stored but not aggregated (float() would overflow)."""
_NUMBERS = frozenset((float, int, bool))

DeadbandOf = Callable[[str, str], "float | None"]
"""A point's deadband by `(device, point)`; None stores every reading of it."""


def _every_reading(_device: str, _point: str) -> float | None:
    return None


class _Done:
    """Minutes done, encoded as they end (a row each is ~30 bytes, not a tuple of floats)."""

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


class _Series:
    """One point as the writer knows it: its id, what it stored last, its open minute."""

    __slots__ = ("filter", "fold", "seen", "sid")

    def __init__(self, sid: int, filt: SeriesFilter) -> None:
        self.sid = sid
        self.filter = filt
        self.fold: MinuteFold | None = None
        self.seen = -math.inf  # the newest reading's time


class HistoryStore:
    """Stored samples and 1-minute aggregates of one site, in `<folder>/history.sqlite3`.

    Args:
        folder: the storage folder.
        raw_window: seconds stored samples are kept.
        aggregate_window: seconds 1-minute aggregates are kept.
        max_bytes: the bound on the file's used pages; the oldest rows go first when over it.
        wall: the wall clock (for windows, minutes and hours), injectable for tests.
        commit_interval: seconds between the writer's commits.
        prune_interval: seconds between the writer's prunes.
        deadband: each point's deadband (`gateway.storage.deadband`); default: every reading.
        heartbeat: seconds after which an unmoved reading is stored anyway.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        raw_window: float = RAW_WINDOW,
        aggregate_window: float = AGGREGATE_WINDOW,
        max_bytes: int = MAX_BYTES,
        wall: Callable[[], float] = time.time,
        commit_interval: float = COMMIT_INTERVAL,
        prune_interval: float = 60.0,
        deadband: DeadbandOf = _every_reading,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "history.sqlite3"
        self.raw_window = raw_window
        self.aggregate_window = aggregate_window
        self.max_bytes = max_bytes
        self.commit_interval = commit_interval
        self.prune_interval = prune_interval
        self.deadband = deadband
        self.heartbeat = heartbeat
        self._wall = wall
        # FULL: each commit is on the card when it returns, so a power cut loses at most one
        # commit interval (NORMAL would wait for the next checkpoint, minutes at a few KB/s)
        self._db, _ = open_database(self.path, synchronous="FULL")
        self._db.execute("PRAGMA journal_size_limit=8388608")
        self._db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        self._db_lock = threading.Lock()  # the writer thread and queries share the connection
        self._series: dict[tuple[str, str], _Series] = {}
        self._open_scan: int | None = None  # the wall minute of the last scan for finished ones
        self._buffer: list[Sequence[Reading]] = []
        self._buffered = 0
        # ingested, not yet committed: the samples to store and the minutes done
        self._pending_samples: dict[int, list[Sample]] = {}
        self._writing: dict[int, list[Sample]] = {}  # taken from pending, not yet committed
        self._pending_minutes = _Done()
        self._pending_readings = 0
        self._pending_batches = 0
        self._created: list[tuple[str, str]] = []  # series inserted by the ingest under way
        self._cond = threading.Condition()
        self._added = 0  # batches added, ever
        self._written = 0  # batches handled by the writer (committed or dropped), ever
        self._stopping = False
        self._flush_requested = False
        self._thread: threading.Thread | None = None
        self._last_prune = -math.inf
        self.rows_written = 0  # readings handled (stored or folded into a minute)
        self.samples_stored = 0
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
            commit_interval=history.commit_interval,
            heartbeat=history.heartbeat,
            deadband=site_deadbands(site),
        )

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
        next_commit = time.monotonic() + self.commit_interval
        while True:
            with self._cond:
                wake = min(time.monotonic() + INGEST_INTERVAL, next_commit)
                while not (self._stopping or self._flush_requested):
                    left = wake - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                flush = self._flush_requested
                self._flush_requested = False
                stopping = self._stopping
            if flush or stopping or time.monotonic() >= next_commit:
                # paced: one transaction per interval, not per batch
                next_commit = time.monotonic() + self.commit_interval
                self.write_pending()
            else:
                self._ingest()  # the readings waiting become samples and minutes: small
            now = self._wall()
            if now - self._last_prune >= self.prune_interval:
                self._last_prune = now
                try:
                    self.compact(now)
                    self.prune(now)
                except sqlite3.Error as exc:
                    self._failed(exc)
            if stopping:
                self.write_pending(finish=True)
                return

    def _ingest(self) -> None:
        """Fold the batches waiting into samples to store and minutes done (no transaction)."""
        with self._cond:
            batches, self._buffer = self._buffer, []
            self._buffered = 0
        if not batches:
            return
        try:
            with self._db_lock:
                # one transaction for the points first met (a start meets them all at once)
                self._db.execute("BEGIN")
                try:
                    for batch in batches:
                        self._pending_readings += len(batch)
                        for r in batch:
                            self._take(r, self._pending_samples, self._pending_minutes)
                finally:
                    self._db.execute("COMMIT")
        except sqlite3.Error as exc:  # a new point's series could not be written
            self._failed(exc)
            self.dropped += sum(map(len, batches))
            with self._db_lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                for key in self._created:  # their rows are gone: met again, written again
                    self._series.pop(key, None)
        finally:
            self._created.clear()
            self._pending_batches += len(batches)

    def write_pending(self, finish: bool = False) -> int:
        """Write everything buffered in one transaction (the writer calls this); readings handled.

        Args:
            finish: also write the minutes still open in memory (at a stop).
        """
        self._ingest()
        batches, readings = self._pending_batches, self._pending_readings
        self._pending_batches = self._pending_readings = 0
        with self._db_lock:  # a query sees each sample pending, being written or stored: once
            samples, done = self._pending_samples, self._pending_minutes
            self._pending_samples, self._pending_minutes = {}, _Done()
            self._writing = samples
        if not (samples or done or finish or self._minute_turned()):
            self._handled(batches)
            return readings
        try:
            wrote = self._write(samples, done, finish)
        except sqlite3.Error as exc:
            self._failed(exc)
            self.dropped += readings
            readings = 0
        else:
            if self.error is not None and wrote:
                log.info("history: writing again (%s)", self.path)
                self.error = None
            self.rows_written += readings
            self.commits += 1
            self.last_commit = self._wall()
        self._handled(batches)
        return readings

    def _handled(self, batches: int) -> None:
        with self._cond:
            self._written += batches
            self._cond.notify_all()

    def _failed(self, exc: sqlite3.Error) -> None:
        if self.error is None:
            log.error(
                "history: cannot write %s: %s (readings are dropped until it can)", self.path, exc
            )
        self.error = str(exc)

    def _minute_turned(self) -> bool:
        return int(self._wall() // 60 * 60) != self._open_scan

    def _write(self, samples: dict[int, list[Sample]], done: _Done, finish: bool) -> bool:
        """Commit a block of `samples` and `done` minutes (and those the wall clock ended);
        False when there was nothing to write."""
        with self._db_lock:
            try:
                self._finished_minutes(done, finish)
                if not (samples or done):
                    return False
                db = self._db
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._insert_block(samples, done)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                self._writing = {}  # stored, or dropped and counted: no longer pending
        self.samples_stored += sum(map(len, samples.values()))
        return True

    def _take(
        self,
        r: Reading,
        samples: dict[int, list[Sample]],
        done: _Done,
    ) -> None:
        """One reading: folded into its minute (a good number), stored when its filter keeps it."""
        key = (r.device, r.point)
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        ts, value = r.ts, r.value
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
                self._fold_other(series, ts, value, done)
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
            return
        if filt.keep(ts, quality, value):
            samples.setdefault(series.sid, []).append((ts, quality, value))

    @staticmethod
    def _fold_other(series: _Series, ts: float, value: float, done: _Done) -> None:
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

    def _new_series(self, key: tuple[str, str]) -> _Series:
        """A point first met since the start: its series row (written at once, if new)."""
        row = self._db.execute(
            "SELECT id FROM series WHERE device = ? AND point = ?", key
        ).fetchone()
        if row is None:
            row = self._db.execute(
                "INSERT INTO series (device, point) VALUES (?, ?) RETURNING id", key
            ).fetchone()
            self._created.append(key)
        series = _Series(int(row[0]), SeriesFilter(self.deadband(*key), self.heartbeat))
        self._series[key] = series
        return series

    def _finished_minutes(self, done: _Done, finish: bool) -> None:
        """Move the minutes that are over (by the wall clock), or all at a stop, into `done`."""
        now_minute = int(self._wall() // 60 * 60)
        if not finish and now_minute == self._open_scan:
            return
        self._open_scan = now_minute
        for series in self._series.values():
            fold = series.fold
            if fold is not None and (finish or fold.minute < now_minute):
                done.add(series.sid, fold.row())
                series.fold = None

    def _insert_block(self, samples: dict[int, list[Sample]], done: _Done) -> None:
        times = [s[0] for rows in samples.values() for s in rows]
        if done:
            times += [done.first, done.last + 60]
        hour = int(self._wall() // HOUR * HOUR)
        self._db.execute(
            "INSERT INTO block (hour, t0, t1, samples, minutes) VALUES (?, ?, ?, ?, ?)",
            (
                hour,
                min(times),
                max(times),
                pack_section({sid: encode_samples(rows) for sid, rows in samples.items()})
                if samples
                else None,
                pack_section(done.records) if done else None,
            ),
        )

    # ------------------------------------------------------------------------------ compacting

    def compact(self, now: float | None = None) -> int:
        """Move the blocks of hours past into one chunk row per point and hour; rows written."""
        now = self._wall() if now is None else now
        current = int(now // HOUR * HOUR)
        written = 0
        with self._db_lock:
            db = self._db
            hours = [h for (h,) in db.execute("SELECT DISTINCT hour FROM block WHERE hour < ?",
                                              (current,))]  # fmt: skip
            if not hours:
                return 0
            db.execute("BEGIN IMMEDIATE")
            try:
                for hour in hours:
                    written += self._compact_hour(hour)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return written

    def _compact_hour(self, hour: int) -> int:
        """Move one hour's blocks into chunk rows, `COMPACT_SLICE` series at a time: an hour of
        a large site does not sit in memory at once (its blocks are read once per slice)."""
        db = self._db
        (top,) = db.execute("SELECT max(id) FROM series").fetchone()
        written = 0
        for low in range(0, (top or 0) + 1, COMPACT_SLICE):
            written += self._compact_slice(hour, low, low + COMPACT_SLICE)
        db.execute("DELETE FROM block WHERE hour = ?", (hour,))
        return written

    def _compact_slice(self, hour: int, low: int, high: int) -> int:
        db = self._db
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

    # ------------------------------------------------------------------------------ pruning

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete rows past their window, then the oldest rows while over `max_bytes`.

        Returns:
            How many sample rows and aggregate rows (a point's hour each) were deleted.
        """
        now = self._wall() if now is None else now
        deleted = {"raw": 0, "agg": 0}
        with self._db_lock:
            db = self._db
            raw_hour = _hour_before(now - self.raw_window)
            deleted["raw"] += db.execute(
                "DELETE FROM sample_chunk WHERE hour < ?", (raw_hour,)
            ).rowcount
            agg_hour = _hour_before(now - self.aggregate_window)
            deleted["agg"] += db.execute(
                "DELETE FROM minute_chunk WHERE hour < ?", (agg_hour,)
            ).rowcount
            # over the bound: the oldest samples (the last hour always stays), then the oldest
            # minutes — a year of aggregates must not wipe out the samples of today
            keep_raw = _hour_before(now - min(self.raw_window, MIN_RAW_KEPT))
            for _ in range(1000):
                if self._used_bytes() <= self.max_bytes:
                    break
                oldest = db.execute(
                    "SELECT min(hour) FROM sample_chunk WHERE hour < ?", (keep_raw,)
                ).fetchone()[0]
                if oldest is not None:
                    deleted["raw"] += db.execute(
                        "DELETE FROM sample_chunk WHERE hour = ?", (oldest,)
                    ).rowcount
                    continue
                oldest = db.execute("SELECT min(hour) FROM minute_chunk").fetchone()[0]
                if oldest is None:
                    break
                deleted["agg"] += db.execute(
                    "DELETE FROM minute_chunk WHERE hour = ?", (oldest,)
                ).rowcount
        return deleted

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

        Stored samples when the span lies inside the raw window and holds at most `max_points` of
        them: `{"ts", "value", "quality"}`; each holds until the next (within the point's
        deadband of every reading), and with a deadband the value held at `start` and up to the
        last reading are given at those times. Otherwise aggregates in buckets of whole minutes,
        as many minutes per bucket as keep the answer within `max_points`:
        `{"ts" (bucket start), "min", "mean", "max", "last", "count"}` (numeric good readings only).
        Samples the writer holds but has not committed yet are included (the last seconds of a
        trend are not held back by `commit_interval`).
        """
        if end < start or max_points < 1:
            return []
        with self._db_lock:
            row = self._db.execute(
                "SELECT id FROM series WHERE device = ? AND point = ?", (device, point)
            ).fetchone()
            if row is None:
                return []
            sid = row[0]
            series = self._series.get((device, point))
            now = self._wall()
            if start >= now - self.raw_window:
                raw = self._raw(sid, series, start, end, max_points)
                # none older than the hour always kept: pruned for space, the minutes may have it
                if raw is not None and (raw or start >= now - MIN_RAW_KEPT):
                    return raw
            minutes = self._minutes(sid, start, end)
            fold = series.fold if series is not None else None
            if fold is not None and fold.n and math.floor(start / 60) * 60 <= fold.minute <= end:
                minutes = merge_minutes([*minutes, fold.row()])
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

    def minutes(self, device: str, point: str, start: float, end: float) -> list[Minute]:
        """One point's exact 1-minute aggregates whose minute starts in [start, end], oldest first:
        `(minute, min, max, sum, count, last, last_ts)`, whatever the raw window (for figures that
        must not depend on deadbands, e.g. a night's mean power). Minutes finished but not yet
        committed are not included; the open minute is."""
        if end < start:
            return []
        with self._db_lock:
            row = self._db.execute(
                "SELECT id FROM series WHERE device = ? AND point = ?", (device, point)
            ).fetchone()
            if row is None:
                return []
            minutes = self._minutes(row[0], start, end)
            series = self._series.get((device, point))
            fold = series.fold if series is not None else None
            if fold is not None and fold.n and math.floor(start / 60) * 60 <= fold.minute <= end:
                minutes = merge_minutes([*minutes, fold.row()])
        return [m for m in minutes if start <= m[0] <= end]

    def _chunks(self, table: str, sid: int, start: float, end: float) -> list[bytes]:
        """The point's chunk data (decompressed) of the hours that may hold [start, end]."""
        out = []
        first = int(start // HOUR * HOUR)
        last = int((end + LATE) // HOUR * HOUR)
        for hour in range(first, last + 1, HOUR):
            row = self._db.execute(
                f"SELECT data FROM {table} WHERE hour = ? AND series = ?", (hour, sid)
            ).fetchone()
            if row is not None:
                out.append(zlib.decompress(row[0]))
        return out

    def _blocks(self, column: str, sid: int, start: float, end: float) -> list[bytes]:
        """The point's records in the blocks not yet compacted that overlap [start, end]."""
        out = []
        for (blob,) in self._db.execute(
            f"SELECT {column} FROM block WHERE t1 >= ? AND t0 <= ? AND {column} IS NOT NULL "
            "ORDER BY id",
            (start, end),
        ):
            records = Section(blob).records(sid)
            if records:
                out.append(records)
        return out

    def _samples(self, sid: int, start: float, end: float) -> list[Sample]:
        samples: list[Sample] = []
        for data in self._chunks("sample_chunk", sid, start, end):
            samples += decode_samples(data)
        for data in self._blocks("samples", sid, start, end):
            samples += decode_samples(data)
        for pending in (self._writing.get(sid), self._pending_samples.get(sid)):
            if pending:  # not committed yet: a trend shows a step of the last seconds at once
                samples += [sample for sample in pending if start <= sample[0] <= end]
        samples.sort(key=_sample_time)  # stable: a poll's order on a tie
        return samples

    def _raw(
        self, sid: int, series: _Series | None, start: float, end: float, max_points: int
    ) -> list[dict[str, Any]] | None:
        """The point's stored samples in the span, or None when there are more than
        `max_points`; with a deadband, the value held at `start` and at the last reading too."""
        held = series is not None and series.filter.deadband is not None
        lookback = max(self.heartbeat, LATE) if held else 0.0
        samples = self._samples(sid, start - lookback, end)
        inside = [s for s in samples if start <= s[0] <= end]
        if len(inside) > max_points:
            return None
        out = [
            {"ts": ts, "value": value, "quality": QUALITY_NAME.get(q, "bad")}
            for ts, q, value in inside
        ]
        if not held or series is None:
            return out
        before = [s for s in samples if s[0] < start]
        if before and (not inside or inside[0][0] > start) and len(out) < max_points:
            _, q, value = before[-1]
            out.insert(0, {"ts": start, "value": value, "quality": QUALITY_NAME.get(q, "bad")})
        if out and len(out) < max_points:
            last = out[-1]
            until = min(end, series.seen)
            if until > last["ts"] and self.last_commit is not None:
                out.append({**last, "ts": until})
        return out

    def _minutes(self, sid: int, start: float, end: float) -> list[Minute]:
        first_minute = math.floor(start / 60) * 60
        rows: list[Minute] = []
        for data in self._chunks("minute_chunk", sid, start, end):
            rows += decode_minutes(data)
        for data in self._blocks("minutes", sid, start, end):
            rows += decode_minutes(data)
        return merge_minutes([m for m in rows if first_minute <= m[0] <= end])

    def stats(self) -> dict[str, Any]:
        """For health and /metrics: handled, stored, dropped, buffered, error, last commit, size."""
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        return {
            "rows_written": self.rows_written,
            "samples_stored": self.samples_stored,
            "commits": self.commits,
            "dropped": self.dropped,
            "buffered": self._buffered,
            "error": self.error,
            "last_commit": self.last_commit,
            "commit_interval": self.commit_interval,
            "file_bytes": size,
            "writer_running": self._thread is not None and self._thread.is_alive(),
        }


def _sample_time(sample: Sample) -> float:
    return sample[0]


def _hour_before(ts: float) -> int:
    """The start of the hour holding `ts`: a chunk of an earlier hour holds only readings before
    it (a reading is committed in its own hour or later)."""
    return int(ts // HOUR * HOUR)


# ------------------------------------------------------------------------------ the component


def build(context: ComponentContext, capabilities: Capabilities) -> Component:
    """The `gateway.registry` factory: feeds the gateway's history store, runs its writer thread."""
    return HistoryRecorder(capabilities.history)


class HistoryRecorder(Component):
    """Hands every reading batch to the history store; starts and stops its writer thread."""

    name = "history"

    def __init__(self, store: History) -> None:
        self.store = store

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.store.add(batch)

    async def run(self) -> None:
        self.store.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.store.stop, CLOSE_TIMEOUT)

    def stats(self) -> dict[str, Any]:
        return self.store.stats()
