"""Durable notifications: one row per message per channel, in the alarm journal's SQLite file.

A row is written in the same transaction as what makes it due — the alarm transition (`stage`,
called inside `AlarmStore.write`) or the escalation step that fell due on the clock (`commit`) —
so a power cut never loses a notification whose alarm is in the journal. A row is `pending` until
it ends: `sent` (the channel took it), `moot` (its alarm was acknowledged first) or `given_up`
(not delivered within the channel's `give_up_after`). Senders mark a row sent right after the
channel took it: a crash in between sends that one message again, never more.

Not thread-safe: the shared connection is used from the gateway's event loop only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.storage.db import transaction

PENDING, SENT, MOOT, GIVEN_UP = "pending", "sent", "moot", "given_up"

KEEP_ENDED = 30 * 86400.0
"""Ended rows are kept this long (wall seconds) for the record, then pruned at start."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    alarm_id    TEXT NOT NULL,
    episode     INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    repeat      INTEGER NOT NULL,
    created     REAL NOT NULL,          -- wall-clock epoch seconds: when it fell due
    due         REAL NOT NULL,          -- next attempt (wall)
    attempts    INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,          -- pending | sent | moot | given_up
    ended       REAL,
    last_error  TEXT NOT NULL DEFAULT '',
    content     TEXT NOT NULL,          -- JSON: subject, text, alarm payload, link, mentions
    UNIQUE (channel, alarm_id, episode, step, repeat)
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (channel, state, due);
CREATE INDEX IF NOT EXISTS notifications_alarm ON notifications (alarm_id, state);
"""


@dataclass(frozen=True, slots=True)
class Row:
    """A pending notification as a sender sees it."""

    id: int
    channel: str
    alarm_id: str
    episode: int
    step: int
    repeat: int
    created: float
    due: float
    attempts: int
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewRow:
    """A notification that fell due, for one channel."""

    channel: str
    alarm_id: str
    episode: int
    step: int
    repeat: int
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Moot:
    alarm_id: str
    episode: int


class NotificationStore:
    """The `notifications` table on the journal's connection.

    Writes are staged in order (`add`, `moot`) and land in the next transaction that calls
    `stage(db)` — the journal's — or in one of their own (`commit`). A refused transaction keeps
    them staged for the next one.

    Args:
        db: the alarm store's connection (`AlarmStore.connection`).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._ops: list[tuple[float, NewRow | _Moot]] = []
        self._staged = 0
        db.executescript(_SCHEMA)

    # ---------------------------------------------------------------- staged writes

    def add(self, rows: Iterable[NewRow], now: float) -> None:
        """Notifications that fell due at `now` (wall); written with the next transaction."""
        self._ops.extend((now, row) for row in rows)

    def moot(self, alarm_id: str, episode: int, now: float) -> None:
        """The alarm's episode (and any before it) was acknowledged: its pending rows end moot."""
        self._ops.append((now, _Moot(alarm_id, episode)))

    @property
    def has_staged(self) -> bool:
        return bool(self._ops)

    def stage(self, db: sqlite3.Connection) -> None:
        """Write the staged operations inside the caller's transaction; `staged()` after commit."""
        for now, op in self._ops:
            if isinstance(op, _Moot):
                db.execute(
                    "UPDATE notifications SET state = ?, ended = ? "
                    "WHERE alarm_id = ? AND episode <= ? AND state = ?",
                    (MOOT, now, op.alarm_id, op.episode, PENDING),
                )
                continue
            db.execute(
                "INSERT OR IGNORE INTO notifications (channel, alarm_id, episode, step, repeat, "
                "created, due, state, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (op.channel, op.alarm_id, op.episode, op.step, op.repeat, now, now, PENDING,
                 json.dumps(op.content, ensure_ascii=False)),
            )  # fmt: skip
        self._staged = len(self._ops)

    def staged(self) -> set[str]:
        """The transaction `stage` wrote into committed; returns the channels with new rows."""
        done, self._ops = self._ops[: self._staged], self._ops[self._staged :]
        self._staged = 0
        return {op.channel for _, op in done if isinstance(op, NewRow)}

    def commit(self) -> set[str]:
        """Write what is staged in a transaction of its own; returns the channels with new rows.

        Raises:
            sqlite3.Error: the disk refused it (everything stays staged).
        """
        if not self._ops:
            return set()
        try:
            with transaction(self._db) as db:
                self.stage(db)
        except BaseException:
            self._staged = 0
            raise
        return self.staged()

    # ---------------------------------------------------------------- the senders' side

    def next_due(self, channel: str) -> Row | None:
        """The channel's pending row with the earliest due time (oldest first on a tie)."""
        row = self._db.execute(
            "SELECT id, channel, alarm_id, episode, step, repeat, created, due, attempts, content "
            "FROM notifications WHERE channel = ? AND state = ? ORDER BY due, id LIMIT 1",
            (channel, PENDING),
        ).fetchone()
        if row is None:
            return None
        return Row(*row[:9], content=json.loads(row[9]))

    def is_pending(self, row_id: int) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM notifications WHERE id = ? AND state = ?", (row_id, PENDING)
        ).fetchone()
        return found is not None

    def end(self, row_id: int, state: str, now: float, error: str = "") -> None:
        """A pending row ends `sent` or `given_up` (its own transaction)."""
        with transaction(self._db) as db:
            db.execute(
                "UPDATE notifications SET state = ?, ended = ?, attempts = attempts + ?, "
                "last_error = CASE WHEN ? = '' THEN last_error ELSE ? END "
                "WHERE id = ? AND state = ?",
                (state, now, 1 if state == SENT else 0, error, error, row_id, PENDING),
            )

    def failed(self, row_id: int, error: str, retry_at: float) -> None:
        """An attempt failed: try again at `retry_at` (wall)."""
        with transaction(self._db) as db:
            db.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, due = ? "
                "WHERE id = ? AND state = ?",
                (error, retry_at, row_id, PENDING),
            )

    # ---------------------------------------------------------------- reading

    def counts(self) -> dict[str, dict[str, int]]:
        """Per channel, rows per state."""
        out: dict[str, dict[str, int]] = {}
        for channel, state, n in self._db.execute(
            "SELECT channel, state, COUNT(*) FROM notifications GROUP BY channel, state"
        ):
            out.setdefault(channel, {})[state] = n
        return out

    def created_per_step(self) -> dict[tuple[str, int], dict[int, int]]:
        """Per (alarm, episode), per escalation step: how many messages were made (repeat + 1)."""
        out: dict[tuple[str, int], dict[int, int]] = {}
        for alarm_id, episode, step, top in self._db.execute(
            "SELECT alarm_id, episode, step, MAX(repeat) FROM notifications "
            "GROUP BY alarm_id, episode, step"
        ):
            out.setdefault((alarm_id, episode), {})[step] = top + 1
        return out

    def prune(self, before: float) -> None:
        """Forget rows that ended before `before` (wall)."""
        with transaction(self._db) as db:
            db.execute(
                "DELETE FROM notifications WHERE state != ? AND ended < ?", (PENDING, before)
            )
