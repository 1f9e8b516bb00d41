"""A bounded, ordered queue on disk (SQLite) for store-and-forward: the InfluxDB export's buffer.

Why on disk: the uplink or the database may be away for an hour, and the box may lose power in the
middle of it. What was taken must still arrive, in order, with its own timestamps. Why bounded: the
box's disk is small and shared with the alarm journal. When the bound is reached the oldest
*droppable* entries (readings) go first, counted; entries that are not droppable (alarm events) are
never dropped, whatever the bound.

Entries are opaque bytes with a timestamp (the entry's own time, reported as the oldest entry's age),
a `droppable` flag and an item count. Why a count: SQLite costs about the same per row whatever the
row holds, so the exporter stores a *chunk* of lines per row (one insert, one peek, one delete for a
thousand lines instead of a thousand of each) and the queue still counts what matters — lines queued,
lines dropped — not rows. Writes come in batches (`put_many`: one transaction), the consumer `peek`s
the oldest entries up to a number of items and `ack`s them after the remote side accepted them: at
least once, never lost. The queue is owned by one thread at a time (the exporter hands calls to a
worker thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.storage.db import open_database, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS queue (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    droppable  INTEGER NOT NULL,
    ts         REAL NOT NULL,
    body       BLOB NOT NULL,
    items      INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS queue_droppable ON queue (droppable, seq);
"""

PAGE_SIZE = "page_size=65536"
"""For a new file (an existing one keeps its pages). A queued chunk is tens to hundreds of kB, kept
in a chain of overflow pages that the insert writes, the peek reads and the delete walks page by
page: with 64 kB pages instead of 4 kB the chain is 16 times shorter and the queue's CPU per line
falls by about 40 % (insert, peek and delete of 1,000-line chunks: 82 -> 47 ns per reading). The
page cache stays 2 MB (`cache_size` counts kB when negative, SQLite's default)."""

WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024
"""The write-ahead log is copied back into the file (and starts over) once it holds this much: SQLite
counts it in pages (1,000 by default), which with 64 kB pages would let the log, outside the queue's
bound, grow to 64 MB; 4 MB is what the default gives with 4 kB pages."""

ROW_OVERHEAD = 40
"""Bytes a row costs beyond its body (rowid, columns, index entry): for the size bound's arithmetic."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued entry: `seq` orders entries and is what `ack` takes; `items` is what it counts."""

    seq: int
    ts: float
    body: bytes
    droppable: bool
    items: int = 1


class DiskQueue:
    """An ordered SQLite queue with a size bound that only ever drops droppable entries.

    Args:
        path: the SQLite file (created with mode 0600).
        max_bytes: the bound on queued bytes (bodies plus `ROW_OVERHEAD` each).
        durable: `synchronous=FULL` (survives a power cut) instead of NORMAL (survives a crash).
    """

    def __init__(self, path: str | Path, max_bytes: int, *, durable: bool = False) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._db, _ = open_database(
            self.path, synchronous="FULL" if durable else "NORMAL", fresh_pragmas=(PAGE_SIZE,)
        )
        self._db.executescript(_SCHEMA)
        page = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._db.execute(f"PRAGMA wal_autocheckpoint={max(1, WAL_CHECKPOINT_BYTES // page)}")
        _add_items_column(self._db)
        count, size = self._db.execute(
            f"SELECT coalesce(sum(items), 0), coalesce(sum(length(body)), 0) + count(*) * "
            f"{ROW_OVERHEAD} FROM queue"
        ).fetchone()
        self._count: int = count
        self._bytes: int = size
        row = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        self._dropped: int = row[0] if row else 0
        self._closed = False

    # ------------------------------------------------------------------------------ writing

    def put_many(
        self, entries: Iterable[tuple[bytes, float, bool] | tuple[bytes, float, bool, int]]
    ) -> int:
        """Append `(body, ts, droppable[, items])` entries in one transaction; return the number of
        items dropped to keep the bound (an entry without `items` counts as one).

        Raises:
            sqlite3.Error: the write failed (e.g. the disk is full); nothing of this batch is queued.
        """
        rows = [(int(e[2]), e[1], e[0], e[3] if len(e) > 3 else 1) for e in entries]
        if not rows:
            return 0
        added = sum(len(body) for _, _, body, _ in rows) + len(rows) * ROW_OVERHEAD
        items = sum(n for _, _, _, n in rows)
        db = self._db
        with transaction(db):
            db.executemany(
                "INSERT INTO queue (droppable, ts, body, items) VALUES (?, ?, ?, ?)", rows
            )
            dropped, freed = self._trim(self._bytes + added)
            if dropped:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (self._dropped + dropped,),
                )
        self._count += items - dropped
        self._bytes += added - freed
        self._dropped += dropped
        return dropped

    def _trim(self, size: int) -> tuple[int, int]:
        """Delete the oldest droppable rows until `size` fits the bound (inside the transaction).

        Returns the items dropped and the bytes freed.
        """
        if size <= self.max_bytes:
            return 0, 0
        dropped = freed = 0
        while size - freed > self.max_bytes:
            rows = self._db.execute(
                "SELECT seq, length(body), items FROM queue WHERE droppable = 1 "
                "ORDER BY seq LIMIT 500"
            ).fetchall()
            if not rows:
                break  # only events left: they are kept beyond the bound
            last = rows[0][0]
            for seq, length, items in rows:
                last = seq
                dropped += items
                freed += length + ROW_OVERHEAD
                if size - freed <= self.max_bytes:
                    break
            self._db.execute("DELETE FROM queue WHERE droppable = 1 AND seq <= ?", (last,))
        return dropped, freed

    # ------------------------------------------------------------------------------ reading

    def peek(self, limit: int) -> list[Entry]:
        """The oldest entries, in order, holding at most `limit` items (at least one entry when
        the queue is not empty, however many items it holds), without removing them."""
        entries: list[Entry] = []
        total = 0
        cursor = self._db.execute("SELECT seq, ts, body, droppable, items FROM queue ORDER BY seq")
        try:
            for seq, ts, body, droppable, items in cursor:
                total += items
                if total > limit and entries:
                    break
                entries.append(Entry(seq, ts, bytes(body), bool(droppable), items))
                if total >= limit:
                    break
        finally:
            cursor.close()
        return entries

    def ack(self, seq: int) -> int:
        """Every entry up to and including `seq` was delivered: forget them (one transaction).

        Returns the items removed (fewer than were peeked if the bound dropped some meanwhile).
        """
        rows, count, size = self._db.execute(
            f"SELECT count(*), coalesce(sum(items), 0), coalesce(sum(length(body)), 0) + "
            f"count(*) * {ROW_OVERHEAD} FROM queue WHERE seq <= ?",
            (seq,),
        ).fetchone()
        if rows:
            self._db.execute("DELETE FROM queue WHERE seq <= ?", (seq,))
            self._count -= count
            self._bytes -= size
        return count

    # ------------------------------------------------------------------------------ reporting

    def __len__(self) -> int:
        """Items queued (lines, for the exporter), not rows."""
        return self._count

    @property
    def size_bytes(self) -> int:
        """Bytes queued, as the bound counts them."""
        return self._bytes

    @property
    def dropped(self) -> int:
        """Droppable items dropped because of the bound, since the queue file was created."""
        return self._dropped

    def oldest(self) -> float | None:
        """The timestamp of the oldest queued entry (its own time), or None when empty."""
        row = self._db.execute("SELECT ts FROM queue ORDER BY seq LIMIT 1").fetchone()
        return float(row[0]) if row else None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()


def _add_items_column(db: sqlite3.Connection) -> None:
    """A queue file from before chunked entries has no `items` column: every row there is one item."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(queue)")}
    if "items" not in columns:
        db.execute("ALTER TABLE queue ADD COLUMN items INTEGER NOT NULL DEFAULT 1")
