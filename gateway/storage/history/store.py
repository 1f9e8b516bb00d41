"""The history store: its writer thread, the buffers between it and the readers, and its API.

`add` never blocks on the disk: batches wait in memory (at most `MAX_BUFFERED` readings, the oldest
dropped and counted beyond it). The writer thread (`fgw[history].writer`) folds them every
`INGEST_INTERVAL` into samples to store and minutes done (`rows`), commits one block of them every
`commit_interval` (`layout`), and every `prune_interval` compacts the hours past (`compact`) and
prunes (`prune`). Queries (`query`) share the connection under a lock and see what is pending too.

A power cut loses at most what was not yet committed: the readings of the last `commit_interval`
and the minutes still open. A full disk does not stop the gateway: the failed interval is counted
in `dropped`, `error` says why (the health check reports it), the failure is logged once and the
recovery once.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.storage.deadband import HEARTBEAT, SeriesFilter, merge_minutes
from gateway.storage.deadbands import site_deadbands
from gateway.storage.history.compact import compact_before
from gateway.storage.history.layout import hour_of, insert_block, open_history, used_bytes
from gateway.storage.history.minutes import MinutesDone, Series, finish_minutes
from gateway.storage.history.prune import MIN_RAW_KEPT, prune_file
from gateway.storage.history.query import in_buckets, point_minutes, raw_answer
from gateway.storage.history.rows import SeriesKey, take
from gateway.storage.series_codec import Minute, Sample
from ground.model import Reading

if TYPE_CHECKING:
    from config.site import Site

log = logging.getLogger("fgw.history")

RAW_WINDOW = 48 * 3600.0
AGGREGATE_WINDOW = 365 * 86400.0
MAX_BYTES = 1024 * 1024 * 1024
COMMIT_INTERVAL = 30.0
"""Seconds between the writer's commits by default: what a power cut may lose of the readings."""
INGEST_INTERVAL = 1.0
"""Seconds between the writer's folds of the readings waiting (between commits: memory stays
small whatever the commit interval)."""
MAX_BUFFERED = 200_000
"""Readings waiting for the writer at most; beyond this the oldest batches are dropped (counted)."""

DeadbandOf = Callable[[str, str], "float | None"]
"""A point's deadband by `(device, point)`; None stores every reading of it."""


def _every_reading(_device: str, _point: str) -> float | None:
    return None


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
        self._db = open_history(self.path)
        self._db_lock = threading.Lock()  # the writer thread and queries share the connection
        self._series: dict[SeriesKey, Series] = {}
        self._open_scan: int | None = None  # the wall minute of the last scan for finished ones
        self._buffer: list[Sequence[Reading]] = []
        self._buffered = 0
        # ingested, not yet committed: the samples to store and the minutes done
        self._pending_samples: dict[int, list[Sample]] = {}
        self._writing: dict[int, list[Sample]] = {}  # taken from pending, not yet committed
        self._pending_minutes = MinutesDone()
        self._pending_readings = 0
        self._pending_batches = 0
        self._created: list[SeriesKey] = []  # series inserted by the ingest under way
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
                        take(
                            batch,
                            self._series,
                            self._new_series,
                            self._pending_samples,
                            self._pending_minutes,
                        )
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
            self._pending_samples, self._pending_minutes = {}, MinutesDone()
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

    def _write(self, samples: dict[int, list[Sample]], done: MinutesDone, finish: bool) -> bool:
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
                    insert_block(
                        db, hour_of(self._wall()), samples, done.records, done.first, done.last
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            finally:
                self._writing = {}  # stored, or dropped and counted: no longer pending
        self.samples_stored += sum(map(len, samples.values()))
        return True

    def _new_series(self, key: SeriesKey) -> Series:
        """A point first met since the start: its series row (written at once, if new)."""
        row = self._db.execute(
            "SELECT id FROM series WHERE device = ? AND point = ?", key
        ).fetchone()
        if row is None:
            row = self._db.execute(
                "INSERT INTO series (device, point) VALUES (?, ?) RETURNING id", key
            ).fetchone()
            self._created.append(key)
        series = Series(int(row[0]), SeriesFilter(self.deadband(*key), self.heartbeat))
        self._series[key] = series
        return series

    def _finished_minutes(self, done: MinutesDone, finish: bool) -> None:
        """Move the minutes that are over (by the wall clock), or all at a stop, into `done`."""
        now_minute = int(self._wall() // 60 * 60)
        if not finish and now_minute == self._open_scan:
            return
        self._open_scan = now_minute
        finish_minutes(self._series.values(), now_minute, done, finish=finish)

    # ------------------------------------------------------------------------------ tidying

    def compact(self, now: float | None = None) -> int:
        """Move the blocks of hours past into one chunk row per point and hour; rows written."""
        now = self._wall() if now is None else now
        with self._db_lock:
            return compact_before(self._db, hour_of(now))

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete rows past their window, then the oldest rows while over `max_bytes`.

        Returns:
            How many sample rows and aggregate rows (a point's hour each) were deleted.
        """
        now = self._wall() if now is None else now
        with self._db_lock:
            return prune_file(
                self._db,
                now,
                raw_window=self.raw_window,
                aggregate_window=self.aggregate_window,
                max_bytes=self.max_bytes,
            )

    def _used_bytes(self) -> int:
        return used_bytes(self._db)

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
                samples = raw_answer(
                    self._db,
                    sid,
                    series,
                    start,
                    end,
                    max_points,
                    heartbeat=self.heartbeat,
                    committed=self.last_commit is not None,
                    pending=(self._writing.get(sid), self._pending_samples.get(sid)),
                )
                # none older than the hour always kept: pruned for space, the minutes may have it
                if samples is not None and (samples or start >= now - MIN_RAW_KEPT):
                    return samples
            minutes = point_minutes(self._db, sid, start, end)
            fold = series.fold if series is not None else None
            if fold is not None and fold.n and math.floor(start / 60) * 60 <= fold.minute <= end:
                minutes = merge_minutes([*minutes, fold.row()])
        return in_buckets(minutes, start, end, max_points)

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
            minutes = point_minutes(self._db, row[0], start, end)
            series = self._series.get((device, point))
            fold = series.fold if series is not None else None
            if fold is not None and fold.n and math.floor(start / 60) * 60 <= fold.minute <= end:
                minutes = merge_minutes([*minutes, fold.row()])
        return [m for m in minutes if start <= m[0] <= end]

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
