"""Gateway.health(): ok, degraded (needs a person) and unhealthy (stuck: a restart helps), on a fake
monotonic clock — polling stalls, publishing stalls while connected, storage errors, offline devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.site import load_site
from drivers.modbus.health import DeviceStats
from gateway.health import HealthMonitor
from gateway.service import Gateway

SITE = """
site: {id: health}
storage: {path: ./state}
console: {enabled: false}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502, timeout: 1s}]
devices:
  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 1}, poll: 1s}
  - {id: pump-2, template: booster_pump, modbus: {bus: bus, unit: 2}, poll: 1s}
"""


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDriver:
    def __init__(self) -> None:
        self.polls = {"pump-1": 0, "pump-2": 0}
        self.online: dict[str, bool | None] = {"pump-1": True, "pump-2": True}

    def stats(self) -> dict[str, Any]:
        return {d: DeviceStats(n, 0, None, None, self.online[d]) for d, n in self.polls.items()}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Gateway, HealthMonitor, FakeDriver, Clock]:
    (tmp_path / "site.yaml").write_text(SITE)
    clock = Clock()
    gateway = Gateway(load_site(tmp_path / "site.yaml"), monotonic=clock)
    driver = FakeDriver()
    gateway.drivers = {"modbus:bus": driver}  # type: ignore[dict-item]
    gateway.publisher._connected.set()  # as after a CONNACK
    monitor = gateway.capabilities.health
    assert isinstance(monitor, HealthMonitor)
    return gateway, monitor, driver, clock


def test_ok_while_polls_complete_and_the_outbox_drains(setup) -> None:  # type: ignore[no-untyped-def]
    gateway, monitor, driver, clock = setup
    for _ in range(100):
        clock.now += 1.0
        driver.polls["pump-1"] += 1
        monitor.on_tick(0, clock.now)
    report = gateway.health()
    assert report["status"] == "ok", report
    assert set(report["checks"]) >= {"polling", "publishing", "storage", "devices", "history"}
    wear = report["checks"]["wear"]  # bytes this process wrote, and its storage's room
    assert wear["status"] == "ok" and wear["written_bytes"] >= 0 and wear["storage_free_bytes"] > 0


def test_polling_stalled_is_unhealthy_and_recovers(setup) -> None:  # type: ignore[no-untyped-def]
    gateway, monitor, driver, clock = setup
    gateway.health()
    # a dead device is tried every ~11 s: quiet for less than 3 x that is not a stall
    clock.now += monitor.poll_stall - 1
    assert gateway.health()["checks"]["polling"]["status"] == "ok"
    clock.now += 2
    report = gateway.health()
    assert report["status"] == "unhealthy"
    assert "no poll completed" in report["checks"]["polling"]["detail"]
    driver.polls["pump-2"] += 1
    assert gateway.health()["checks"]["polling"]["status"] == "ok"


def test_publishing_stalled_while_connected_is_unhealthy(setup) -> None:  # type: ignore[no-untyped-def]
    gateway, monitor, driver, clock = setup
    gateway.publisher.publish_event({"type": "alarm", "id": "x"})
    gateway.health()
    clock.now += monitor.publish_stall + 1
    driver.polls["pump-1"] += 1
    report = gateway.health()
    assert report["checks"]["publishing"]["status"] == "unhealthy", report
    gateway.publisher._connected.clear()  # the broker is away: queued, degraded, not stuck
    report = gateway.health()
    assert report["checks"]["publishing"]["status"] == "degraded"
    assert "unreachable" in report["checks"]["publishing"]["detail"]


def test_storage_errors_and_offline_devices_are_degraded(setup) -> None:  # type: ignore[no-untyped-def]
    gateway, _, driver, _ = setup
    gateway.journal_error = "database or disk is full"
    driver.online["pump-2"] = False
    report = gateway.health()
    assert report["status"] == "degraded"
    assert report["checks"]["storage"]["journal"] == "database or disk is full"
    assert report["checks"]["devices"]["offline"] == ["pump-2"]
    gateway.history.error = "disk I/O error"
    assert gateway.health()["checks"]["history"]["status"] == "degraded"
