"""The night baseload alarm for real: stored history, the gateway running with an injected wall
clock, the energy meter simulator on Modbus TCP and a real Mosquitto.

Four weeks of nights are written into the site's history file through the store's own write path
before the gateway starts; the clock is then moved past 05:00 of the night that rose and of the
night after it. What is checked is what a subscriber sees on the broker and what the journal says,
and that a restart does not judge a night again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench.baseload import minute_readings, store_history
from config.site import Site, load_site
from gateway.baseload import night
from gateway.baseload_alarm import BaseloadAlarm
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching
from tests.support import Broker, free_port

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Asia/Shanghai")
SITE = """
site: {{id: {site_id}, name: Baseload site, timezone: Asia/Shanghai, locale: en}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}
console: {{enabled: false}}
modbus:
  - {{id: plant-room, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms}}
devices:
  - {{id: meter-1, template: energy_meter, modbus: {{bus: plant-room, unit: 10}}, poll: 200ms,
     baseload_rise: {{ratio: 1.3, min_kw: 1}}}}
"""


class Clock:
    """The gateway's wall clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def history(folder: Path, risen: date) -> None:
    """Nights at 4 kW for four weeks, 6 kW on `risen`, 4.2 kW the night after; 30 kW by day.

    Days in the past of the real clock (the simulator's live readings land in today)."""

    def kw(_meter: str, ts: float) -> float:
        local = datetime.fromtimestamp(ts, ZONE)
        if local.hour >= 5:
            return 30.0
        return {risen: 6.0, risen + timedelta(days=1): 4.2}.get(local.date(), 4.0)

    store_history(folder, minute_readings(["meter-1"], risen - timedelta(days=28), 30, kw))


@contextlib.asynccontextmanager
async def gateway_running(site: Site, clock: Clock, broker: Broker) -> AsyncIterator[Gateway]:
    gateway = Gateway(site, wall=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="test.gateway")
    try:
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_a_risen_night_raises_on_mqtt_a_night_within_clears_and_a_restart_keeps_it(
    broker: Broker, tmp_path: Path
) -> None:
    path = tmp_path / "site.yaml"
    site_id = f"bl-{uuid.uuid4().hex[:8]}"
    path.write_text(SITE.format(site_id=site_id, mqtt_port=broker.port, modbus_port=free_port()))
    site = load_site(path)
    risen = datetime.fromtimestamp(datetime.now().timestamp(), ZONE).date() - timedelta(days=3)
    site.storage_dir.mkdir(parents=True)
    history(site.storage_dir, risen)
    five = night(risen, ZONE).end
    clock = Clock(five - 3600)  # 04:00: the night before is judged (within), nothing raised
    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=3),
        watching(broker.port, site.topic_prefix) as watcher,
    ):
        async with gateway_running(site, clock, broker) as gateway:
            await watcher.wait_for(lambda: watcher.status == "online")
            await until_judged(gateway, risen - timedelta(days=1))
            assert watcher.alarm("meter-1", "baseload_rise") is None

            clock.now = five + 600  # 05:10: the night that rose
            raised = await watcher.wait_alarm("meter-1", "baseload_rise", "active_unack")
            assert (raised["priority"], raised["life_safety"]) == ("low", False)
            assert raised["message"] == (
                f"Night baseload up at meter-1: 6.0 kW on the night of {risen.isoformat()}, "
                "1.50× the 4.0 kW of the four weeks before"
            )
            event = await watcher.wait_for(lambda: events_of(watcher))
            assert [(e["from"], e["to"]) for e in event] == [("normal", "active_unack")]

            # a life-safety alarm of the same meter comes through as ever
            answer = await send_inject(
                "127.0.0.1", broker.port, site.id, "meter-1", {"fault": "breaker_trip"}
            )
            assert answer.get("ok"), answer
            trip = await watcher.wait_alarm("meter-1", "breaker_trip", "active_unack")
            assert trip["priority"] == "critical" and trip["life_safety"] is True
            assert (watcher.alarm("meter-1", "baseload_rise") or {}).get("state") == "active_unack"

            clock.now = five + 86400 + 600  # 05:10 the next day: back within 1.3 x 4.0 kW
            await watcher.wait_alarm("meter-1", "baseload_rise", "rtn_unack")

        async with gateway_running(site, clock, broker) as gateway:  # a restart
            clock.now += 3600
            await watcher.wait_for(lambda: watcher.status == "online")
            alarm = component(gateway)
            await until(lambda: alarm.next_due > clock.now, "the first look at the clock")
            assert alarm.judged == 0  # the ledger says the night after was judged already
            assert alarm.next_due == night(risen + timedelta(days=2), ZONE).end + alarm.settle
            transitions = [(r["from"], r["to"]) for r in gateway.journal("meter-1.baseload_rise")]
            assert transitions == [("normal", "active_unack"), ("active_unack", "rtn_unack")]
            assert gateway.book.get("meter-1.baseload_rise").payload()["state"] == "rtn_unack"


def events_of(watcher: Watcher) -> list[dict[str, object]]:
    return [e for e in watcher.events if e.get("id") == "meter-1.baseload_rise"]


def component(gateway: Gateway) -> BaseloadAlarm:
    (alarm,) = [c for c in gateway.components if isinstance(c, BaseloadAlarm)]
    return alarm


async def until(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait for a condition that is not visible on MQTT (the component's state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.05)


async def until_judged(gateway: Gateway, day: date) -> None:
    """Wait until the component has judged the night of `day` (its ledger says so)."""
    alarm = component(gateway)
    await until(lambda: (alarm.ledger.last("meter-1") or "") >= day.isoformat(), f"night {day}")
