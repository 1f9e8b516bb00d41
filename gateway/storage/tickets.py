"""The ticket store: tickets, their timelines, the maintenance meters and plan state, in SQLite.

Same file as the alarms (`<storage>/gateway.sqlite3`, WAL, `synchronous=FULL`), own tables. Each
change of a ticket is one transaction that writes the ticket, its timeline entries and whatever plan
state and meters moved with it, so a power cut leaves either all of a change or none of it.

Timeline rows carry `published`: the gateway publishes a committed row on `P/events` and then marks
it. Rows written by another process (`fgw tickets transition` while the service runs) are picked up
by the running gateway the same way, which is how a command-line change still reaches MQTT.
A partial unique index keeps one active ticket per origin (alarm, or plan and device) even if two
writers race.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.storage.db import open_database, transaction
from rules.maintenance.tickets import ACTIVE, Ticket, TimelineEntry

_ACTIVE_SQL = ", ".join(f"'{s}'" for s in sorted(ACTIVE))

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tickets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    device      TEXT NOT NULL,
    status      TEXT NOT NULL,
    urgency     TEXT NOT NULL,
    origin_key  TEXT,                   -- alarm:{{id}} or plan:{{device}}/{{plan}}; NULL by hand
    record      TEXT NOT NULL,          -- the full ticket as JSON
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_active
    ON tickets (origin_key) WHERE status IN ({_ACTIVE_SQL});
CREATE INDEX IF NOT EXISTS tickets_by_device ON tickets (device, id);
CREATE TABLE IF NOT EXISTS ticket_timeline (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    at          REAL NOT NULL,
    by          TEXT NOT NULL,
    action      TEXT NOT NULL,
    source      TEXT NOT NULL,          -- gateway, or cli: who wrote the row
    published   INTEGER NOT NULL DEFAULT 0,
    entry       TEXT NOT NULL,          -- the TimelineEntry record
    snapshot    TEXT NOT NULL           -- the ticket right after the change, as published
);
CREATE INDEX IF NOT EXISTS ticket_timeline_by_ticket ON ticket_timeline (ticket_id, seq);
CREATE INDEX IF NOT EXISTS ticket_timeline_unpublished ON ticket_timeline (published, seq);
CREATE TABLE IF NOT EXISTS maintenance_meters (
    device      TEXT NOT NULL,
    name        TEXT NOT NULL,
    record      TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (device, name)
);
CREATE TABLE IF NOT EXISTS maintenance_plans (
    device      TEXT NOT NULL,
    plan        TEXT NOT NULL,
    record      TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (device, plan)
);
"""


class DuplicateActiveTicket(Exception):
    """An active ticket with the same origin exists already (another writer was first)."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A timeline row: the entry, its ticket, who wrote it, and the ticket as it was then."""

    seq: int
    ticket_id: int
    entry: TimelineEntry
    source: str
    snapshot: dict[str, Any]


@dataclass
class Change:
    """Everything one change writes, committed together.

    `tickets` pairs each ticket with its new timeline entries and the snapshot to publish (its
    `to_dict` after the change; the store fills in the id of a new ticket).
    """

    tickets: list[tuple[Ticket, list[TimelineEntry]]]
    meters: Mapping[tuple[str, str], dict[str, Any]] | None = None
    plans: Mapping[tuple[str, str], dict[str, Any]] | None = None


class TicketStore:
    """Durable tickets, timelines, meters and plan state. One instance per process and thread.

    Args:
        folder: the site's storage folder.
        source: written on each timeline row (`gateway` for the service, `cli` for commands).
        db: the alarm store's open connection to the same file, to share instead of opening one
            (the service: see below); not closed here.

    Why the service shares the alarm store's connection: with two connections on one file, each
    commit of one makes the other drop its page cache and read ~10 pages again at its next
    transaction, on the path from a reading to its alarm, on every alarm after a ticket changed.
    Both are used from the event loop's thread only, one transaction at a time.
    """

    def __init__(
        self, folder: str | Path, source: str = "gateway", *, db: sqlite3.Connection | None = None
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "gateway.sqlite3"
        self.source = source
        self._owns_db = db is None
        self._db = open_database(self.path)[0] if db is None else db
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        if self._owns_db:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)

    # ------------------------------------------------------------------ writing

    def commit(self, change: Change, now: float) -> list[int]:
        """Write a change in one transaction; new tickets get their ids. Returns timeline seqs.

        Raises:
            DuplicateActiveTicket: a new ticket's origin already has an active ticket.
        """
        seqs: list[int] = []
        new = [ticket for ticket, _ in change.tickets if ticket.id is None]
        try:
            with self._transaction() as db:
                for ticket, entries in change.tickets:
                    self._write_ticket(db, ticket)
                    for entry in entries:
                        snapshot = ticket.to_dict(entry.at)
                        cursor = db.execute(
                            "INSERT INTO ticket_timeline (ticket_id, at, by, action, source, entry,"
                            " snapshot) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                ticket.id,
                                entry.at,
                                entry.by,
                                entry.action,
                                self.source,
                                _json(entry.record()),
                                _json(snapshot),
                            ),
                        )
                        seqs.append(int(cursor.lastrowid or 0))
                for (device, name), record in (change.meters or {}).items():
                    db.execute(
                        "INSERT INTO maintenance_meters (device, name, record, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (device, name) DO UPDATE SET "
                        "record = excluded.record, updated_at = excluded.updated_at",
                        (device, name, _json(record), now),
                    )
                for (device, plan), record in (change.plans or {}).items():
                    db.execute(
                        "INSERT INTO maintenance_plans (device, plan, record, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (device, plan) DO UPDATE SET "
                        "record = excluded.record, updated_at = excluded.updated_at",
                        (device, plan, _json(record), now),
                    )
        except sqlite3.IntegrityError as exc:
            for ticket in new:  # ids handed out inside the rolled-back transaction are void
                ticket.id = None
            raise DuplicateActiveTicket(str(exc)) from exc
        return seqs

    def _write_ticket(self, db: sqlite3.Connection, ticket: Ticket) -> None:
        if ticket.id is None:
            cursor = db.execute(
                "INSERT INTO tickets (kind, device, status, urgency, origin_key, record, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
                (
                    ticket.kind,
                    ticket.device,
                    str(ticket.status),
                    ticket.urgency,
                    ticket.origin_key,
                    ticket.created_at,
                    ticket.updated_at,
                ),
            )
            ticket.id = int(cursor.lastrowid or 0)
        db.execute(
            "UPDATE tickets SET status = ?, urgency = ?, record = ?, updated_at = ? WHERE id = ?",
            (
                str(ticket.status),
                ticket.urgency,
                _json(ticket.record()),
                ticket.updated_at,
                ticket.id,
            ),
        )

    def mark_published(self, seqs: Iterable[int]) -> None:
        rows = [(seq,) for seq in seqs]
        if rows:
            with self._transaction() as db:
                db.executemany("UPDATE ticket_timeline SET published = 1 WHERE seq = ?", rows)

    # ------------------------------------------------------------------ reading

    def get(self, ticket_id: int) -> Ticket:
        """Raises KeyError for an unknown id."""
        row = self._db.execute("SELECT record FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        if row is None:
            raise KeyError(ticket_id)
        return Ticket.from_record(json.loads(row[0]))

    def tickets(
        self,
        status: Iterable[str] | None = None,
        device: str | None = None,
        created_before: float | None = None,
    ) -> list[Ticket]:
        """Tickets, newest first, filtered by status set and device."""
        sql, args = "SELECT record FROM tickets WHERE 1=1", []
        statuses = list(status) if status is not None else None
        if statuses is not None:
            sql += f" AND status IN ({', '.join('?' for _ in statuses) or 'NULL'})"
            args.extend(statuses)
        if device is not None:
            sql += " AND device = ?"
            args.append(device)
        if created_before is not None:
            sql += " AND created_at < ?"
            args.append(created_before)
        rows = self._db.execute(sql + " ORDER BY id DESC", args).fetchall()
        return [Ticket.from_record(json.loads(row[0])) for row in rows]

    def active_for(self, origin_key: str) -> Ticket | None:
        row = self._db.execute(
            f"SELECT record FROM tickets WHERE origin_key = ? AND status IN ({_ACTIVE_SQL})",
            (origin_key,),
        ).fetchone()
        return Ticket.from_record(json.loads(row[0])) if row else None

    def timeline(self, ticket_id: int) -> list[TimelineEntry]:
        rows = self._db.execute(
            "SELECT entry FROM ticket_timeline WHERE ticket_id = ? ORDER BY seq", (ticket_id,)
        ).fetchall()
        return [TimelineEntry.from_record(json.loads(row[0])) for row in rows]

    def unpublished(self, limit: int = 500) -> list[StoredEntry]:
        rows = self._db.execute(
            "SELECT seq, ticket_id, entry, source, snapshot FROM ticket_timeline "
            "WHERE published = 0 ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            StoredEntry(
                seq=row[0],
                ticket_id=row[1],
                entry=TimelineEntry.from_record(json.loads(row[2])),
                source=row[3],
                snapshot=json.loads(row[4]),
            )
            for row in rows
        ]

    def meters(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._db.execute("SELECT device, name, record FROM maintenance_meters").fetchall()
        return {(row[0], row[1]): json.loads(row[2]) for row in rows}

    def plans(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = self._db.execute("SELECT device, plan, record FROM maintenance_plans").fetchall()
        return {(row[0], row[1]): json.loads(row[2]) for row in rows}

    def alarm_condition_active(self, alarm_id: str) -> bool | None:
        """From the alarm store's table (for processes without an alarm book): None if unknown."""
        try:
            row = self._db.execute("SELECT record FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None:
            return None
        return bool(json.loads(row[0]).get("condition_active"))


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
