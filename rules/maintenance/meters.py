"""Meters the maintenance plans count on: device counters followed safely, and meters the gateway
keeps itself when a device has none (run hours from `running`, starts from its rising edges).

Why not use a device's counter as is: counters reset (a controller replaced or cleared), roll over
(a uint16 of door cycles wraps at 65,536) and glitch (one garbage read). A plan that compared the
raw value with its limit would fire on a glitch or never fire again after a reset. So each meter
keeps a *total* that only grows by plausible, confirmed increments of the raw counter:

- an increase within the meter's plausible rate is counted at once;
- anything else — a decrease, or a jump faster than the equipment can count — is held as *pending*
  and counted only when the next reading continues from it; a one-off glitch never counts;
- a confirmed decrease from near the counter's modulus is a rollover (the wrap is counted); any
  other confirmed decrease is a reset, and the counter's new value is counted from zero (as
  Prometheus' `increase()` does); a confirmed jump upwards (commissioning, a counter set by hand)
  is counted.

Pure code: readings with their own timestamps in, totals out; `record()`/`from_record()` persist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SAMPLE_EVERY = 900.0
"""Seconds between the (timestamp, total) samples kept for the rate forecast."""
SAMPLE_SPAN = 7 * 86400.0
"""How much history the rate forecast looks at: a week, so weekday/weekend patterns average out."""
MIN_RATE_SPAN = 600.0
"""No forecast from less than ten minutes of samples."""
MAX_RUN_GAP = 60.0
"""Gateway-kept run hours: a gap between readings longer than this counts only this much, so a
communication outage is not counted as running time."""


class MeterKind(StrEnum):
    HOURS = "hours"  # run hours: at most one hour per hour
    COUNT = "count"  # starts, trips, door cycles: at most one per second
    ENERGY = "energy"  # kWh and other totals without a known ceiling rate


_MAX_RATE = {MeterKind.HOURS: 1 / 3600.0, MeterKind.COUNT: 1.0, MeterKind.ENERGY: None}
_SLACK = {MeterKind.HOURS: 0.2, MeterKind.COUNT: 5.0, MeterKind.ENERGY: 0.0}
"""What an increase may exceed the rate bound by (counter resolution, clock jitter)."""

ROLLOVER_FRACTION = 0.9
"""A decrease from at least this fraction of the modulus is a wrap, not a reset."""


@dataclass
class _Samples:
    points: list[tuple[float, float]] = field(default_factory=list)

    def add(self, ts: float, total: float) -> None:
        """Keep samples at least `SAMPLE_EVERY` apart, the newest always last."""
        if len(self.points) >= 2 and ts - self.points[-2][0] < SAMPLE_EVERY:
            self.points[-1] = (ts, total)
        else:
            self.points.append((ts, total))
        while len(self.points) > 2 and ts - self.points[0][0] > SAMPLE_SPAN:
            self.points.pop(0)

    def rate(self) -> float | None:
        """Units per second over the kept span, or None with too little history."""
        if len(self.points) < 2:
            return None
        (t0, v0), (t1, v1) = self.points[0], self.points[-1]
        if t1 - t0 < MIN_RATE_SPAN:
            return None
        return max(0.0, (v1 - v0) / (t1 - t0))


_NOT_RESTORED = frozenset({"samples", "type", "name", "kind", "modulus", "source"})
"""Configuration comes from the site file of today, not from the stored record."""


@dataclass
class Meter:
    """Base: a total with a rate; subclasses say how readings move it."""

    name: str
    total: float | None = None
    samples: _Samples = field(default_factory=_Samples)
    source: str = "device"

    def rate(self) -> float | None:
        return self.samples.rate()

    def _count(self, delta: float, ts: float) -> float:
        self.total = (self.total or 0.0) + delta
        self.samples.add(ts, self.total)
        return delta

    def record(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "samples"}
        data["samples"] = [list(p) for p in self.samples.points]
        data["type"] = type(self).__name__
        return data

    def _restore(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key in _NOT_RESTORED or key not in self.__dict__:
                continue
            setattr(self, key, value)
        self.samples = _Samples([(float(t), float(v)) for t, v in record.get("samples", [])])


@dataclass
class CounterMeter(Meter):
    """A device's own counter, followed as described in the module docstring.

    Args:
        kind: what the counter counts (bounds its plausible rate).
        modulus: where the raw counter wraps (2**bits × scale), or None if unknown.
    """

    kind: MeterKind = MeterKind.COUNT
    modulus: float | None = None
    raw: float | None = None
    raw_ts: float | None = None
    pending: float | None = None
    pending_ts: float | None = None
    resets: int = 0
    rollovers: int = 0
    jumps: int = 0
    glitches: int = 0

    def feed(self, value: float, ts: float) -> float:
        """Take one good reading of the raw counter; returns what was added to the total."""
        value = float(value)
        if self.raw is None or self.raw_ts is None:
            self.raw, self.raw_ts = value, ts
            if self.total is None:
                self.total = value  # a new meter starts where the device's counter is
            self.samples.add(ts, self.total)
            return 0.0
        delta = value - self.raw
        if self._plausible(delta, ts - self.raw_ts):
            return self._accept(delta, value, ts)
        if self.pending is not None and self.pending_ts is not None:
            onward = value - self.pending
            if self._plausible(onward, ts - self.pending_ts):
                return self._confirm(value, ts)
            self.glitches += 1
        self.pending, self.pending_ts = value, ts
        return 0.0

    def _plausible(self, delta: float, elapsed: float) -> bool:
        if delta < 0:
            return False
        limit = _MAX_RATE[self.kind]
        if limit is None:
            return True
        return delta <= max(elapsed, 0.0) * limit + _SLACK[self.kind]

    def _accept(self, delta: float, value: float, ts: float) -> float:
        if self.pending is not None:
            self.glitches += 1  # a held value the counter did not continue from
        self.raw, self.raw_ts, self.pending, self.pending_ts = value, ts, None, None
        return self._count(delta, ts)

    def _confirm(self, value: float, ts: float) -> float:
        assert self.raw is not None and self.pending is not None
        step = self.pending
        if step < self.raw:
            if self.modulus and self.raw >= ROLLOVER_FRACTION * self.modulus:
                self.rollovers += 1
                jump = (self.modulus - self.raw) + step
            else:
                self.resets += 1
                jump = step  # counted from zero
        else:
            self.jumps += 1
            jump = step - self.raw
        self.raw, self.raw_ts, self.pending, self.pending_ts = value, ts, None, None
        return self._count(jump + (value - step), ts)


@dataclass
class RunHoursMeter(Meter):
    """Run hours the gateway keeps from a `running` point: time between readings while running."""

    source: str = "gateway"
    running: bool | None = None
    last_ts: float | None = None

    def feed(self, running: bool, ts: float) -> float:
        added = 0.0
        if self.total is None:
            self.total = 0.0
        if self.running and self.last_ts is not None and ts > self.last_ts:
            added = min(ts - self.last_ts, MAX_RUN_GAP) / 3600.0
        if self.last_ts is None or ts >= self.last_ts:
            self.running, self.last_ts = bool(running), ts
        if added:
            return self._count(added, ts)
        self.samples.add(ts, self.total)
        return 0.0


@dataclass
class StartsMeter(Meter):
    """Starts the gateway counts from the rising edges of a `running` point."""

    source: str = "gateway"
    running: bool | None = None

    def feed(self, running: bool, ts: float) -> float:
        if self.total is None:
            self.total = 0.0
        rising = self.running is False and bool(running)
        self.running = bool(running)
        if rising:
            return self._count(1.0, ts)
        self.samples.add(ts, self.total)
        return 0.0


def restore_meter(record: dict[str, Any], into: Meter) -> Meter:
    """Put a stored record back into a freshly built meter of the same type (else keep it new)."""
    if record.get("type") != type(into).__name__:
        return into
    into._restore(record)
    return into
