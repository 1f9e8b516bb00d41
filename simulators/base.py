"""What every device simulator shares: values per point, faults, `set`, `clear`, `offline`, and the
register image built from the template's own register map.

A simulator is a plain dataclass driven by `step(dt)` with a seeded random generator and its own
simulated clock, so its physics is pure and reproducible in tests; the runner puts it on the wire.
The register or topic map is never re-declared here: it comes from `load_template(TEMPLATE)`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from config.models import ModbusPoint, MqttPoint, Template
from config.templates import load_template
from simulators.encode import encode_point, set_bit

OFFLINE = "offline"
CLEAR = "clear"
COMMON_FAULTS: dict[str, str] = {
    OFFLINE: "the device stops answering (Modbus: requests to its unit are dropped; MQTT: it goes silent)",
}
"""Faults every simulator has, besides `clear` (every fault off, back to normal)."""

RegisterImage = dict[str, dict[int, int]]
"""Table (holding, input, coil, discrete) -> wire address (0-based) -> word or bit."""


def state(default: Any) -> Any:
    """A simulator's internal state field: not a constructor argument, not in its repr."""
    return field(default=default, init=False, repr=False)


class InjectError(ValueError):
    """A fault or `set` a simulator cannot do; the message is shown to whoever injected it."""


@dataclass
class DeviceSimulator:
    """Base of every simulator: point values, active faults, pinned values and a simulated clock.

    Subclasses set `TEMPLATE`, `FAULTS` (name -> what it does, for the docs and error messages),
    `COUNTERS` (points that physics integrates or reads as parameters: `set` moves their base and
    physics goes on from there; any other point set by hand is *pinned* until `clear`), implement
    `_physics(dt)` and optionally `_start_fault(name, params)`.
    """

    TEMPLATE: ClassVar[str] = ""
    FAULTS: ClassVar[dict[str, str]] = {}
    COUNTERS: ClassVar[frozenset[str]] = frozenset()
    HOLES: ClassVar[dict[str, frozenset[int]]] = {}
    """Register holes of the template's device: table -> addresses answered with exception 02
    behind a simulated converter (`simulators.converter`). Tests set `holes` per instance."""

    device_id: str
    seed: int | str | None = None
    points: dict[str, ModbusPoint | MqttPoint] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    pinned: dict[str, Any] = field(default_factory=dict)
    offline: bool = False
    holes: dict[str, frozenset[int]] = field(default_factory=dict)
    t: float = 0.0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.holes = self.holes or dict(self.HOLES)
        if not self.points and self.TEMPLATE:
            self.points = dict(self.template.points)
        self._reset()

    @property
    def template(self) -> Template:
        return load_template(self.TEMPLATE)

    @classmethod
    def fault_names(cls) -> list[str]:
        """Every fault this simulator knows, `clear` included, in a stable order."""
        return [*cls.FAULTS, *COMMON_FAULTS, CLEAR]

    # ------------------------------------------------------------------ driving

    def step(self, dt: float) -> None:
        """Advance the physics by `dt` seconds of simulated time."""
        if dt < 0:
            raise ValueError("time does not run backwards")
        self.t += dt
        self._physics(dt)
        self.values.update(self.pinned)

    def inject(self, fault: str, **params: Any) -> None:
        """Start a fault (or `clear`, or `offline`).

        Raises:
            InjectError: an unknown fault (the message lists the known ones) or a bad parameter.
        """
        if fault == CLEAR:
            self.clear()
            return
        if fault == OFFLINE:
            self.offline = True
            return
        if fault not in self.FAULTS:
            known = ", ".join(self.fault_names())
            raise InjectError(
                f"unknown fault {fault!r} for {self.TEMPLATE or 'this device'}: {known}"
            )
        self._start_fault(fault, params)
        self.faults[fault] = params
        self.step(0.0)  # the fault shows at once, not only after the next physics step

    def clear(self) -> None:
        """Every fault off, every pinned value released, the device answering again."""
        self.faults.clear()
        self.pinned.clear()
        self.offline = False
        self._on_clear()
        self.step(0.0)

    def set(self, point: str, value: Any) -> None:
        """Set a simulated value directly, as the new base (counters go on integrating from it).

        Raises:
            InjectError: no such point, or a value that is not a number/bool/string as the point needs.
        """
        if point not in self.points:
            raise InjectError(
                f"{self.device_id} has no point {point!r}: {', '.join(sorted(self.points))}"
            )
        value = _coerce(self.points[point], value)
        self.values[point] = value
        if point in self.COUNTERS:
            self._on_set(point, value)
        else:
            self.pinned[point] = value

    # ------------------------------------------------------------------ for subclasses

    def _reset(self) -> None:
        """Fill `values` with the normal starting state."""

    def _physics(self, dt: float) -> None:
        """Advance the normal behaviour and the active faults by `dt`."""

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        """Hook: a fault begins (parameters checked here)."""
        if params:
            raise InjectError(f"fault {name!r} takes no parameters, got {sorted(params)}")

    def _on_clear(self) -> None:
        """Hook: the faults were cleared."""

    def _on_set(self, point: str, value: Any) -> None:
        """Hook: a counter or parameter was set by hand (update internal state from it)."""

    def noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)

    # ------------------------------------------------------------------ the wire

    def register_image(self) -> RegisterImage:
        """Every Modbus point's current value as words/bits, flags sharing a word combined."""
        image: RegisterImage = {"holding": {}, "input": {}, "coil": {}, "discrete": {}}
        for name, point in self.points.items():
            if not isinstance(point, ModbusPoint) or name not in self.values:
                continue
            table = image[point.table]
            value = self.values[name]
            if point.bit is not None:
                table[point.address] = set_bit(table.get(point.address, 0), point.bit, bool(value))
                continue
            for i, word in enumerate(encode_point(point, value)):
                table[point.address + i] = word
        return image


def _coerce(point: ModbusPoint | MqttPoint, value: Any) -> Any:
    kind = "bool" if isinstance(point, ModbusPoint) and point.bit is not None else point.type
    if kind == "bool":
        if isinstance(value, str):
            if value.lower() in ("1", "true", "on", "yes"):
                return True
            if value.lower() in ("0", "false", "off", "no"):
                return False
            raise InjectError(f"{value!r} is not a bool (use true/false)")
        return bool(value)
    if kind == "string":
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InjectError(f"{value!r} is not a number") from None
    return int(number) if kind.startswith(("int", "uint")) and point.scale == 1 else number


@dataclass
class StaticSimulator(DeviceSimulator):
    """A device without template (its own points in the site file): steady values, settable.

    Each point starts at the middle of its range (or 0 / false / ""), so `fgw sim` serves every
    device of a site; `set` changes a value and it stays.
    """

    def _reset(self) -> None:
        for name, point in self.points.items():
            if point.type == "string":
                self.values[name] = ""
            elif point.type == "bool" or (isinstance(point, ModbusPoint) and point.bit is not None):
                self.values[name] = False
            elif point.range is not None:
                self.values[name] = (point.range[0] + point.range[1]) / 2
            else:
                self.values[name] = 0
