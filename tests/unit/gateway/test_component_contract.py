"""The component contract: the registry's factories, the event bus, and closing a gateway that was
built and never run."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from config.site import load_site
from gateway.components import Capabilities, Component, EventBus, StatsRegistry
from gateway.registry import COMPONENTS, resolve
from gateway.service import Gateway

SITE = """
site: {id: contract}
storage: {path: ./state}
console: {enabled: false}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502, timeout: 1s}]
devices:
  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 1}, poll: 1s}
"""


def test_every_registry_entry_names_a_factory() -> None:
    names = [entry.factory for entry in COMPONENTS]
    assert len(names) == len(set(names))
    for entry in COMPONENTS:
        assert callable(resolve(entry)), entry.factory


def test_the_event_bus_sends_to_mqtt_first_then_to_subscribers_in_order() -> None:
    seen: list[tuple[str, Any]] = []
    bus = EventBus(lambda event: seen.append(("mqtt", event["n"])))
    bus.subscribe(lambda event: seen.append(("first", event["n"])))
    bus.subscribe(lambda event: seen.append(("second", event["n"])))
    bus.publish({"type": "alarm", "n": 1})
    bus.publish({"type": "alarm", "n": 2})
    assert seen == [
        ("mqtt", 1), ("first", 1), ("second", 1),
        ("mqtt", 2), ("first", 2), ("second", 2),
    ]  # fmt: skip


def test_the_stats_registry_keeps_the_order_components_were_built_in() -> None:
    stats = StatsRegistry()
    stats.register("notify", lambda: {"n": 1})
    stats.register("history", lambda: {"h": 2})
    assert list(stats) == ["notify", "history"]
    source = stats.get("history")
    assert source is not None and source() == {"h": 2}
    assert stats.get("influx") is None


@pytest.fixture
def site_path(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    return path


async def test_a_gateway_built_and_never_run_is_closed_by_async_with(site_path: Path) -> None:
    closed: list[str] = []

    class Probe(Component):
        name = "probe"

        async def close(self) -> None:
            closed.append(self.name)

    async with Gateway(load_site(site_path)) as gateway:
        gateway.components.append(Probe())
        assert isinstance(gateway.capabilities, Capabilities)
        assert gateway.capabilities.health is not None  # the monitor is always there
        assert gateway.capabilities.maintenance is not None
        connection = gateway.store.connection
    assert closed == ["probe"]
    with pytest.raises(sqlite3.ProgrammingError):
        connection.execute("SELECT 1")
    await gateway.close()  # idempotent
    assert closed == ["probe"]


async def test_components_hear_the_clock_the_gateway_was_built_with(site_path: Path) -> None:
    async with Gateway(load_site(site_path), monotonic=lambda: 7.0, wall=lambda: 1e9) as gateway:
        assert (gateway.context.clock.monotonic(), gateway.context.clock.wall()) == (7.0, 1e9)
        assert gateway.context.clock is gateway.clock
