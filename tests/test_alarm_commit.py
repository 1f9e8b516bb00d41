"""An alarm transition, its retained state and event, and the records and delays that changed with
it are one SQLite commit (one fsync on the alarm's path), and nothing of it is on disk half.

Run inside an event loop, as the gateway runs: the outbox then leaves its own commit for later and
the journal's transaction takes its messages along.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.config.site import load_site
from gateway.service import Gateway
from rules.engine import ConditionChange
from tests.e2e import write_site


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def test_a_transition_and_its_messages_are_one_commit(tmp_path: Path) -> None:
    site = load_site(write_site(tmp_path, 1883))
    gateway = Gateway(site)
    try:
        statements: list[str] = []
        gateway.store.connection.set_trace_callback(statements.append)
        change = ConditionChange(
            "pump-2.dry_run", "pump-2", "dry_run", True, False, 0.1, {"flow": 0.1}, 1.0, "test"
        )
        gateway._emit(gateway.book.apply(change))
        assert statements.count("COMMIT") == 1
        path = gateway.store.path
        journal = _rows(path, "SELECT alarm_id, to_state FROM alarm_journal")
        assert journal == [("pump-2.dry_run", "active_unack")]
        topics = [row[0] for row in _rows(path, "SELECT topic FROM outbox ORDER BY seq")]
        assert topics[:2] == [
            f"{site.topic_prefix}/alarms/pump-2/dry_run",
            f"{site.topic_prefix}/events",
        ]
    finally:
        for component in gateway.components:
            await component.close()
        gateway.outbox.close()
        gateway.history.close()
        gateway.store.close()


async def test_a_refused_commit_keeps_the_alarm_deliverable_and_catches_up(tmp_path: Path) -> None:
    site = load_site(write_site(tmp_path, 1883))
    gateway = Gateway(site)
    blocker = sqlite3.connect(gateway.store.path, isolation_level=None)
    try:
        gateway.store.connection.execute("PRAGMA busy_timeout=0")
        blocker.execute("BEGIN EXCLUSIVE")  # the file refuses writes, as a full disk would
        change = ConditionChange(
            "pump-2.dry_run", "pump-2", "dry_run", True, False, 0.1, {"flow": 0.1}, 1.0, "test"
        )
        gateway._emit(gateway.book.apply(change))
        assert gateway.journal_error is not None and len(gateway.journal_backlog) == 1
        topics = [m.topic for m in gateway.outbox.peek(10)]
        assert f"{site.topic_prefix}/alarms/pump-2/dry_run" in topics  # delivered from memory
        blocker.execute("ROLLBACK")
        gateway.tick_once()
        assert gateway.journal_error is None and gateway.journal_backlog == []
        journal = _rows(gateway.store.path, "SELECT alarm_id FROM alarm_journal")
        assert journal == [("pump-2.dry_run",)]
        outbox = [r[0] for r in _rows(gateway.store.path, "SELECT topic FROM outbox")]
        assert f"{site.topic_prefix}/alarms/pump-2/dry_run" in outbox
    finally:
        blocker.close()
        for component in gateway.components:
            await component.close()
        gateway.outbox.close()
        gateway.history.close()
        gateway.store.close()
