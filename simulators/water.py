"""Water simulators: a tank whose level follows the mains inlet and the building's draw (Modbus), and
a leak sensor that reports over MQTT.

The tank: the inlet's float valve opens below 80 % and closes at 95 %; the building draws between
0.02 and 0.1 % a second. `supply_loss` shuts the mains off (the level falls with the draw);
`tank_low` drops it to 15 % at once with the inlet dry; `overflow` fills it past the top.

The leak sensor only fills `outbox` with `(sub-topic, payload, retain)` messages for the runner, like
the access door: `{"leak": bool, "battery": %}` on every change and every heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from simulators.base import DeviceSimulator, state
from simulators.door import Message

INLET_OPEN_BELOW = 80.0
INLET_CLOSE_AT = 95.0
INLET_RATE = 0.3
"""% per second the open inlet adds."""


@dataclass
class WaterTankSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "water_tank"
    FAULTS: ClassVar[dict[str, str]] = {
        "supply_loss": "the mains inlet is dry: the level falls with the building's draw",
        "tank_low": "the level drops to 15 % at once and the inlet stays dry",
        "overflow": "the inlet valve sticks open: level 99 %, overflow switch on",
    }

    draw: float = state(0.05)

    def _reset(self) -> None:
        self.values.update(level=85.0, inlet_open=False, overflow=False)

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        super()._start_fault(name, params)
        if name == "tank_low":
            self.values.update(level=15.0, inlet_open=False)
        elif name == "overflow":
            self.values.update(level=99.0, inlet_open=True, overflow=True)

    def _on_clear(self) -> None:
        self.values.update(level=max(float(self.values["level"]), 60.0), overflow=False)

    def _physics(self, dt: float) -> None:
        v = self.values
        if "overflow" in self.faults:
            v.update(level=99.0, inlet_open=True, overflow=True)
            return
        self.draw = min(0.1, max(0.02, self.draw + self.noise(0.005)))
        level = float(v["level"]) - self.draw * dt
        dry = "supply_loss" in self.faults or "tank_low" in self.faults
        if dry:
            v["inlet_open"] = False
        elif level < INLET_OPEN_BELOW:
            v["inlet_open"] = True
        elif level >= INLET_CLOSE_AT:
            v["inlet_open"] = False
        if v["inlet_open"]:
            level += INLET_RATE * dt
        if "tank_low" in self.faults:
            level = min(level, 15.0)
        v["level"] = round(min(100.0, max(0.0, level)), 1)


@dataclass
class LeakSensorSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "leak_sensor"
    FAULTS: ClassVar[dict[str, str]] = {
        "leak": "water under the sensor: leak true until clear",
        "battery_low": "the battery reads 12 %",
    }

    outbox: list[Message] = field(default_factory=list, repr=False)
    _published: tuple[bool, float] | None = state(None)
    _next_heartbeat: float = state(0.0)

    @property
    def heartbeat(self) -> float:
        return self.template.heartbeat or 30.0

    def _reset(self) -> None:
        self.values.update(leak=False, battery=87.0)

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        super()._start_fault(name, params)
        if name == "leak":
            self.values["leak"] = True
        elif name == "battery_low":
            self.values["battery"] = 12.0

    def _on_clear(self) -> None:
        self.values.update(leak=False, battery=87.0)
        self._published = None

    def _physics(self, dt: float) -> None:
        self.values.update(self.pinned)
        if self.offline:
            return
        now = (bool(self.values["leak"]), float(self.values["battery"]))
        if now != self._published or self.t >= self._next_heartbeat:
            self.outbox.append(Message("", {"leak": now[0], "battery": now[1]}))
            self._published = now
            self._next_heartbeat = self.t + self.heartbeat

    def announce(self) -> None:
        """Publish the state again at the next step (after a reconnect)."""
        self._published = None

    def take_outbox(self) -> list[Message]:
        messages, self.outbox = self.outbox, []
        return messages
