"""The explicit table of simulators per template: no discovery by string magic (STYLE.md example 1)."""

from __future__ import annotations

from typing import Any

from config.models import ModbusPoint, MqttPoint
from simulators.base import DeviceSimulator, StaticSimulator
from simulators.door import AccessDoorSimulator
from simulators.fire import FirePanelSimulator
from simulators.lift import LiftSimulator
from simulators.meter import EnergyMeterSimulator
from simulators.pump import BoosterPumpSimulator
from simulators.water import LeakSensorSimulator, WaterTankSimulator

SIMULATORS: dict[str, type[DeviceSimulator]] = {
    "booster_pump": BoosterPumpSimulator,
    "energy_meter": EnergyMeterSimulator,
    "lift": LiftSimulator,
    "fire_panel": FirePanelSimulator,
    "access_door": AccessDoorSimulator,
    "water_tank": WaterTankSimulator,
    "leak_sensor": LeakSensorSimulator,
}
"""Template id -> its simulator class. A template without an entry is served by `StaticSimulator`."""


def simulator_for(
    device_id: str,
    template: str | None,
    points: dict[str, ModbusPoint | MqttPoint],
    seed: int | str | None = None,
    **options: Any,
) -> DeviceSimulator:
    """A simulator for one device of a site: its template's, or steady values for its own points."""
    cls = SIMULATORS.get(template or "", StaticSimulator)
    return cls(device_id=device_id, seed=seed, points=dict(points), **options)
