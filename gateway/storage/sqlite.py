"""The alarm store: current state of every alarm and the journal of every transition, in SQLite.

Why SQLite: the edge box has no database server and must survive power cuts. WAL mode with
`synchronous=FULL` makes each committed transition durable before it is published, so an alarm that
reached MQTT is always in the journal, and a restart restores exactly what was committed.

Why `write` takes everything at once: each commit costs an fsync, and an alarm's path
from a reading to MQTT is made of commits. The transition's journal row, the records that changed
without a transition, the delays that started or ended and the outbox rows of the messages to
publish (`also`, the publisher's outbox shares this file) are one transaction: one fsync.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.storage.db import open_database, transaction

SCHEMA_VERSION = 1

CHECKPOINT_EVERY = 50
"""Writes between two WAL checkpoints (`checkpoint_if_due`): about 200 pages with their outbox and
ticket rows, a fifth of SQLite's own automatic threshold."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (
    id          TEXT PRIMARY KEY,
    device      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    state       TEXT NOT NULL,
    episode     INTEGER NOT NULL,
    record      TEXT NOT NULL,          -- the full alarm record as JSON, for restore
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_journal (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id    TEXT NOT NULL,
    episode     INTEGER NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    at          TEXT NOT NULL,          -- ISO 8601 UTC
    by          TEXT NOT NULL,
    reason      TEXT NOT NULL,
    value       TEXT,                   -- JSON
    event       TEXT NOT NULL           -- the P/events JSON, as published
);
CREATE INDEX IF NOT EXISTS alarm_journal_by_alarm ON alarm_journal (alarm_id, seq);
"""

_TIMERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS engine_timers (
    alarm_id    TEXT PRIMARY KEY,       -- an on-delay (kind 'on') or off-delay ('off') in progress
    kind        TEXT NOT NULL,
    started     REAL NOT NULL           -- wall-clock epoch seconds
);
CREATE INDEX IF NOT EXISTS alarm_journal_by_time ON alarm_journal (at);
"""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One row of the alarm journal: who moved which alarm from what to what, when and why."""

    seq: int
    alarm_id: str
    episode: int
    from_state: str
    to_state: str
    at: str
    by: str
    reason: str
    value: Any
    event: dict[str, Any]


def _upsert_record(db: sqlite3.Connection, record: dict[str, Any], now: float) -> None:
    db.execute(
        "INSERT INTO alarms (id, device, rule, state, episode, record, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
        "state=excluded.state, episode=excluded.episode, record=excluded.record, "
        "updated_at=excluded.updated_at",
        (record["id"], record["device"], record["rule"], record["state"], record["episode"],
         json.dumps(record, ensure_ascii=False), now),
    )  # fmt: skip


class AlarmStore:
    """Durable alarm state and journal. One instance per process; not shared across threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "gateway.sqlite3"
        self._db, _ = open_database(self.path)
        # the checkpoint is the gateway's tick's (`checkpoint_if_due`), not a commit's: a commit
        # that crosses SQLite's threshold would copy the WAL back and fsync the file in the middle
        # of an alarm's path
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._writes = 0
        self._db.executescript(_SCHEMA)
        self._db.executescript(_TIMERS_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's connection, for what must commit in the journal's transactions (the
        outbox: `gateway.outbox_sqlite.SqliteOutbox.shared`). Same thread, same event loop."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    def record(self, changes: Iterable[tuple[dict[str, Any], dict[str, Any]]], now: float) -> None:
        """Write alarm records and their transition events in one transaction.

        Args:
            changes: pairs of (the alarm's full record after the transition, the transition's event
                JSON as published on `P/events`).
            now: wall-clock seconds, for `updated_at`.
        """
        self.write(now, journal=changes)

    def save_records(self, records: Iterable[dict[str, Any]], now: float) -> None:
        """Update alarm records without a journal row (a change that is not a transition)."""
        self.write(now, records=records)

    def save_timers(self, changes: Mapping[str, tuple[str, float] | None]) -> None:
        """Rule-engine delays that started (`(kind, started)`) or ended (None), in one transaction.

        Written as they change, so a SIGKILL loses none: a restart resumes an on-delay where it was
        instead of starting it over (or forgetting it).
        """
        if changes:
            self.write(0.0, timers=changes)

    def write(
        self,
        now: float,
        *,
        journal: Iterable[tuple[dict[str, Any], dict[str, Any]]] = (),
        records: Iterable[dict[str, Any]] = (),
        timers: Mapping[str, tuple[str, float] | None] | None = None,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """One transaction, one fsync: journal rows, then silent records, then delays, then `also`.

        All or nothing: on any error the transaction is rolled back and the error raised, so the
        caller keeps what it wanted written and tries again.

        Args:
            now: wall-clock seconds, for `updated_at`.
            journal: (record after the transition, its `P/events` JSON) pairs.
            records: alarm records that changed without a transition; written after the journal's
                own records, so the newest wins.
            timers: delays that started (`(kind, started)`) or ended (None).
            also: writes of another table of this file in the same transaction (the outbox).
        """
        with self._transaction() as db:
            for record, event in journal:
                _upsert_record(db, record, now)
                db.execute(
                    "INSERT INTO alarm_journal (alarm_id, episode, from_state, to_state, at, by, "
                    "reason, value, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event["id"],
                        event["episode"],
                        event["from"],
                        event["to"],
                        event["at"],
                        event.get("by") or "system",
                        event.get("reason") or "",
                        json.dumps(event.get("value"), ensure_ascii=False),
                        json.dumps(event, ensure_ascii=False),
                    ),
                )
            for record in records:
                _upsert_record(db, record, now)
            for alarm_id, timer in (timers or {}).items():
                if timer is None:
                    db.execute("DELETE FROM engine_timers WHERE alarm_id = ?", (alarm_id,))
                else:
                    db.execute(
                        "INSERT INTO engine_timers (alarm_id, kind, started) VALUES (?, ?, ?) "
                        "ON CONFLICT(alarm_id) DO UPDATE SET kind=excluded.kind, "
                        "started=excluded.started",
                        (alarm_id, timer[0], timer[1]),
                    )
            if also is not None:
                also(db)
        self._writes += 1

    def checkpoint_if_due(self) -> None:
        """Copy the WAL back into the file every `CHECKPOINT_EVERY` writes (PASSIVE: it waits for
        no reader or writer), between alarms rather than inside one's commit. A refused one (disk
        full) is tried again after as many writes; the journal's own writes report the disk."""
        if self._writes < CHECKPOINT_EVERY:
            return
        self._writes = 0
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def timers(self) -> dict[str, tuple[str, float]]:
        """Every saved delay in progress: alarm id -> (kind, wall-clock start)."""
        rows = self._db.execute("SELECT alarm_id, kind, started FROM engine_timers").fetchall()
        return {row[0]: (row[1], float(row[2])) for row in rows}

    def journal_since(self, at: str) -> list[JournalEntry]:
        """Every journal row at or after `at` (ISO 8601 UTC, as stored), oldest first."""
        rows = self._db.execute(
            "SELECT seq, alarm_id, episode, from_state, to_state, at, by, reason, value, event "
            "FROM alarm_journal WHERE at >= ? ORDER BY seq",
            (at,),
        ).fetchall()
        return [_entry(row) for row in rows]

    def announced_before(self, at: str) -> dict[str, int]:
        """Per alarm, the highest episode that reached `active_unack` before `at` (for reports)."""
        rows = self._db.execute(
            "SELECT alarm_id, MAX(episode) FROM alarm_journal "
            "WHERE at < ? AND to_state = 'active_unack' GROUP BY alarm_id",
            (at,),
        ).fetchall()
        return {row[0]: int(row[1]) for row in rows}

    def alarm_records(self) -> list[dict[str, Any]]:
        """Every alarm's last record, for restoring the alarm book after a restart."""
        rows = self._db.execute("SELECT record FROM alarms ORDER BY id").fetchall()
        return [json.loads(row[0]) for row in rows]

    def journal(self, alarm_id: str | None = None, limit: int = 1000) -> list[JournalEntry]:
        """The newest `limit` journal rows (of one alarm, or all), oldest first."""
        if alarm_id is None:
            rows = self._db.execute(
                "SELECT * FROM (SELECT seq, alarm_id, episode, from_state, to_state, at, by, reason, "
                "value, event FROM alarm_journal ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (limit,),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT * FROM (SELECT seq, alarm_id, episode, from_state, to_state, at, by, reason, "
                "value, event FROM alarm_journal WHERE alarm_id = ? ORDER BY seq DESC LIMIT ?) "
                "ORDER BY seq",
                (alarm_id, limit),
            ).fetchall()
        return [_entry(row) for row in rows]


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return JournalEntry(
        seq=row[0],
        alarm_id=row[1],
        episode=row[2],
        from_state=row[3],
        to_state=row[4],
        at=row[5],
        by=row[6],
        reason=row[7],
        value=json.loads(row[8]) if row[8] is not None else None,
        event=json.loads(row[9]),
    )
