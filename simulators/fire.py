"""Fire panel simulator: quiet almost always, which is exactly why each of its faults must be tried.

Normally the fire pump is ready and the sprinkler main holds about 0.6 MPa. `fire` takes the zone
that is burning (`zone`, 1..16, default 1); several fires add up zone bits, as on a real panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from simulators.base import DeviceSimulator, InjectError, state
from simulators.encode import set_bit

SPRINKLER_NORMAL = 0.6
"""MPa in the sprinkler main when all is well."""
SPRINKLER_LOW = 0.05


@dataclass
class FirePanelSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "fire_panel"
    FAULTS: ClassVar[dict[str, str]] = {
        "fire": "fire in zone N (`--zone N`, default 1): zones bit N-1 and fire on",
        "fault": "panel fault on",
        "mains_fail": "mains failed, panel on battery",
        "battery_low": "standby battery low",
        "supervisory": "supervisory signal (e.g. a valve closed)",
        "sprinkler_low": "sprinkler main pressure falls to ~0.05 MPa",
        "pump_unavailable": "fire pump not available (fire_pump_ready off)",
    }

    zones_on: int = state(0)
    first_zone: int = state(0)  # the first zone of the current fire, as the panel's display shows

    def _reset(self) -> None:
        self.zones_on = 0
        self.first_zone = 0
        self.values.update(
            fire=False,
            fault=False,
            supervisory=False,
            mains_fail=False,
            battery_low=False,
            fire_pump_ready=True,
            zones=0,
            first_zone=0,
            sprinkler_pressure=SPRINKLER_NORMAL,
        )

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        if name != "fire":
            super()._start_fault(name, params)
            return
        unknown = set(params) - {"zone"}
        if unknown:
            raise InjectError(f"fault 'fire' takes only zone, got {sorted(unknown)}")
        zone = params.get("zone", 1)
        if isinstance(zone, str) and zone.strip().isdigit():
            zone = int(zone)  # from a command line
        if isinstance(zone, bool) or not isinstance(zone, int) or not 1 <= zone <= 16:
            raise InjectError(f"zone must be 1..16, not {zone!r}")
        if not self.zones_on:
            self.first_zone = zone
        self.zones_on = set_bit(self.zones_on, zone - 1, True)
        self._apply()

    def _on_clear(self) -> None:
        self.zones_on = 0
        self.first_zone = 0
        self._apply()

    def _apply(self) -> None:
        f = self.faults.keys() | ({"fire"} if self.zones_on else set())
        self.values.update(
            fire="fire" in f,
            zones=self.zones_on,
            first_zone=self.first_zone,
            fault="fault" in f,
            supervisory="supervisory" in f,
            mains_fail="mains_fail" in f,
            battery_low="battery_low" in f,
            fire_pump_ready="pump_unavailable" not in f,
        )

    def _physics(self, dt: float) -> None:
        self._apply()
        base = SPRINKLER_LOW if "sprinkler_low" in self.faults else SPRINKLER_NORMAL
        self.values["sprinkler_pressure"] = max(0.0, base + self.noise(0.003))
