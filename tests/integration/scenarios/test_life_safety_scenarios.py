"""Life safety first, for real, on the demo's own site file (`examples/riverside.yaml`): a private
Mosquitto, the simulators as Modbus TCP servers on loopback, and the gateway in-process. Faults go
in as a person injects them (`fgw inject`); what is checked is what a subscriber sees.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.site import Site, load_site
from gateway.demo import EXAMPLE, write_demo_site
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching
from tests.support import Broker

pytestmark = pytest.mark.integration

WAIT = 30.0  # comm_loss needs 3 silent polls of 1 s, each with its timeout and retry


@dataclass
class Riverside:
    site: Site
    watcher: Watcher
    broker: Broker

    async def inject(self, device: str, **command: object) -> None:
        result = await send_inject(
            "127.0.0.1", self.broker.port, self.site.id, device, dict(command)
        )
        assert result.get("ok"), result

    def events(self, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.watcher.events if all(e.get(k) == v for k, v in match.items())]


@contextlib.asynccontextmanager
async def riverside(broker: Broker, folder: Path) -> AsyncIterator[Riverside]:
    """The example site, as `fgw demo` writes it (free ports, storage in `folder`), running."""
    site = load_site(write_demo_site(EXAMPLE, folder, broker.port))
    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=5),
        watching(broker.port, site.topic_prefix) as watcher,
    ):
        gateway = Gateway(site)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="test.gateway")
        try:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=WAIT)
            yield Riverside(site, watcher, broker)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def test_meter_offline_then_entrapment_and_fire_are_both_announced_with_during(
    private_broker: Broker, tmp_path: Path
) -> None:
    async with riverside(private_broker, tmp_path) as run:
        await run.inject("meter-1", fault="offline")
        await run.watcher.wait_alarm("meter-1", "comm_loss", "active_unack", timeout=WAIT)
        await run.inject("lift-2", fault="entrapment")
        await run.inject("fire-1", fault="fire", zone=3)
        for device, rule in (("lift-2", "entrapment"), ("fire-1", "fire_alarm")):
            alarm = await run.watcher.wait_alarm(device, rule, "active_unack", timeout=WAIT)
            assert alarm["during"] == "meter-1.comm_loss", alarm
            assert alarm["suppressed_by"] is None and alarm["life_safety"] is True
            [event] = await run.watcher.wait_for(
                lambda d=device, r=rule: run.events(id=f"{d}.{r}", to="active_unack")
            )
            assert event["during"] == "meter-1.comm_loss" and event["priority"] == "critical"
        # nothing life-safety was ever suppressed on the way
        assert not [e for e in run.events(type="alarm", to="suppressed") if e.get("life_safety")]
        # the meter answers again: the context goes, the alarms stay until acknowledged
        await run.inject("meter-1", fault="clear")
        alarm = await run.watcher.wait_for(
            lambda: (a := run.watcher.alarm("lift-2", "entrapment")) and a["during"] is None and a,
            timeout=WAIT,
        )
        assert alarm["state"] == "active_unack"


async def test_breaker_trip_suppresses_the_pumps_but_not_an_entrapment(
    private_broker: Broker, tmp_path: Path
) -> None:
    async with riverside(private_broker, tmp_path) as run:
        await run.inject("meter-1", fault="breaker_trip")
        trip = await run.watcher.wait_alarm("meter-1", "breaker_trip", "active_unack", timeout=WAIT)
        assert trip["priority"] == "critical" and trip["life_safety"] is True
        # the pumps lose their supply: their controllers trip (injected as it happens on site)
        await run.inject("pump-1", fault="trip")
        await run.inject("pump-2", fault="trip")
        await run.inject("lift-1", fault="entrapment")
        for pump in ("pump-1", "pump-2"):
            alarm = await run.watcher.wait_alarm(pump, "pump_fault", "suppressed", timeout=WAIT)
            assert alarm["suppressed_by"] == "meter-1.breaker_trip"
        lift = await run.watcher.wait_alarm("lift-1", "entrapment", "active_unack", timeout=WAIT)
        assert lift["during"] == "meter-1.breaker_trip"
        assert lift["message_en"].startswith("Person trapped in lift")
        await run.watcher.wait_for(lambda: run.events(id="lift-1.entrapment", to="active_unack"))
        announced = [e["id"] for e in run.events(type="alarm", to="active_unack")]
        assert not [a for a in announced if a.startswith(("pump-1.", "pump-2."))]
