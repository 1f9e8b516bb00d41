"""A fleet: three buildings' gateways on one broker, each under its own topic prefix.

Every gateway has its own site id, simulators and storage; they share only the Mosquitto. A fault in
one building must raise its alarm under that building's prefix and nowhere else, and a device topic
that every building uses (`doors/lobby`) must bring each gateway its own building's door only: the
device topics go under each site's `mqtt.device_base`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from config.site import Site, load_site
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching, write_site
from tests.support import Broker

pytestmark = pytest.mark.integration


async def test_three_gateways_on_one_broker_keep_their_alarms_apart(
    private_broker: Broker, tmp_path: Path
) -> None:
    broker = private_broker  # a broker of its own: the broker-wide check must see only this fleet
    sites = []
    for building in ("a", "b", "c"):
        folder = tmp_path / building
        folder.mkdir()
        sites.append(load_site(write_site(folder, broker.port)))
    assert len({s.topic_prefix for s in sites}) == 3

    async with contextlib.AsyncExitStack() as stack:
        watchers = []
        for site in sites:
            await stack.enter_async_context(SiteSimulator(site, "127.0.0.1", broker.port, seed=1))
            watchers.append(
                await stack.enter_async_context(watching(broker.port, site.topic_prefix))
            )
        everything = await stack.enter_async_context(watching(broker.port, "fgw"))
        stop = asyncio.Event()
        gateways = [Gateway(site) for site in sites]
        tasks = [asyncio.create_task(g.run(stop), name=f"fleet.{g.site.id}") for g in gateways]
        try:
            for watcher in watchers:
                await watcher.wait_for(lambda w=watcher: w.status == "online", timeout=20)
            # a different fault in each building
            faults = [("fire-1", {"fault": "fire", "zone": 2}, "fire_alarm"),
                      ("lift-1", {"fault": "entrapment"}, "entrapment"),
                      ("pump-2", {"fault": "trip"}, "pump_fault")]  # fmt: skip
            for site, (device, command, _) in zip(sites, faults, strict=True):
                result = await send_inject("127.0.0.1", broker.port, site.id, device, command)
                assert result["ok"], result
            for watcher, (device, _, rule) in zip(watchers, faults, strict=True):
                await watcher.wait_alarm(device, rule, "active_unack", timeout=15)
            # no building sees another building's fault
            for watcher, (device, _, rule) in zip(watchers, faults, strict=True):
                raised = {
                    topic.rsplit("/", 2)[-2] + "." + topic.rsplit("/", 1)[-1]
                    for topic, alarm in watcher.retained.items()
                    if alarm and alarm["state"] == "active_unack"
                    and not topic.endswith("/comm_loss")
                }  # fmt: skip
                assert raised == {f"{device}.{rule}"}, raised
            # and the alarm topics of the whole broker are exactly the three, each under its site
            expected = sorted(
                f"{site.topic_prefix}/alarms/{device}/{rule}"
                for site, (device, _, rule) in zip(sites, faults, strict=True)
            )

            def active() -> list[str]:
                return sorted(
                    topic for topic, payload in everything.last.items()
                    if "/alarms/" in topic and b'"active_unack"' in payload
                    and not topic.endswith("/comm_loss")
                )  # fmt: skip

            # the broker-wide subscriber sees the same three, each under its own site, and no more
            await everything.wait_for(lambda: active() == expected, timeout=15)
            await _doors_stay_in_their_building(sites, watchers, broker.port)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def _doors_stay_in_their_building(
    sites: list[Site], watchers: list[Watcher], port: int
) -> None:
    """Every site has `door-lobby` on the relative topic `doors/lobby`; each sees only its own.

    Faults go one building after the other, and each alarm awaited is the barrier that proves the
    gateway has handled everything published before it: with shared topics, b and c would raise
    a's `door_forced`, and a would count b's and c's denied cards.
    """
    a, b, c = sites
    assert len({s.device_topic(s.devices["door-lobby"]) for s in sites}) == 3
    assert all(s.devices["door-lobby"].spec.mqtt.topic == "doors/lobby" for s in sites)  # type: ignore[union-attr]

    async def inject(site: Site, fault: str) -> None:
        result = await send_inject("127.0.0.1", port, site.id, "door-lobby", {"fault": fault})
        assert result["ok"], result

    def door_alarms(watcher: Watcher) -> dict[str, str]:
        prefix = f"{watcher.prefix}/alarms/door-lobby/"
        return {
            topic[len(prefix) :]: alarm["state"]
            for topic, alarm in watcher.retained.items()
            if alarm and topic.startswith(prefix) and not topic.endswith("/comm_loss")
        }

    await inject(a, "forced")
    await watchers[0].wait_alarm("door-lobby", "door_forced", "active_unack", timeout=15)
    for site, watcher in ((b, watchers[1]), (c, watchers[2])):
        await inject(site, "denied_burst")
        await watcher.wait_alarm("door-lobby", "access_denied_burst", "active_unack", timeout=20)
        assert door_alarms(watcher) == {"access_denied_burst": "active_unack"}  # not a's forcing
    await inject(a, "clear")  # published after b's and c's cards: a has seen them, were they its
    await watchers[0].wait_alarm("door-lobby", "door_forced", "rtn_unack", timeout=15)
    assert door_alarms(watchers[0]) == {"door_forced": "rtn_unack"}  # no denied burst from b or c
