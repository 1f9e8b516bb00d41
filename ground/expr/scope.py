"""What an evaluation sees (`Scope`), and the memory of a rule's stateful helpers (`ExprState`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ground.expr.values import MISSING, Result
from ground.model import Value


@dataclass(slots=True)
class Rate:
    samples: deque[tuple[float, Value]] = field(default_factory=deque)  # only changes are kept
    latest: Result = MISSING


@dataclass(slots=True)
class Count:
    hits: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class Changed:
    previous: Result = MISSING
    latest: Result = MISSING


@dataclass(slots=True)
class Held:
    since: float | None = None


class ExprState:
    """The memory of one rule's `rate/count/changed/held` calls, bounded by their windows."""

    __slots__ = ("slots",)

    def __init__(self, slots: Iterable[Rate | Count | Changed | Held]) -> None:
        # a tuple holds its items inline: one object fewer to reach than a list
        self.slots = tuple(slots)

    def next_deadline(self, windows: list[float]) -> float | None:
        """The monotonic time at which a windowed helper may change without a new reading."""
        best: float | None = None
        for slot, window in zip(self.slots, windows, strict=True):
            t: float | None = None
            if isinstance(slot, Held) and slot.since is not None:
                t = slot.since + window
            elif isinstance(slot, Count) and slot.hits:
                t = slot.hits[0] + window
            elif isinstance(slot, Rate) and len(slot.samples) > 1:
                t = slot.samples[1][0] + window
            if t is not None and (best is None or t < best):
                best = t
        return best


class Scope:
    """What an evaluation sees: values, the clock, which points are new, helper memory, deadband.

    Args:
        values: the rule's own device's points.
        devices: every device's points, for `device.point` references.
        now: monotonic seconds.
        fresh: names (as written in the expression) that have a new reading in this evaluation.
        state: from `Expression.new_state()`; needed only if the expression uses helpers.
        deadband: the hysteresis to apply (the engine sets it while the rule is active).
    """

    __slots__ = ("deadband", "devices", "fresh", "now", "state", "values")

    def __init__(
        self,
        values: Mapping[str, Value],
        devices: Mapping[str, Mapping[str, Value]] | None = None,
        now: float = 0.0,
        fresh: frozenset[str] | set[str] = frozenset(),
        state: ExprState | None = None,
        deadband: float = 0.0,
    ) -> None:
        self.values = values
        self.devices = devices if devices is not None else {}
        self.now = now
        self.fresh = fresh
        self.state = state
        self.deadband = deadband
