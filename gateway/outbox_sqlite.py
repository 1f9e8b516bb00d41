"""The publisher's outbox on disk: alarm and ticket events survive a broker outage *and* a crash.

`MemoryOutbox` keeps order and bounds readings, but a power cut in the middle of a broker outage
would lose every event queued meanwhile. `SqliteOutbox` keeps the same contract
(`tests/unit/gateway/test_outbox.py` runs against both) and writes the messages that must not be
lost — alarms and events — to `<storage>/outbox.sqlite3` (WAL, `synchronous=FULL`), removing them
only after the broker's PUBACK.
On start it loads what a previous run left, so the next connection delivers it first, in order.

Readings (`droppable`) stay in memory: they are bounded, latest-value messages, and replaying an
hour-old "latest value" after a restart would mislead; InfluxDB export has its own disk queue.

Why a memory mirror as well: the publisher peeks on every send, and a full disk must not silence
alarms. Every message lives in memory; the disk is the durability log. Writes are batched: `put`
schedules one commit for the end of the current event-loop iteration (a storm of transitions is one
fsync, not one per message), and `peek` commits first, so nothing is ever sent before it is on disk.
When the disk refuses a write, the messages stay in memory and are delivered anyway; `error` says
why, and the write is retried at the next commit.

Why the gateway's outbox lives in the journal's file (`SqliteOutbox.shared`, table `outbox` of
`<storage>/gateway.sqlite3`): an alarm's retained state and event are then written by `stage` in the
very transaction that journals the transition — one fsync, not two, and the journal row
and its messages are on disk together or not at all. Deleting acknowledged messages is not urgent
(one delivered twice after a crash is the at-least-once contract anyway), so it rides on the next
transaction, or a commit of its own `ACK_COMMIT_DELAY` later: never an fsync between a reading and
its alarm.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections import deque
from pathlib import Path

from gateway.outbox import READINGS_QUEUE_BYTES, DroppableQueue, OutMessage, merged
from gateway.storage.db import open_database, transaction

log = logging.getLogger("fgw.outbox")

ACK_COMMIT_DELAY = 0.5
"""Seconds an acknowledged message may stay on disk when no other write takes its delete along."""

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
        path: the SQLite file (created 0600; its folder 0700); with `db`, only named in messages.
        max_droppable_bytes: memory the droppable messages (readings) may hold; the oldest go first.
        db: an open connection to share (see `shared`) instead of a file of its own; not closed.
    """

    def __init__(
        self,
        path: str | Path,
        max_droppable_bytes: int = READINGS_QUEUE_BYTES,
        *,
        db: sqlite3.Connection | None = None,
    ) -> None:
        self.path = Path(path)
        self._owns_db = db is None
        self._db = db if db is not None else open_database(self.path)[0]
        self._db.executescript(_SCHEMA)
        rows = self._db.execute(
            "SELECT seq, topic, payload, qos, retain FROM outbox ORDER BY seq"
        ).fetchall()
        self._kept: deque[OutMessage] = deque(
            OutMessage(seq, topic, bytes(payload), qos, bool(retain))
            for seq, topic, payload, qos, retain in rows
        )
        self.restored = len(self._kept)
        self._droppable = DroppableQueue(max_droppable_bytes)
        self._seq = itertools.count((rows[-1][0] if rows else 0) + 1)
        self._unsaved: list[OutMessage] = []
        self._acked_upto = 0  # acknowledged on the wire, not yet deleted on disk
        self._staged: tuple[int, int] = (0, 0)  # (unsaved, acked_upto) written by `stage`
        self._commit_scheduled = False
        self._ack_commit: asyncio.TimerHandle | None = None
        self.error: str | None = None
        self.write_failures = 0
        self._closed = False

    @classmethod
    def shared(
        cls, db: sqlite3.Connection, path: Path, max_droppable_bytes: int = READINGS_QUEUE_BYTES
    ) -> SqliteOutbox:
        """The outbox as a table of another store's file (the journal's).

        Args:
            db: the store's connection (WAL, `synchronous=FULL`); the store closes it.
            path: that file, for messages.
            max_droppable_bytes: as for the constructor.
        """
        db.executescript(_SCHEMA)
        return cls(path, max_droppable_bytes, db=db)

    # ------------------------------------------------------------------------------ Outbox

    def put(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, droppable: bool = False
    ) -> int:
        message = OutMessage(next(self._seq), topic, payload, qos, retain, droppable)
        if droppable:
            self._droppable.append(message)
            return message.seq
        self._kept.append(message)
        self._unsaved.append(message)
        self._schedule_commit()
        return message.seq

    def peek(self, limit: int) -> list[OutMessage]:
        if self._unsaved:
            self.commit()
        return merged(self._kept, self._droppable, limit)

    def ack(self, seq: int) -> None:
        while self._kept and self._kept[0].seq <= seq:
            self._kept.popleft()
        self._droppable.ack(seq)
        self._unsaved = [m for m in self._unsaved if m.seq > seq]
        self._acked_upto = max(self._acked_upto, seq)
        self._schedule_ack_commit()

    def __len__(self) -> int:
        return len(self._kept) + len(self._droppable)

    @property
    def dropped(self) -> int:
        return self._droppable.dropped

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
        loop.call_soon(self._commit_puts)

    def _commit_puts(self) -> None:
        """The end of the iteration that queued messages: commit them, unless a `stage` did."""
        self._commit_scheduled = False
        if self._unsaved:
            self.commit()

    def _schedule_ack_commit(self) -> None:
        if self._ack_commit is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.commit()
            return
        self._ack_commit = loop.call_later(ACK_COMMIT_DELAY, self._commit_acks)

    def _commit_acks(self) -> None:
        self._ack_commit = None
        if self._acked_upto:
            self.commit()

    def stage(self, db: sqlite3.Connection) -> None:
        """Write unsaved messages and forget acknowledged ones inside the caller's transaction on
        the shared connection; call `staged()` once it has committed (nothing, if it rolled back).
        """
        self._write(db)
        self._staged = (len(self._unsaved), self._acked_upto)

    def staged(self) -> None:
        """The transaction `stage` wrote into is committed: those messages are on disk."""
        count, acked = self._staged
        self._staged = (0, 0)
        del self._unsaved[:count]
        if acked and self._acked_upto == acked:
            self._acked_upto = 0
        if self.error is not None and not self._unsaved:
            log.info("outbox %s: writing again", self.path)
            self.error = None

    def _write(self, db: sqlite3.Connection) -> None:
        if self._unsaved:
            db.executemany(
                "INSERT OR IGNORE INTO outbox (seq, topic, payload, qos, retain) "
                "VALUES (?, ?, ?, ?, ?)",
                [(m.seq, m.topic, m.payload, m.qos, int(m.retain)) for m in self._unsaved],
            )
        if self._acked_upto:
            db.execute("DELETE FROM outbox WHERE seq <= ?", (self._acked_upto,))

    def commit(self) -> bool:
        """Write unsaved messages and forget acknowledged ones, in one transaction.

        Returns:
            True when the disk holds what it should; False when the write failed (kept in memory,
            retried at the next commit, reported in `error`).
        """
        if self._closed or (not self._unsaved and not self._acked_upto):
            return self.error is None
        db = self._db
        try:
            with transaction(db):
                self._write(db)
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
        """Commit what is pending (best effort) and close the file (a shared one stays open)."""
        if self._closed:
            return
        self.commit()
        self._closed = True
        if self._ack_commit is not None:
            self._ack_commit.cancel()
            self._ack_commit = None
        if self._owns_db:
            self._db.close()
