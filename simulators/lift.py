"""Lift simulator: a car that travels between floors, opens its doors at each stop, counts trips.

A small state machine: idle with doors shut → travel (2 s a floor) → doors open (4 s) → idle. A car
carries someone on most trips; it empties at the stop. Faults freeze the machine where it stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from simulators.base import DeviceSimulator, state

LOWEST, HIGHEST = -2, 18
SECONDS_PER_FLOOR = 2.0
DOOR_OPEN_TIME = 4.0
FAULT_CODE = 23
"""The code `fault` shows (23: door lock circuit fault on many controllers)."""

IDLE, UP, DOWN = 0, 1, 2


@dataclass
class LiftSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "lift"
    FAULTS: ClassVar[dict[str, str]] = {
        "entrapment": "car stops between floors, doors shut, occupied, alarm button pressed",
        "fault": f"controller fault: fault_code {FAULT_CODE}, the car stops at its floor",
        "out_of_service": "in_service off: the car parks with doors shut",
    }
    COUNTERS: ClassVar[frozenset[str]] = frozenset({"trips", "door_cycles"})

    position: float = state(0.0)
    """Car position in floors (fractional while travelling)."""
    target: int = state(0)
    _phase: str = state("idle")
    _phase_until: float = state(0.0)

    def _reset(self) -> None:
        self.position = 0.0
        self.target = 0
        self._phase, self._phase_until = "idle", self.rng.uniform(2.0, 8.0)
        self.values.update(
            moving=False,
            door_open=False,
            in_service=True,
            alarm_button=False,
            occupied=False,
            floor=0,
            direction=IDLE,
            fault_code=0,
            trips=0,
            door_cycles=0,
        )

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        super()._start_fault(name, params)
        v = self.values
        v.update(moving=False, direction=IDLE)
        if name == "entrapment":
            self.position = int(self.position) + 0.5  # between two floors
            v.update(door_open=False, occupied=True, alarm_button=True)
        elif name == "fault":
            self.position = round(self.position)
            v["fault_code"] = FAULT_CODE
        elif name == "out_of_service":
            self.position = round(self.position)
            v.update(door_open=False, occupied=False, in_service=False)
        v["floor"] = int(self.position)
        self._phase = "stopped"

    def _on_clear(self) -> None:
        self.position = round(self.position)
        self.values.update(
            alarm_button=False, fault_code=0, in_service=True, moving=False, direction=IDLE
        )
        self._phase, self._phase_until = "idle", self.t + 2.0

    def _physics(self, dt: float) -> None:
        if self.faults:
            return  # frozen where the fault left it
        v = self.values
        if self._phase == "idle" and self.t >= self._phase_until:
            self.target = self._pick_target()
            self._phase = "travel"
            v["occupied"] = self.rng.random() < 0.7
            v["direction"] = UP if self.target > self.position else DOWN
            v["moving"] = True
        elif self._phase == "travel":
            step = dt / SECONDS_PER_FLOOR
            if abs(self.target - self.position) <= step:
                self.position = float(self.target)
                v.update(moving=False, direction=IDLE, door_open=True)
                v["trips"] = int(v["trips"]) + 1
                v["door_cycles"] = int(v["door_cycles"]) + 1
                self._phase, self._phase_until = "doors", self.t + DOOR_OPEN_TIME
            else:
                self.position += step if self.target > self.position else -step
        elif self._phase == "doors" and self.t >= self._phase_until:
            v.update(door_open=False, occupied=False)
            self._phase, self._phase_until = "idle", self.t + self.rng.uniform(3.0, 15.0)
        v["floor"] = round(self.position)

    def _pick_target(self) -> int:
        here = round(self.position)
        while True:
            floor = self.rng.randint(LOWEST, HIGHEST)
            if floor != here:
                return floor
