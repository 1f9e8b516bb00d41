"""The Modbus bus driver's schedule and registry, and the parts its tests share: a recording sink,
devices, a check that no task is left behind. Against real pymodbus servers on loopback:
tests/integration/modbus/test_modbus_poller.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from config.models import DeviceSpec, ModbusPoint
from config.site import Device
from drivers.modbus.poller import ModbusBusDriver, SlotTimer, next_slot
from ground.model import DeviceStatus, Quality, Reading
from tests.support import ROOT

SIMPLE = {"level": ModbusPoint(register="holding", address=0, type="uint16")}


# ------------------------------------------------------------------------------ test parts


class Recorder:
    """A `ReadingSink` that keeps everything and lets a test await a condition."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []
        self.statuses: list[DeviceStatus] = []
        self._changed = asyncio.Event()

    def readings(self, batch: Sequence[Reading]) -> None:
        self.batches.append(list(batch))
        self._changed.set()

    def device_status(self, status: DeviceStatus) -> None:
        self.statuses.append(status)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def online(self, device: str) -> list[bool]:
        return [s.online for s in self.statuses if s.device == device]

    def latest(self, device: str) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        for batch in self.batches:
            out.update({r.point: r for r in batch if r.device == device})
        return out

    def batches_of(self, device: str, quality: Quality) -> list[list[Reading]]:
        return [b for b in self.batches if b and b[0].device == device and b[0].quality is quality]


def device(
    device_id: str,
    unit: int,
    points: dict[str, ModbusPoint],
    bus: str = "plant",
    **spec: Any,
) -> Device:
    return Device(
        spec=DeviceSpec(id=device_id, modbus={"bus": bus, "unit": unit}, **spec),
        points=dict(points),
        rules=[],
        plans=[],
        template=None,
    )


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves a task running (ours or pymodbus' reconnect tasks)."""
    yield
    await asyncio.sleep(0)  # let cancelled tasks finish their last step
    leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"tasks left running: {[t.get_name() for t in leaked]}"


# ------------------------------------------------------------------------------ tests


def test_schedule_is_a_fixed_grid() -> None:
    assert next_slot(10.0, 1.0, 10.2) == 11.0
    assert next_slot(10.0, 1.0, 13.5) == 14.0  # overran: skip slots, no burst, no drift
    assert next_slot(10.0, 0.5, 11.0) == 11.5


async def test_a_slot_wakes_its_devices_with_one_timer() -> None:
    loop = asyncio.get_running_loop()
    slots = SlotTimer(loop)
    when = loop.time() + 0.01
    timers = len(loop._scheduled)  # type: ignore[attr-defined]
    first, second, cancelled = (slots.wait_until(when) for _ in range(3))
    later = slots.wait_until(when + 0.5)  # far enough that a late loop does not run both slots
    assert len(loop._scheduled) == timers + 2  # type: ignore[attr-defined]  # one per slot
    cancelled.cancel()  # one device stopped: the others of its slot still wake
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert not later.done()  # a later slot waits for its own time
    await asyncio.wait_for(later, 5)
    assert loop.time() >= when + 0.5


async def test_registry_builds_one_driver_per_bus_with_devices() -> None:

    from config.site import load_site
    from drivers import DRIVERS, build_drivers, register_driver

    site = load_site(ROOT / "examples" / "riverside.yaml")
    drivers = build_drivers(site, Recorder())
    modbus = {name: d for name, d in drivers.items() if isinstance(d, ModbusBusDriver)}
    on_buses = {d.spec.modbus.bus for d in site.devices.values() if d.spec.modbus is not None}
    assert set(modbus) == {f"modbus:{bus}" for bus in on_buses}
    assert sum(len(d.pollers) for d in modbus.values()) == sum(
        1 for d in site.devices.values() if d.spec.modbus is not None
    )
    saved = dict(DRIVERS)
    try:
        register_driver("extra", lambda site, sink: {"extra": modbus[next(iter(modbus))]})
        assert "extra" in build_drivers(site, Recorder())
    finally:
        DRIVERS.clear()
        DRIVERS.update(saved)
