"""Storage wear on /healthz and /metrics: the write rate, the free space, and when they warn."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.wear import FAR_ABOVE, Usage, WearMeter, low_space, read_proc_written
from ground.model import Quality, Reading

GIB = 1024**3


class Disk:
    def __init__(self) -> None:
        self.written = 0
        self.usage = Usage(32 * GIB, 20 * GIB)

    def read(self) -> int | None:
        return self.written

    def usage_of(self, _path: Path) -> Usage | None:
        return self.usage


def meter(disk: Disk, values: float = 1000.0) -> WearMeter:
    return WearMeter(Path("/x"), values, read_written=disk.read, usage=disk.usage_of, window=600)


def test_the_rate_is_per_second_and_per_day_over_the_window() -> None:
    disk = Disk()
    wear = meter(disk)
    for t in range(0, 1201, 10):
        disk.written = t * 4000 if t <= 600 else 600 * 4000 + (t - 600) * 1000
        wear.sample(float(t))
    check = wear.report(1200.0)
    assert check["status"] == "ok"
    assert check["write_bytes_per_second"] == 1000.0  # the last 10 minutes only
    assert check["write_bytes_per_day"] == 86_400_000
    assert check["written_bytes"] == 600 * 4000 + 600 * 1000
    assert (check["storage_free_bytes"], check["storage_total_bytes"]) == (20 * GIB, 32 * GIB)


def test_writing_far_above_the_expected_rate_warns() -> None:
    disk = Disk()
    wear = meter(disk, values=1000)
    too_fast = FAR_ABOVE * wear.expected * 1.5
    for t in range(0, 121, 10):
        disk.written = int(t * too_fast)
        wear.sample(float(t))
    check = wear.report(120.0)
    assert check["status"] == "degraded" and "times the expected" in check["detail"]


def test_a_burst_in_the_first_seconds_does_not_warn() -> None:
    disk = Disk()
    wear = meter(disk)
    wear.sample(0.0)
    disk.written = 10**9  # start-up: a file created, a journal replayed
    assert wear.report(5.0)["status"] == "ok"


def test_nearly_full_storage_warns() -> None:
    disk = Disk()
    disk.usage = Usage(32 * GIB, int(low_space(32 * GIB)) - 1)
    check = meter(disk).report(0.0)
    assert check["status"] == "degraded" and "nearly full" in check["detail"]
    assert low_space(32 * GIB) == 0.05 * 32 * GIB  # 5 % of a large card
    assert low_space(1 * GIB) == 256 * 1024**2  # 256 MiB of a small one


def test_without_proc_the_check_reports_what_it_can() -> None:
    wear = WearMeter(Path("/x"), 10, read_written=lambda: None, usage=lambda _p: None)
    assert wear.report(0.0) == {"status": "ok"}
    assert read_proc_written("/nonexistent/io") is None
    assert isinstance(read_proc_written(), int)  # this process, on Linux


# ------------------------------------------------------------------------------ the alarm

SITE = """
site: {id: wear}
storage: {path: ./state}
console: {enabled: false}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502, timeout: 1s}]
devices:
  - {id: panel, template: fire_panel, modbus: {bus: bus, unit: 1}, poll: 1s}
"""


def test_a_wearing_storage_raises_a_low_alarm_that_clears_and_suppresses_nothing(
    tmp_path: Path,
) -> None:
    from config.site import load_site
    from gateway.health import HealthMonitor
    from gateway.service import Gateway
    from gateway.wear_alarm import ALARM_ID, WearAlarm

    (tmp_path / "site.yaml").write_text(SITE)
    gateway = Gateway(load_site(tmp_path / "site.yaml"))
    try:
        disk = Disk()
        assert isinstance(gateway.capabilities.health, HealthMonitor)
        gateway.capabilities.health.wear = WearMeter(
            tmp_path, 10, read_written=disk.read, usage=disk.usage_of, window=600
        )
        (alarm,) = [c for c in gateway.components if isinstance(c, WearAlarm)]
        alarm.on_tick(1000.0, 0.0)  # all is well: nothing to raise
        assert gateway.book.get(ALARM_ID).payload()["state"] == "normal"
        disk.usage = Usage(32 * GIB, GIB)  # nearly full
        alarm.on_tick(1060.0, 30.0)
        assert gateway.book.get(ALARM_ID).payload()["state"] == "normal"  # once a minute
        alarm.on_tick(1090.0, 60.0)
        raised = gateway.book.get(ALARM_ID).payload()
        assert (raised["state"], raised["priority"]) == ("active_unack", "low")
        assert "nearly full" in raised["message"]
        # the gateway's own alarm is nobody's root cause: a fire comes through as it would
        gateway.readings([Reading("panel", "fire", True, Quality.GOOD, 1091.0)])
        gateway.process_queued()
        fire = gateway.book.get("panel.fire_alarm").payload()
        assert (fire["state"], fire["priority"]) == ("active_unack", "critical")
        disk.usage = Usage(32 * GIB, 20 * GIB)
        alarm.on_tick(1150.0, 120.0)
        assert gateway.book.get(ALARM_ID).payload()["state"] == "rtn_unack"
        journal = gateway.journal(ALARM_ID)  # journaled like any alarm
        assert [row["to"] for row in journal] == ["active_unack", "rtn_unack"]
    finally:
        asyncio.run(gateway.close())
