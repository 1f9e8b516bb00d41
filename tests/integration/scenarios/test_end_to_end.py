"""Wire to alarm, for real: simulators as Modbus TCP servers and MQTT publishers, a real Mosquitto,
the gateway in-process, and a subscriber that sees what a building engineer's tools would see.

Faults go in the way a person injects them: `send_inject` over MQTT, as `fgw inject` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.site import Site, load_site
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching, write_site
from tests.support import Broker

pytestmark = pytest.mark.integration


@dataclass
class Running:
    site: Site
    gateway: Gateway
    watcher: Watcher
    broker: Broker

    async def inject(self, device: str, **command: object) -> None:
        result = await send_inject(
            "127.0.0.1", self.broker.port, self.site.id, device, dict(command)
        )
        assert result.get("ok"), result


@contextlib.asynccontextmanager
async def running_site(broker: Broker, folder: Path) -> AsyncIterator[Running]:
    site = load_site(write_site(folder, broker.port))
    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=7),
        watching(broker.port, site.topic_prefix) as watcher,
    ):
        gateway = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="e2e.gateway")
        try:
            await watcher.wait_for(lambda: watcher.status == "online")
            yield Running(site, gateway, watcher, broker)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


@pytest.mark.parametrize(
    ("device", "fault", "extra", "rule", "priority"),
    [
        ("pump-2", "trip", {}, "pump_fault", "high"),
        ("pump-2", "dry_run", {}, "dry_run", "high"),
        ("meter-1", "breaker_trip", {}, "breaker_trip", "critical"),
        ("meter-1", "undervoltage", {}, "undervoltage", "high"),
        ("lift-1", "entrapment", {}, "entrapment", "critical"),
        ("lift-1", "fault", {}, "lift_fault", "high"),
        ("fire-1", "fire", {"zone": 3}, "fire_alarm", "critical"),
        ("fire-1", "mains_fail", {}, "mains_fail", "high"),
        ("door-lobby", "forced", {}, "door_forced", "high"),
    ],
)
async def test_fault_raises_the_right_alarm_and_clear_returns_it(
    broker: Broker, tmp_path: Path, device: str, fault: str, extra: dict, rule: str, priority: str
) -> None:
    async with running_site(broker, tmp_path) as run:
        await run.inject(device, fault=fault, **extra)
        alarm = await run.watcher.wait_alarm(device, rule, "active_unack", timeout=15)
        assert alarm["id"] == f"{device}.{rule}" and alarm["priority"] == priority
        assert alarm["episode"] >= 1 and alarm["raised_at"].endswith("Z")
        if fault == "fire":
            assert alarm["value"] in (4, True) or "4" in alarm["message"]
        await run.inject(device, fault="clear")
        back = await run.watcher.wait_alarm(device, rule, "rtn_unack", timeout=15)
        assert back["cleared_at"] is not None
        # the journal holds the same story as MQTT
        states = [(e.from_state, e.to_state) for e in run.gateway.store.journal(f"{device}.{rule}")]
        assert ("normal", "active_unack") in states and ("active_unack", "rtn_unack") in states


async def test_offline_device_raises_comm_loss_only_and_neighbours_keep_polling(
    broker: Broker, tmp_path: Path
) -> None:
    async with running_site(broker, tmp_path) as run:
        await run.inject("meter-1", fault="offline")
        alarm = await run.watcher.wait_alarm("meter-1", "comm_loss", "active_unack", timeout=10)
        assert alarm["priority"] == "high"
        stats = run.gateway.drivers["modbus:plant-room"].stats()
        before = stats["pump-2"].polls
        await asyncio.sleep(2.0)  # a window to count the neighbour's polls in, not a wait for state
        after = run.gateway.drivers["modbus:plant-room"].stats()["pump-2"].polls
        assert after - before >= 5, "pump-2 (200 ms poll) was starved by its dead neighbour"
        meter_alarms = [
            a for t, a in run.watcher.retained.items()
            if "/meter-1/" in t and a and not t.endswith("/comm_loss")
            and a["state"] in ("active_unack", "active_ack")
        ]  # fmt: skip
        assert meter_alarms == [], "a dead meter must not raise rules on stale data"
        await run.inject("meter-1", fault="clear")
        await run.watcher.wait_alarm("meter-1", "comm_loss", "rtn_unack", timeout=10)


async def test_broker_restart_gateway_comes_back_online_with_retained_alarms(
    private_broker: Broker, tmp_path: Path
) -> None:
    async with running_site(private_broker, tmp_path) as run:
        await run.inject("fire-1", fault="fire", zone=1)
        await run.watcher.wait_alarm("fire-1", "fire_alarm", "active_unack")
        private_broker.restart()  # no persistence: every retained message is lost
        async with watching(private_broker.port, run.site.topic_prefix) as watcher:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=20)
            alarm = await watcher.wait_alarm("fire-1", "fire_alarm", "active_unack", timeout=10)
            assert alarm["priority"] == "critical" and alarm["episode"] == 1
