"""The site's meters (run hours, starts, counters), fed by readings on the gateway's event loop.

A device's counter point that a ledger shows (`METER_POINTS`) or a plan counts (`every_count`)
is a `CounterMeter`; a device with a `running` point and no counter of its own gets run hours and
starts kept by the gateway. `feed` is on every poll's path, so it looks a batch's device up once
and passes devices without a meter at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from config.models import ModbusPoint
from config.site import Site
from ground.model import Quality, Reading
from rules.maintenance.meters import (
    CounterMeter,
    Meter,
    MeterKind,
    RunHoursMeter,
    StartsMeter,
    restore_meter,
)

log = logging.getLogger("fgw.maintenance")

_BOOL, _FLOAT, _NEITHER = 0, 1, 2
"""How a meter is fed a reading: as running or not (run hours, starts), as a number (counters)."""

METER_POINTS: dict[str, MeterKind] = {
    "run_hours": MeterKind.HOURS,
    "starts": MeterKind.COUNT,
    "trips": MeterKind.COUNT,
    "door_cycles": MeterKind.COUNT,
    "energy_import": MeterKind.ENERGY,
}
"""Counters every ledger shows when a device has them (PRODUCT §5: the live meters)."""

_BITS = {"uint16": 16, "int16": 15, "uint32": 32, "int32": 31, "uint64": 64, "int64": 63}

Key = tuple[str, str]
"""(device, meter name)"""


class MeterBoard:
    """Every meter of a site, by (device, name), with its unit and what changed since saved."""

    def __init__(self, site: Site) -> None:
        self.meters: dict[Key, Meter] = {}
        self.units: dict[Key, str] = {}
        # by device then point, each meter with how it is fed (`_BOOL`, `_FLOAT` or neither) and
        # its dirty key: a batch (one device's poll) looks its device up once
        self._by_device: dict[str, dict[str, list[tuple[Meter, int, Key]]]] = {}
        self.dirty: set[Key] = set()
        self.bad_values = 0
        for device in site.devices.values():
            counted = {p.every_count.point for p in device.plans if p.every_count is not None}
            for point_name, point in device.points.items():
                kind = METER_POINTS.get(point_name)
                if kind is None and point_name in counted:
                    kind = MeterKind.COUNT
                if kind is None:
                    continue
                meter = CounterMeter(name=point_name, kind=kind, modulus=_modulus(point))
                self._add(device.id, point_name, meter, point_name, point.unit)
            if "running" in device.points:
                if "run_hours" not in device.points:
                    self._add(device.id, "run_hours", RunHoursMeter("run_hours"), "running", "h")
                if "starts" not in device.points:
                    self._add(device.id, "starts", StartsMeter("starts"), "running", "")

    def _add(self, device: str, name: str, meter: Meter, point: str, unit: str) -> None:
        self.meters[(device, name)] = meter
        self.units[(device, name)] = unit
        if isinstance(meter, RunHoursMeter | StartsMeter):
            mode = _BOOL
        elif isinstance(meter, CounterMeter):
            mode = _FLOAT
        else:
            mode = _NEITHER
        points = self._by_device.setdefault(device, {})
        points.setdefault(point, []).append((meter, mode, (device, meter.name)))

    def restore(self, records: Mapping[Key, dict[str, Any]]) -> None:
        """Saved meters, in place: the feeds keep pointing at them."""
        for key, record in records.items():
            if key in self.meters:
                restore_meter(record, self.meters[key])

    def feed(self, batch: Sequence[Reading]) -> set[str]:
        """Move the meters of a batch's good readings; returns the devices whose meters moved."""
        touched: set[str] = set()
        by_device, dirty, good = self._by_device, self.dirty, Quality.GOOD
        device: str | None = None
        points: dict[str, list[tuple[Meter, int, Key]]] | None = None
        for reading in batch:
            if reading.device != device:  # a batch is usually one device's poll: looked up once
                device = reading.device
                points = by_device.get(device)
            if points is None:  # most devices feed no meter
                continue
            meters = points.get(reading.point)
            if meters is None or reading.quality != good or reading.value is None:
                continue
            value = reading.value
            if isinstance(value, str) or (
                isinstance(value, float) and value != value  # NaN
            ):
                self._bad_value(reading)
                continue
            for meter, mode, key in meters:
                if mode == _BOOL:
                    meter.feed(bool(value), reading.ts)  # type: ignore[attr-defined]
                elif mode == _FLOAT:
                    meter.feed(float(value), reading.ts)  # type: ignore[attr-defined]
                dirty.add(key)
            touched.add(device)
        return touched

    def value(self, device: str, name: str | None) -> float | None:
        """The meter's total, or None (no such meter, or no meter named)."""
        if name is None:
            return None
        meter = self.meters.get((device, name))
        return meter.total if meter is not None else None

    def records(self) -> dict[Key, dict[str, Any]]:
        """The records of the meters changed since `dirty` was last cleared."""
        return {key: self.meters[key].record() for key in self.dirty}

    def take_records(self) -> dict[Key, dict[str, Any]]:
        """`records()`, and clear `dirty`: they go with the caller's commit."""
        records = self.records()
        self.dirty.clear()
        return records

    def ledger(self, device: str) -> dict[str, Any]:
        """The device's meters as the equipment ledger shows them."""
        meters = {}
        for (dev, name), meter in self.meters.items():
            if dev != device:
                continue
            rate = meter.rate()
            meters[name] = {
                "value": meter.total,
                "unit": self.units.get((dev, name), ""),
                "source": meter.source,
                "per_day": rate * 86400.0 if rate is not None else None,
            }
        return meters

    def _bad_value(self, reading: Reading) -> None:
        self.bad_values += 1
        if self.bad_values == 1:
            log.warning(
                "meter %s/%s: value %r is not a number; ignored (counted from now on)",
                reading.device,
                reading.point,
                reading.value,
            )


def _modulus(point: Any) -> float | None:
    if not isinstance(point, ModbusPoint):
        return None
    bits = _BITS.get(point.value_type)
    return float(2**bits) * point.scale if bits else None
