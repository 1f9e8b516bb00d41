"""Three-phase energy meter simulator: mains voltages, a daily-ish load, energy integrated from power.

The load follows a compressed "day" (`DAY` seconds of simulated time) so that a demo shows the
currents rise and fall within minutes; energy is the integral of active power, as in a real meter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from simulators.base import DeviceSimulator, state

DAY = 600.0
"""Seconds of simulated time for one load cycle (a day compressed into ten minutes)."""
NOMINAL_V = 230.0
PHASES = ("l1", "l2", "l3")


@dataclass
class EnergyMeterSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "energy_meter"
    FAULTS: ClassVar[dict[str, str]] = {
        "breaker_trip": "incomer breaker trips: breaker_tripped on, currents and power 0",
        "undervoltage": "all phases sag to ~185 V",
        "overvoltage": "all phases rise to ~250 V",
        "phase_loss": "phase L3 drops to ~0 V (and its current to 0)",
        "imbalance": "L1 carries 50% more current and L3 40% less than L2 (> 20% imbalance)",
        "low_power_factor": "power factor falls to ~0.72",
    }
    COUNTERS: ClassVar[frozenset[str]] = frozenset({"energy_import"})

    _phase_share: tuple[float, float, float] = state((1.0, 1.0, 1.0))

    def _reset(self) -> None:
        self._phase_share = (
            1.0 + self.rng.uniform(-0.04, 0.04),
            1.0 + self.rng.uniform(-0.04, 0.04),
            1.0 + self.rng.uniform(-0.04, 0.04),
        )
        self.values.update(
            {f"voltage_{p}": NOMINAL_V for p in PHASES}
            | {f"current_{p}": 0.0 for p in PHASES}
            | dict(
                active_power=0.0,
                power_factor=0.93,
                frequency=50.0,
                energy_import=0.0,
                breaker_tripped=False,
            )
        )

    def load_current(self) -> float:
        """The mean phase current of the normal daily load: 15 A at night, about 65 A at the peak."""
        day = (self.t % DAY) / DAY
        return 40.0 - 25.0 * math.cos(2 * math.pi * day)

    def _physics(self, dt: float) -> None:
        v = self.values
        f = self.faults
        base_v = 185.0 if "undervoltage" in f else 250.0 if "overvoltage" in f else NOMINAL_V
        volts = [base_v + self.noise(0.8) for _ in PHASES]
        if "phase_loss" in f:
            volts[2] = abs(self.noise(0.5))
        share = list(self._phase_share)
        if "imbalance" in f:
            share = [1.5, 1.0, 0.6]
        mean = self.load_current()
        amps = [max(0.0, mean * s + self.noise(0.3)) for s in share]
        if "phase_loss" in f:
            amps[2] = 0.0
        if "breaker_trip" in f:
            amps = [0.0, 0.0, 0.0]
        pf = (0.72 if "low_power_factor" in f else 0.93) + self.noise(0.005)
        pf = max(0.0, min(1.0, pf))
        power = sum(u * i for u, i in zip(volts, amps, strict=True)) * pf / 1000.0
        for p, u, i in zip(PHASES, volts, amps, strict=True):
            v[f"voltage_{p}"] = u
            v[f"current_{p}"] = i
        v["power_factor"] = pf if power > 0 else 1.0
        v["active_power"] = power
        v["frequency"] = 50.0 + self.noise(0.01)
        v["energy_import"] = float(v["energy_import"]) + power * dt / 3600.0
        v["breaker_tripped"] = "breaker_trip" in f
