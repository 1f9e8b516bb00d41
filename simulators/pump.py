"""Booster pump simulator: a pump that cycles on demand, with trips, dry running and worn bearings.

The demand of the building (m³/h) wanders between quiet spells and busy spells. When the pump is
off, the pressure of the network decays with the demand; below the cut-in pressure the pump starts,
pushes the pressure back to its setpoint and stops after a minimum run once demand has gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from simulators.base import DeviceSimulator, state

CUT_IN = 0.8
"""bar below the setpoint at which the stopped pump starts."""
MIN_RUN = 60.0
"""Seconds a pump runs at least once started (motor protection)."""
MIN_FLOW = 2.0
"""m³/h the running pump always moves (recirculation), so a healthy pump never looks dry."""
DRY_RUN_TRIP_AFTER = 20.0
"""Seconds of dry running before the controller's dry-run protection bit comes on."""
SHORT_CYCLE_PERIOD = 20.0
"""Seconds between starts while short-cycling (10 s on, 10 s off: far above 6 starts/h)."""


@dataclass
class BoosterPumpSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "booster_pump"
    FAULTS: ClassVar[dict[str, str]] = {
        "trip": "controller trips: status bit 0 (fault) on, the pump stops and stays stopped",
        "dry_run": "runs with no water: flow ~0, current low; after 20 s status bit 1 (dry_run_trip) on",
        "low_pressure": "runs but the outlet pressure stays 2.5 bar below the setpoint",
        "vibration": "worn bearing: vibration ~9 mm/s (> 7.1) while running",
        "short_cycling": "starts and stops every 20 s (starts rise far above 6 per hour)",
    }
    COUNTERS: ClassVar[frozenset[str]] = frozenset({"run_hours", "starts", "pressure_setpoint"})

    demand: float = state(0.0)
    _demand_target: float = state(0.0)
    _next_demand_change: float = state(0.0)
    _running_since: float = state(0.0)
    _fault_since: float = state(0.0)
    pressure: float = state(4.5)
    """The network's true pressure; the reading adds sensor noise to it."""

    def _reset(self) -> None:
        self.values.update(
            running=False,
            fault=False,
            dry_run_trip=False,
            outlet_pressure=4.5,
            flow=0.0,
            motor_current=0.0,
            vibration=0.1,
            run_hours=0.0,
            starts=0,
            pressure_setpoint=4.5,
        )

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        super()._start_fault(name, params)
        self._fault_since = self.t
        if name == "trip":
            self._set_running(False)
        elif name in ("dry_run", "low_pressure"):
            self._set_running(True)

    def _on_clear(self) -> None:
        self.values.update(fault=False, dry_run_trip=False)

    def _set_running(self, on: bool) -> None:
        if on and not self.values["running"]:
            self.values["starts"] = int(self.values["starts"]) + 1
            self._running_since = self.t
        self.values["running"] = on

    def _wander_demand(self, dt: float) -> None:
        """Quiet and busy spells: every 10-30 minutes a new target demand, a third of them zero."""
        if self.t >= self._next_demand_change:
            busy = self.rng.random() > 0.35
            self._demand_target = self.rng.uniform(3.0, 12.0) if busy else 0.0
            self._next_demand_change = self.t + self.rng.uniform(600.0, 1800.0)
        self.demand += (self._demand_target - self.demand) * min(1.0, dt / 5.0)

    def _control(self) -> None:
        """The pump controller: start below cut-in, stop after the minimum run once demand is gone."""
        v = self.values
        setpoint = float(v["pressure_setpoint"])
        if "trip" in self.faults:
            self._set_running(False)
        elif "dry_run" in self.faults or "low_pressure" in self.faults:
            self._set_running(True)
        elif "short_cycling" in self.faults:
            phase = (self.t - self._fault_since) % SHORT_CYCLE_PERIOD
            self._set_running(phase < SHORT_CYCLE_PERIOD / 2)
        elif not v["running"] and self.pressure < setpoint - CUT_IN:
            self._set_running(True)
        elif (
            v["running"] and self.t - self._running_since >= MIN_RUN and self.demand < MIN_FLOW / 2
        ):
            self._set_running(False)

    def _physics(self, dt: float) -> None:
        v = self.values
        self._wander_demand(dt)
        self._control()
        setpoint = float(v["pressure_setpoint"])
        running = bool(v["running"])
        pressure = self.pressure
        if running:
            target = setpoint - 2.5 if "low_pressure" in self.faults else setpoint
            if "dry_run" in self.faults:
                target = 0.4
            pressure += (target - pressure) * min(1.0, dt / 2.0)
            flow = 0.1 if "dry_run" in self.faults else max(self.demand, MIN_FLOW)
            current = 2.5 if "dry_run" in self.faults else 3.0 + 0.9 * flow
            vibration = 9.0 if "vibration" in self.faults else 1.8
            v["run_hours"] = float(v["run_hours"]) + dt / 3600.0
        else:
            # The network loses pressure with the water drawn; a little even with no demand (leaks).
            pressure -= (0.001 + 0.05 * self.demand) * dt
            flow, current, vibration = 0.0, 0.0, 0.1
        self.pressure = max(0.0, pressure)
        v["outlet_pressure"] = max(0.0, pressure + self.noise(0.02))
        v["flow"] = max(0.0, flow + (self.noise(0.1) if running and flow > 1 else 0.0))
        v["motor_current"] = max(0.0, current + (self.noise(0.1) if running else 0.0))
        v["vibration"] = max(0.0, vibration + self.noise(0.1 if running else 0.02))
        v["fault"] = "trip" in self.faults
        dry_for = self.t - self._fault_since
        v["dry_run_trip"] = "dry_run" in self.faults and dry_for >= DRY_RUN_TRIP_AFTER
