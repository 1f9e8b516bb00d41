"""Drivers: the wire side of the gateway. Each kind is registered here, in one explicit table.

A driver turns one protocol into `Reading`s and `DeviceStatus`es for a `ReadingSink`. Every driver is
an async context manager that owns its tasks (entering starts polling or subscribing, leaving stops
everything it started), offers `run()` — the same, until cancelled — and `stats()` for /metrics.

A *driver kind* is a factory `(site, sink) -> {name: driver}`: it builds the drivers the site needs
(e.g. one Modbus driver per bus), keyed by a name used in task names (`fgw[modbus:plant-room].run`).
Each kind lives in its own module and is imported only when a site uses it. A new kind is added to
`DRIVERS` below, or registered at run time with `register_driver`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from ground.model import ReadingSink

if TYPE_CHECKING:
    from config.site import Site


class Driver(Protocol):
    """What the service needs of a driver."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def run(self) -> None:
        """Run until cancelled, then stop everything started."""
        ...

    def stats(self) -> dict[str, Any]:
        """Per-device counters, keyed by device id."""
        ...


DriverFactory = Callable[["Site", ReadingSink], dict[str, Driver]]


def _modbus(site: Site, sink: ReadingSink) -> dict[str, Driver]:
    """One `ModbusBusDriver` per bus that has devices."""
    from drivers.modbus import ModbusBusDriver

    drivers: dict[str, Driver] = {}
    for bus_id, bus in site.buses.items():
        devices = [
            d
            for d in site.devices.values()
            if d.spec.modbus is not None and d.spec.modbus.bus == bus_id
        ]
        if devices:
            drivers[f"modbus:{bus_id}"] = ModbusBusDriver(bus, devices, sink)
    return drivers


def _mqtt(site: Site, sink: ReadingSink) -> dict[str, Driver]:
    """The MQTT driver (`drivers/mqtt.py`), which provides `build(site, sink)` of the same shape."""
    if not any(d.spec.mqtt is not None for d in site.devices.values()):
        return {}
    from drivers.mqtt import build

    return dict(build(site, sink))


DRIVERS: dict[str, DriverFactory] = {
    "modbus": _modbus,
    "mqtt": _mqtt,
}
"""Every driver kind the gateway knows, by kind."""


def register_driver(kind: str, factory: DriverFactory) -> None:
    """Add (or replace) a driver kind, for a kind that lives outside this package."""
    DRIVERS[kind] = factory


def build_drivers(site: Site, sink: ReadingSink) -> dict[str, Driver]:
    """Every driver the site needs, by name (`modbus:BUS`, `mqtt`, …)."""
    drivers: dict[str, Driver] = {}
    for factory in DRIVERS.values():
        drivers.update(factory(site, sink))
    return drivers
