"""The incident journal in SQLite: every incident's current record, and every change with who, when
and which note (PRODUCT §11). In the site's `gateway.sqlite3`, beside the alarm journal.

Several writers share the file (the gateway, `fgw drill` from the command line): each change is
one transaction with the incident's new record and its journal row; a row carries its `source`, and
the gateway publishes rows not yet published (its own and the command line's) on `P/events`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.storage.db import open_database, transaction
from rules.incidents import Incident, IncidentEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    playbook TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'open',
    drill INTEGER NOT NULL DEFAULT 0,
    opened_at REAL NOT NULL DEFAULT 0,
    record TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents (opened_at);
CREATE TABLE IF NOT EXISTS incident_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    step TEXT,
    by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS incident_journal_unpublished
    ON incident_journal (published) WHERE published = 0;
"""


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    incident_id: int
    at: float
    action: str
    step: str | None
    by: str
    note: str
    event: dict[str, Any]
    source: str


class IncidentStore:
    """Incidents and their journal.

    Args:
        folder: the site's storage folder.
        source: who writes (`gateway`, `cli`): recorded on every row.
        db: a connection to share (the gateway's alarm store), or None to open the file.
    """

    def __init__(
        self, folder: str | Path, source: str = "gateway", *, db: sqlite3.Connection | None = None
    ) -> None:
        self.path = Path(folder) / "gateway.sqlite3"
        self.source = source
        self._owns_db = db is None
        self._db = open_database(self.path)[0] if db is None else db
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        if self._owns_db:
            self._db.close()

    def new_id(self) -> int:
        """A fresh incident id: a placeholder row, so that concurrent writers never share one."""
        with transaction(self._db) as db:
            cursor = db.execute("INSERT INTO incidents (record) VALUES ('{}')")
        return int(cursor.lastrowid or 0)

    def commit(self, events: Iterable[IncidentEvent]) -> None:
        """Each event's incident record and its journal row, all in one transaction."""
        events = list(events)
        if not events:
            return
        with transaction(self._db) as db:
            for e in events:
                i = e.incident
                db.execute(
                    "UPDATE incidents SET playbook=?, state=?, drill=?, opened_at=?, record=? "
                    "WHERE id=?",
                    (i.playbook, i.state, int(i.drill), i.opened_at, json.dumps(i.record()), i.id),
                )
                db.execute(
                    "INSERT INTO incident_journal (incident_id, at, action, step, by, note, event, "
                    "source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        i.id,
                        e.at,
                        e.action,
                        e.step,
                        e.by,
                        e.note,
                        json.dumps(e.event(), ensure_ascii=False),
                        self.source,
                    ),
                )

    def incidents(
        self,
        *,
        state: str | None = None,
        since: float | None = None,
        until: float | None = None,
        newest: int | None = None,
    ) -> list[Incident]:
        """Incidents, oldest first; filtered by state and by opening time in [since, until);
        only the `newest` ones when given."""
        sql, args = "SELECT id, record FROM incidents WHERE record != '{}'", []
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        if since is not None:
            sql += " AND opened_at >= ?"
            args.append(since)
        if until is not None:
            sql += " AND opened_at < ?"
            args.append(until)
        if newest is not None:
            sql = f"SELECT id, record FROM ({sql} ORDER BY id DESC LIMIT ?) WHERE 1"
            args.append(newest)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [Incident.from_record(json.loads(r[1])) for r in rows]

    def get(self, incident_id: int) -> Incident:
        """Raises KeyError for an unknown id."""
        row = self._db.execute(
            "SELECT record FROM incidents WHERE id = ? AND record != '{}'", (incident_id,)
        ).fetchone()
        if row is None:
            raise KeyError(incident_id)
        return Incident.from_record(json.loads(row[0]))

    def journal(self, incident_id: int) -> list[JournalRow]:
        rows = self._db.execute(
            "SELECT seq, incident_id, at, action, step, by, note, event, source "
            "FROM incident_journal WHERE incident_id = ? ORDER BY seq",
            (incident_id,),
        ).fetchall()
        return [_row(r) for r in rows]

    def unpublished(self, limit: int = 200) -> list[JournalRow]:
        rows = self._db.execute(
            "SELECT seq, incident_id, at, action, step, by, note, event, source "
            "FROM incident_journal WHERE published = 0 ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [_row(r) for r in rows]

    def mark_published(self, seqs: Iterable[int]) -> None:
        with transaction(self._db) as db:
            db.executemany(
                "UPDATE incident_journal SET published = 1 WHERE seq = ?", [(s,) for s in seqs]
            )


def _row(r: tuple[Any, ...]) -> JournalRow:
    return JournalRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8])
