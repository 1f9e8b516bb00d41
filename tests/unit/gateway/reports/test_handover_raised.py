"""The handover's "alarms raised in the shift": each raise once, not each update of a raised alarm
(a second fire zone updates the same unacknowledged alarm)."""

from __future__ import annotations

from pathlib import Path

from gateway.reports.handover import _raised
from gateway.storage.sqlite import AlarmStore

AT = 1_796_000_000.0


def test_an_update_of_a_raised_alarm_is_not_a_second_raise(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    try:
        record = {"id": "fire-1.fire_alarm", "device": "fire-1", "rule": "fire_alarm",
                  "state": "active_unack", "episode": 1, "condition_active": True}  # fmt: skip
        raised = {"id": "fire-1.fire_alarm", "episode": 1, "from": "normal", "to": "active_unack",
                  "at": "2026-12-01T00:00:00Z", "priority": "critical", "message": "zone 3"}  # fmt: skip
        zone_5 = {**raised, "from": "active_unack", "at": "2026-12-01T00:00:05Z",
                  "message": "zone 3, 5"}  # fmt: skip
        store.record([(record, raised)], AT)
        store.record([(record, zone_5)], AT + 5)
        rows = _raised(store.connection, "2026-11-30T00:00:00Z", "2026-12-02T00:00:00Z")
    finally:
        store.close()
    assert [(r["id"], r["message"]) for r in rows] == [("fire-1.fire_alarm", "zone 3")]
