"""The alarm store: records survive reopening, the journal keeps order, files are private."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from gateway.storage.sqlite import CHECKPOINT_EVERY, AlarmStore


def _change(
    alarm_id: str, episode: int, old: str, new: str, by: str = "system"
) -> tuple[dict, dict]:
    device, rule = alarm_id.split(".")
    record = {"id": alarm_id, "device": device, "rule": rule, "state": new, "episode": episode}
    event = {"type": "alarm", "id": alarm_id, "episode": episode, "from": old, "to": new,
             "at": "2026-11-26T12:00:00Z", "by": by, "reason": "", "value": 1.5}  # fmt: skip
    return record, event


def test_records_and_journal_survive_reopen(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    store.record([_change("pump-1.dry_run", 1, "normal", "active_unack")], now=1.0)
    store.record([_change("pump-1.dry_run", 1, "active_unack", "active_ack", by="wang")], now=2.0)
    store.record([_change("fire-1.fire_alarm", 1, "normal", "active_unack")], now=3.0)
    store.close()

    reopened = AlarmStore(tmp_path)
    records = {r["id"]: r for r in reopened.alarm_records()}
    assert records["pump-1.dry_run"]["state"] == "active_ack"
    assert records["fire-1.fire_alarm"]["state"] == "active_unack"
    journal = reopened.journal("pump-1.dry_run")
    assert [(e.from_state, e.to_state, e.by) for e in journal] == [
        ("normal", "active_unack", "system"),
        ("active_unack", "active_ack", "wang"),
    ]
    assert [e.seq for e in reopened.journal()] == sorted(e.seq for e in reopened.journal())
    assert journal[0].value == 1.5 and journal[0].event["type"] == "alarm"
    reopened.close()


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    good = _change("pump-1.dry_run", 1, "normal", "active_unack")
    bad = ({"id": "x.y"}, {})  # missing fields: the whole batch must roll back
    with pytest.raises(KeyError):
        store.record([good, bad], now=1.0)
    assert store.alarm_records() == [] and store.journal() == []
    store.close()


def test_database_file_is_private(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path / "state")
    mode = stat.S_IMODE(store.path.stat().st_mode)
    assert mode == 0o600
    store.close()


def test_journal_records_delays_and_another_table_are_one_transaction(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    silent = {"id": "pump-2.dry_run", "device": "pump-2", "rule": "dry_run", "state": "shelved",
              "episode": 3}  # fmt: skip

    def also(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS other (x)")
        db.execute("INSERT INTO other VALUES (1)")

    store.write(
        1.0,
        journal=[_change("pump-1.dry_run", 1, "normal", "active_unack")],
        records=[silent],
        timers={"pump-1.low_flow": ("on", 0.5)},
        also=also,
    )
    assert statements.count("COMMIT") == 1
    assert {r["id"] for r in store.alarm_records()} == {"pump-1.dry_run", "pump-2.dry_run"}
    assert store.timers() == {"pump-1.low_flow": ("on", 0.5)}
    assert len(store.journal()) == 1
    assert store.connection.execute("SELECT count(*) FROM other").fetchone() == (1,)

    def refuses(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError):
        store.write(2.0, journal=[_change("fire-1.fire_alarm", 1, "normal", "active_unack")],
                    timers={"pump-1.low_flow": None}, also=refuses)  # fmt: skip
    assert len(store.journal()) == 1 and store.timers() == {"pump-1.low_flow": ("on", 0.5)}
    store.close()


def test_commits_leave_the_checkpoint_to_checkpoint_if_due(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    before = store.path.stat().st_size
    for n in range(CHECKPOINT_EVERY):
        store.record([_change(f"door-{n}.door_forced", 1, "normal", "active_unack")], now=1.0)
    assert store.path.stat().st_size == before  # everything still in the WAL
    store.checkpoint_if_due()
    assert store.path.stat().st_size > before  # copied back, between two commits
    store.close()
