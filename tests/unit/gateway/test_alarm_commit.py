"""An alarm transition, its retained state and event, and the records and delays that changed with
it are one SQLite commit (one fsync on the alarm's path), and nothing of it is on disk half.

Run inside an event loop, as the gateway runs: the outbox then leaves its own commit for later and
the journal's transaction takes its messages along.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from config.site import Site, load_site
from gateway.components import Component
from gateway.service import Gateway
from ground.model import DeviceStatus, Quality, Reading
from rules.alarms import AlarmTransition
from rules.engine import ConditionChange
from tests.e2e import write_site


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _transactions(statements: Sequence[str]) -> list[list[str]]:
    """The statements grouped by transaction (`BEGIN …` to `COMMIT`), in order."""
    groups: list[list[str]] = []
    inside = False
    for statement in statements:
        if statement.startswith("BEGIN"):
            groups.append([])
            inside = True
        if inside:
            groups[-1].append(statement)
        if statement == "COMMIT":
            inside = False
    return groups


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
        # the maintenance component's ticket for the alarm commits on the same connection after it:
        # the alarm's own statements must all be in one transaction, its messages with them
        transactions = _transactions(statements)
        alarm_commits = [t for t in transactions if any("alarm_journal" in s for s in t)]
        assert len(alarm_commits) == 1
        assert transactions[0] is alarm_commits[0]
        assert sum("INTO outbox" in s for s in alarm_commits[0]) == 2  # retained state, event
        path = gateway.store.path
        journal = _rows(path, "SELECT alarm_id, to_state FROM alarm_journal")
        assert journal == [("pump-2.dry_run", "active_unack")]
        topics = [row[0] for row in _rows(path, "SELECT topic FROM outbox ORDER BY seq")]
        assert topics[:2] == [
            f"{site.topic_prefix}/alarms/pump-2/dry_run",
            f"{site.topic_prefix}/events",
        ]
    finally:
        await gateway.close()


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
        await gateway.close()


class _Heard(Component):
    """Remembers what it was told, in order."""

    name = "heard"

    def __init__(self) -> None:
        self.heard: list[tuple[str, object]] = []

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.heard.append(("readings", tuple((r.device, r.point, r.value) for r in batch)))

    def on_status(self, status: DeviceStatus) -> None:
        self.heard.append(("status", (status.device, status.online)))

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        self.heard.append(
            ("transitions", tuple((t.alarm_id, str(t.to_state)) for t in transitions))
        )


def _door_site(folder: Path) -> Site:
    folder.mkdir()
    (folder / "site.yaml").write_text(
        "site: {id: doors, timezone: Asia/Shanghai}\n"
        "storage: {path: ./state}\n"
        "mqtt: {host: 127.0.0.1, port: 1}\n"
        "devices:\n"
        + "".join(
            f"  - {{id: door-{n}, template: access_door, mqtt: {{topic: doors/d{n}}}}}\n"
            for n in range(3)
        )
    )
    return load_site(folder / "site.yaml")


def _door_traffic() -> list[Sequence[Reading] | DeviceStatus]:
    good = Quality.GOOD
    items: list[Sequence[Reading] | DeviceStatus] = [
        [Reading(f"door-{n}", "last_event", "forced", good, 1.0) for n in range(3)]
    ]
    for step in range(6):
        n = step % 3
        items.append([Reading(f"door-{n}", "door_open", step % 2 == 0, good, 2.0 + step)])
        items.append([Reading(f"door-{(n + 1) % 3}", "controller_online", True, good, 2.5 + step)])
        items.append(DeviceStatus(f"door-{n}", True, 2.6 + step, "test"))
    return items


async def test_components_hear_the_same_things_in_the_same_order_when_told_after_the_send(
    tmp_path: Path,
) -> None:
    """`_process` tells components after the alarm went out (here: at once, no broker), and keeps
    telling them later things behind it; what they hear is what `process_queued` tells them."""
    heard: list[list[tuple[str, object]]] = []
    for mode in ("process_queued", "_process"):
        gateway = Gateway(_door_site(tmp_path / mode), monotonic=lambda: 5.0, wall=lambda: 5.0)
        component = _Heard()
        gateway.components.append(component)
        try:
            for item in _door_traffic():  # all queued at once: the task finds a backlog
                if isinstance(item, DeviceStatus):
                    gateway.device_status(item)
                else:
                    gateway.readings(item)
            if mode == "process_queued":
                gateway.process_queued()
            else:
                task = asyncio.create_task(gateway._process())
                for _ in range(100):  # no broker: the task drains the queue without waiting
                    if not gateway._queue and not gateway._deferred:
                        break
                    await asyncio.sleep(0)
                assert not gateway._queue and not gateway._deferred
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            heard.append(component.heard)
        finally:
            await gateway.close()
    assert any(kind == "transitions" for kind, _ in heard[0])
    assert heard[1] == heard[0]
