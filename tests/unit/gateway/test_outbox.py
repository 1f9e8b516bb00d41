"""The outbox contract, run against every implementation of the seam: memory and SQLite.

Then what only the disk outbox promises: messages survive a restart (a SIGKILL:
tests/integration/faults/test_outbox.py), and a disk that refuses writes does not stop delivery.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.outbox import MESSAGE_OVERHEAD, MemoryOutbox, Outbox
from gateway.outbox_sqlite import SqliteOutbox
from gateway.storage.sqlite import AlarmStore

READING = 2 * len("reading99") + MESSAGE_OVERHEAD
"""What one of the tests' readings costs of the bound (topic and payload are its name)."""


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[int], Outbox]]:
    """An outbox whose readings' bound holds `n` of the tests' readings."""
    made: list[SqliteOutbox] = []

    def sqlite_box(n: int) -> Outbox:
        box = SqliteOutbox(tmp_path / f"outbox{len(made)}.sqlite3", max_droppable_bytes=n * READING)
        made.append(box)
        return box

    def memory_box(n: int) -> Outbox:
        return MemoryOutbox(max_droppable_bytes=n * READING)

    yield memory_box if request.param == "memory" else sqlite_box
    for box in made:
        box.close()


def put(box: Outbox, topic: str, droppable: bool = False) -> None:
    box.put(topic, topic.encode(), qos=0 if droppable else 1, retain=False, droppable=droppable)


def test_order_is_kept_across_kinds_and_ack_removes_a_prefix(make: Callable[[int], Outbox]) -> None:
    box = make(10)
    for topic, droppable in [("a", False), ("r1", True), ("b", False), ("r2", True), ("c", False)]:
        put(box, topic, droppable)
    assert [m.topic for m in box.peek(10)] == ["a", "r1", "b", "r2", "c"]
    assert [m.topic for m in box.peek(2)] == ["a", "r1"]
    assert [m.topic for m in box.peek(10)] == ["a", "r1", "b", "r2", "c"]  # peek removes nothing
    box.ack(box.peek(3)[-1].seq)
    assert [m.topic for m in box.peek(10)] == ["r2", "c"]
    assert len(box) == 2
    box.ack(box.peek(10)[-1].seq)
    assert box.peek(10) == [] and len(box) == 0


def test_readings_are_bounded_alarms_and_events_never_dropped(
    make: Callable[[int], Outbox],
) -> None:
    box = make(3)
    for i in range(100):
        put(box, f"event{i}")
        put(box, f"reading{i}", droppable=True)
    topics = [m.topic for m in box.peek(1000)]
    assert [t for t in topics if t.startswith("event")] == [f"event{i}" for i in range(100)]
    assert [t for t in topics if t.startswith("reading")] == ["reading97", "reading98", "reading99"]
    assert box.dropped == 97
    assert topics[-1] == "reading99"


def test_the_readings_bound_is_memory_and_the_newest_reading_is_always_kept(
    make: Callable[[int], Outbox],
) -> None:
    box = make(10)  # 2,180 bytes
    for i in range(20):
        box.put("r", bytes(500) + bytes([i]), qos=0, retain=False, droppable=True)
    assert [m.payload[-1] for m in box.peek(100)] == [17, 18, 19]  # 3 x 702 bytes fit
    assert box.dropped == 17
    box.put("huge", bytes(100_000), qos=0, retain=False, droppable=True)
    assert [m.topic for m in box.peek(100)] == ["huge"] and box.dropped == 20
    box.ack(box.peek(1)[0].seq)
    for i in range(3):
        box.put("r", bytes(500) + bytes([i]), qos=0, retain=False, droppable=True)
    assert len(box) == 3  # the acknowledged message no longer counts


def test_an_ack_for_a_message_dropped_meanwhile_is_harmless(make: Callable[[int], Outbox]) -> None:
    box = make(1)
    put(box, "r1", droppable=True)
    in_flight = box.peek(1)
    put(box, "r2", droppable=True)  # r1 dropped while it was being published
    box.ack(in_flight[-1].seq)
    assert [m.topic for m in box.peek(5)] == ["r2"]


# ------------------------------------------------------------------------------ disk only


def test_events_survive_a_restart_in_order_and_acked_ones_do_not_come_back(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = SqliteOutbox(path)
    for i in range(5):
        put(box, f"event{i}")
    put(box, "reading", droppable=True)
    box.ack(box.peek(2)[-1].seq)
    box.close()
    again = SqliteOutbox(path)
    assert [m.topic for m in again.peek(10)] == ["event2", "event3", "event4"]
    assert again.restored == 3
    put(again, "event5")  # numbering goes on after what was restored
    assert [m.topic for m in again.peek(10)][-1] == "event5"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again.close()


def test_a_refused_write_keeps_messages_deliverable_and_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = SqliteOutbox(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("PRAGMA busy_timeout=0")
    blocker.execute("BEGIN EXCLUSIVE")  # the file refuses writes, as a full disk would
    box._db.execute("PRAGMA busy_timeout=0")
    put(box, "fire")
    assert [m.topic for m in box.peek(5)] == ["fire"]  # delivered from memory all the same
    assert box.error is not None and box.write_failures >= 1
    blocker.execute("ROLLBACK")
    blocker.close()
    assert box.commit() and box.error is None
    box.close()
    again = SqliteOutbox(path)
    assert [m.topic for m in again.peek(5)] == ["fire"]
    again.close()


# ------------------------------------------------------------------------------ shared with the journal


def test_staged_messages_commit_with_the_callers_transaction_or_not_at_all(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    box = SqliteOutbox.shared(store.connection, store.path)
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    box._commit_scheduled = True  # as inside an event loop: no write-through on put
    put(box, "alarm")
    put(box, "event")
    with pytest.raises(KeyError):
        store.write(1.0, journal=[({"id": "x.y"}, {})], also=box.stage)  # a bad row: rolled back
    assert _topics(store.path) == []
    store.write(1.0, also=box.stage)
    box.staged()
    assert statements.count("COMMIT") == 1  # the messages rode on the caller's commit
    assert _topics(store.path) == ["alarm", "event"]
    assert box.commit() and statements.count("COMMIT") == 1  # nothing left to write
    box.ack(box.peek(1)[-1].seq)  # without an event loop the delete is written at once
    assert _topics(store.path) == ["event"]
    box.close()
    store.close()


def _topics(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("SELECT topic FROM outbox ORDER BY seq")]
    finally:
        db.close()
