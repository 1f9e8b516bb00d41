"""Local history: every reading for a while, then 1-minute aggregates for a year — in bounded space.

The console's trends and `GET /api/v1/points/{device}/{point}/history` read from here; it needs no
database server. Its own file, `<storage>/history.sqlite3`, keeps the alarm journal's file small and
its writes (many, cheap) apart from the journal's (few, fsynced).

    raw(series, ts, value, quality)            every reading, for `raw_window` (default 48 h)
    agg(series, minute, min, max, sum, n, last) numeric good readings per minute, `aggregate_window`

Why a writer thread: the event loop must not wait on the disk. `add()` only appends to a buffer;
the thread (`fgw[history].writer`) commits the buffer every `commit_interval` in one transaction —
never a commit per row — and folds each reading into its minute's aggregate as it goes (an upsert
that merges min/max/sum/count, so restarts and late readings are fine). The same thread prunes in
the background: rows older than their window, then the oldest rows while the file is over
`max_bytes` (raw first, then aggregates), and gives freed pages back to the file system.

A full disk does not stop the gateway: the failed batch is counted in `dropped`, `error` says why
(the health check reports it), the failure is logged once and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
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
CREATE TABLE IF NOT EXISTS raw (
    series  INTEGER NOT NULL,
    ts      REAL NOT NULL,
    value,
    quality INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS raw_by_series ON raw (series, ts);
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

QUALITY_CODE = {Quality.GOOD: 0, Quality.BAD: 1, Quality.STALE: 2}
QUALITY_NAME = {code: str(quality) for quality, code in QUALITY_CODE.items()}

RAW_WINDOW = 48 * 3600.0
AGGREGATE_WINDOW = 365 * 86400.0
MAX_BYTES = 1024 * 1024 * 1024
MIN_RAW_KEPT = 3600.0
"""Raw readings younger than this are never pruned for space (aggregates go first)."""
CLOSE_TIMEOUT = 10.0
"""Seconds a stop may spend writing what is buffered."""
MAX_BUFFERED = 200_000
"""Readings waiting for the writer at most; beyond this the oldest batches are dropped (counted)."""


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
        self._db.executescript(_SCHEMA)
        self._db_lock = threading.Lock()  # the writer thread and queries share the connection
        self._series: dict[tuple[str, str], int] = {}
        self._buffer: list[Sequence[Reading]] = []
        self._buffered = 0
        self._cond = threading.Condition()
        self._added = 0  # batches added, ever
        self._written = 0  # batches handled by the writer (committed or dropped), ever
        self._stopping = False
        self._flush_requested = False
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
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
        """Wait until every batch added so far is written (or dropped); False on timeout."""
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
        self.stop()
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
                self.write_pending()
                return

    def write_pending(self) -> int:
        """Write everything buffered in one transaction (the writer calls this); rows written."""
        with self._cond:
            batches, self._buffer = self._buffer, []
            self._buffered = 0
        if not batches:
            return 0
        try:
            written = self._write(batches)
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

    def _write(self, batches: list[Sequence[Reading]]) -> int:
        rows: list[tuple[int, float, Any, int]] = []
        acc: dict[tuple[int, int], list[float]] = {}
        with self._db_lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for batch in batches:
                    for r in batch:
                        sid = self._series_id(r.device, r.point)
                        value = int(r.value) if isinstance(r.value, bool) else r.value
                        rows.append((sid, r.ts, value, QUALITY_CODE.get(r.quality, 1)))
                        if (
                            r.quality == Quality.GOOD
                            and isinstance(value, int | float)
                            and math.isfinite(value)
                        ):
                            _fold(acc, sid, r.ts, float(value))
                db.executemany(
                    "INSERT INTO raw (series, ts, value, quality) VALUES (?,?,?,?)", rows
                )
                db.executemany(
                    _UPSERT_AGG,
                    [(sid, minute, *a) for (sid, minute), a in acc.items()],
                )
                db.execute("COMMIT")
            except BaseException:
                self._series.clear()  # ids inserted in this transaction are gone
                db.execute("ROLLBACK")
                raise
        return len(rows)

    def _series_id(self, device: str, point: str) -> int:
        key = (device, point)
        sid = self._series.get(key)
        if sid is None:
            self._db.execute(
                "INSERT OR IGNORE INTO series (device, point) VALUES (?, ?)", (device, point)
            )
            sid = self._db.execute(
                "SELECT id FROM series WHERE device = ? AND point = ?", key
            ).fetchone()[0]
            self._series[key] = sid
        return sid

    # ------------------------------------------------------------------------------ pruning

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete rows past their window, then the oldest rows while over `max_bytes`.

        Returns:
            How many raw and aggregate rows were deleted.
        """
        now = self._wall() if now is None else now
        deleted = {"raw": 0, "agg": 0}
        with self._db_lock:
            db = self._db
            cutoff = now - self.raw_window
            # rows arrive roughly in time order: everything before the first young row is old
            first = db.execute(
                "SELECT rowid FROM raw WHERE ts >= ? ORDER BY rowid LIMIT 1", (cutoff,)
            ).fetchone()
            if first is None:
                deleted["raw"] += db.execute("DELETE FROM raw WHERE ts < ?", (cutoff,)).rowcount
            else:
                deleted["raw"] += db.execute(
                    "DELETE FROM raw WHERE rowid < ? AND ts < ?", (first[0], cutoff)
                ).rowcount
            minute_cutoff = int(now - self.aggregate_window)
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
                count = db.execute("SELECT count(*) FROM raw WHERE ts < ?", (keep_raw,)).fetchone()[
                    0
                ]
                if count > 0:
                    cut = max(1, count // 10)
                    deleted["raw"] += db.execute(
                        "DELETE FROM raw WHERE rowid IN "
                        "(SELECT rowid FROM raw WHERE ts < ? ORDER BY rowid LIMIT ?)",
                        (keep_raw, cut),
                    ).rowcount
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
            if start >= self._wall() - self.raw_window:
                count = db.execute(
                    "SELECT count(*) FROM raw WHERE series = ? AND ts BETWEEN ? AND ?",
                    (sid, start, end),
                ).fetchone()[0]
                if count <= max_points:
                    rows = db.execute(
                        "SELECT ts, value, quality FROM raw WHERE series = ? AND ts BETWEEN ? AND ? "
                        "ORDER BY ts",
                        (sid, start, end),
                    ).fetchall()
                    return [
                        {"ts": ts, "value": value, "quality": QUALITY_NAME.get(q, "bad")}
                        for ts, value, q in rows
                    ]
            minutes = db.execute(
                "SELECT minute, min, max, sum, n, last FROM agg "
                "WHERE series = ? AND minute BETWEEN ? AND ? ORDER BY minute",
                (sid, math.floor(start / 60) * 60, end),
            ).fetchall()
        bucket = 60 * max(1, math.ceil((end - start) / 60 / max_points))
        out: list[dict[str, Any]] = []
        for minute, lo, hi, total, n, last in minutes:
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
