"""The publisher's outbox on disk: alarm and ticket events survive a broker outage *and* a crash.

`MemoryOutbox` keeps order and bounds readings, but a power cut in the middle of a broker outage
would lose every event queued meanwhile. `SqliteOutbox` keeps the same contract (`tests/test_outbox.py`
runs against both) and writes the messages that must not be lost — alarms and events — to
`<storage>/outbox.sqlite3` (WAL, `synchronous=FULL`), removing them only after the broker's PUBACK.
On start it loads what a previous run left, so the next connection delivers it first, in order.

Readings (`droppable`) stay in memory: they are bounded, latest-value messages, and replaying an
hour-old "latest value" after a restart would mislead; InfluxDB export has its own disk queue.

Why a memory mirror as well: the publisher peeks on every send, and a full disk must not silence
alarms. Every message lives in memory; the disk is the durability log. Writes are batched: `put`
schedules one commit for the end of the current event-loop iteration (a storm of transitions is one
fsync, not one per message), and `peek` commits first, so nothing is ever sent before it is on disk.
When the disk refuses a write, the messages stay in memory and are delivered anyway; `error` says
why, and the write is retried at the next commit.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import sqlite3
from collections import deque
from pathlib import Path

from gateway.outbox import OutMessage
from gateway.storage.db import open_database, transaction

log = logging.getLogger("fgw.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL,
    qos      INTEGER NOT NULL,
    retain   INTEGER NOT NULL
);
"""


class SqliteOutbox:
    """An `Outbox` whose alarms and events are on disk until acknowledged.

    Args:
        path: the SQLite file (created 0600; its folder 0700).
        max_droppable: droppable messages (readings) kept in memory at most; the oldest go first.
    """

    def __init__(self, path: str | Path, max_droppable: int = 1000) -> None:
        if max_droppable < 1:
            raise ValueError("max_droppable must be at least 1")
        self.path = Path(path)
        self.max_droppable = max_droppable
        self._db, _ = open_database(self.path)
        self._db.executescript(_SCHEMA)
        rows = self._db.execute(
            "SELECT seq, topic, payload, qos, retain FROM outbox ORDER BY seq"
        ).fetchall()
        self._kept: deque[OutMessage] = deque(
            OutMessage(seq, topic, bytes(payload), qos, bool(retain))
            for seq, topic, payload, qos, retain in rows
        )
        self.restored = len(self._kept)
        self._droppable: deque[OutMessage] = deque()
        self._seq = itertools.count((rows[-1][0] if rows else 0) + 1)
        self._dropped = 0
        self._unsaved: list[OutMessage] = []
        self._acked_upto = 0  # acknowledged on the wire, not yet deleted on disk
        self._commit_scheduled = False
        self.error: str | None = None
        self.write_failures = 0
        self._closed = False

    # ------------------------------------------------------------------------------ Outbox

    def put(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, droppable: bool = False
    ) -> None:
        message = OutMessage(next(self._seq), topic, payload, qos, retain, droppable)
        if droppable:
            if len(self._droppable) >= self.max_droppable:
                self._droppable.popleft()
                self._dropped += 1
            self._droppable.append(message)
            return
        self._kept.append(message)
        self._unsaved.append(message)
        self._schedule_commit()

    def peek(self, limit: int) -> list[OutMessage]:
        self.commit()
        heads = (itertools.islice(q, limit) for q in (self._kept, self._droppable))
        return list(itertools.islice(heapq.merge(*heads, key=lambda m: m.seq), limit))

    def ack(self, seq: int) -> None:
        for queue in (self._kept, self._droppable):
            while queue and queue[0].seq <= seq:
                queue.popleft()
        self._unsaved = [m for m in self._unsaved if m.seq > seq]
        self._acked_upto = max(self._acked_upto, seq)
        self._schedule_commit()

    def __len__(self) -> int:
        return len(self._kept) + len(self._droppable)

    @property
    def dropped(self) -> int:
        return self._dropped

    # ------------------------------------------------------------------------------ disk

    def _schedule_commit(self) -> None:
        if self._commit_scheduled or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.commit()  # no event loop (tools, tests): write through
            return
        self._commit_scheduled = True
        loop.call_soon(self.commit)

    def commit(self) -> bool:
        """Write unsaved messages and forget acknowledged ones, in one transaction.

        Returns:
            True when the disk holds what it should; False when the write failed (kept in memory,
            retried at the next commit, reported in `error`).
        """
        self._commit_scheduled = False
        if self._closed or (not self._unsaved and not self._acked_upto):
            return self.error is None
        db = self._db
        try:
            with transaction(db):
                db.executemany(
                    "INSERT OR IGNORE INTO outbox (seq, topic, payload, qos, retain) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(m.seq, m.topic, m.payload, m.qos, int(m.retain)) for m in self._unsaved],
                )
                if self._acked_upto:
                    db.execute("DELETE FROM outbox WHERE seq <= ?", (self._acked_upto,))
        except sqlite3.Error as exc:
            self.write_failures += 1
            if self.error is None:
                log.error(
                    "outbox %s: cannot write (%s); %d message(s) kept in memory until it can",
                    self.path,
                    exc,
                    len(self._unsaved),
                )
            self.error = str(exc)
            return False
        if self.error is not None:
            log.info("outbox %s: writing again", self.path)
            self.error = None
        self._unsaved.clear()
        self._acked_upto = 0
        return True

    def close(self) -> None:
        """Commit what is pending (best effort) and close the file."""
        if self._closed:
            return
        self.commit()
        self._closed = True
        self._db.close()
