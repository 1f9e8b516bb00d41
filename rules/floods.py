"""Alarm-load management: chattering alarms are latched, alarm floods are detected. Pure code.

Why: an operator flooded with alarms misses the one that matters (EEMUA 191 counts more than 10
alarms in 10 minutes as a flood; ISA-18.2 calls an alarm that flips on and off by itself
*chattering*). Both are measured here on the clock the caller gives (the gateway's monotonic clock;
the alarm-load report's journal times), so the same code serves the live gateway and the report.

- `ChatterFilter` sits between the rule engine and the alarm book. It counts *activations* (rising
  edges of a rule's condition) per alarm; more than `activations` within `window` and the alarm is
  flagged chattering. While chattering, a clear of its condition is *held*: the alarm stays active
  (latched) until the condition has not flipped for `quiet` seconds, then the held clear goes on
  to the book. A re-activation while the clear is held cancels both: the book never sees the flip.
- `FloodDetector` watches announced activations (new episodes, see `Activations`) across the whole
  site. More than `alarms` within `window` starts a flood; the first alarm of the burst in the
  window is its *first-out* (most often the root cause); at most `end_at` within the window ends it.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rules.alarms import iso
from rules.engine import ConditionChange

ACTIVE_UNACK = "active_unack"


@dataclass(frozen=True, slots=True)
class ChatterSettings:
    """More than `activations` rising edges within `window` s: chattering, until `quiet` s calm."""

    activations: int = 5
    window: float = 60.0
    quiet: float = 30.0


@dataclass(frozen=True, slots=True)
class ChatterFlag:
    """An alarm became chattering (`on`) or calm again (`off`)."""

    alarm_id: str
    on: bool
    reason: str


@dataclass(slots=True)
class _Latch:
    last_flip: float
    held: ConditionChange | None = None  # the clear waiting for calm
    passed: ConditionChange | None = None  # the last change the book saw


class ChatterFilter:
    """Counts activations and latches chattering alarms (see the module docstring)."""

    def __init__(self, settings: ChatterSettings = ChatterSettings()) -> None:
        self.settings = settings
        self._edges: dict[str, deque[float]] = {}
        self._raw: dict[str, bool] = {}
        self._latched: dict[str, _Latch] = {}

    def chattering(self) -> list[str]:
        return sorted(self._latched)

    def restore(self, alarm_ids: Iterable[str], now: float) -> None:
        """After a restart: these alarms were chattering; they stay latched until `quiet` from now."""
        for alarm_id in alarm_ids:
            self._latched[alarm_id] = _Latch(last_flip=now)

    def filter(
        self, changes: Sequence[ConditionChange], now: float
    ) -> tuple[list[ConditionChange], list[ChatterFlag]]:
        """The changes the alarm book should see now, and chattering flags that went on."""
        passed: list[ConditionChange] = []
        flags: list[ChatterFlag] = []
        limit, window = self.settings.activations, self.settings.window
        for change in changes:
            alarm_id = change.alarm_id
            rising = change.active and not self._raw.get(alarm_id, False)
            self._raw[alarm_id] = change.active
            if rising:
                edges = self._edges.setdefault(alarm_id, deque())
                edges.append(now)
                while edges and edges[0] <= now - window:
                    edges.popleft()
                if len(edges) > limit and alarm_id not in self._latched:
                    self._latched[alarm_id] = _Latch(last_flip=now)
                    reason = f"chattering: {len(edges)} activations within {window:g}s"
                    flags.append(ChatterFlag(alarm_id, True, reason))
            latch = self._latched.get(alarm_id)
            if latch is None:
                passed.append(change)
                continue
            if rising or (not change.active and latch.held is None):
                latch.last_flip = now
            if not change.active:
                if latch.passed is None or latch.passed.active:
                    latch.held = change  # the alarm stays active for now
                    continue
                latch.passed = change  # nothing to hold: the book already has it inactive
                passed.append(change)
                continue
            if (
                latch.held is not None
                and latch.passed is not None
                and latch.passed.suppressed == change.suppressed
            ):
                latch.held = None  # back before the clear went out: the book never sees the flip
                continue
            latch.held = None
            latch.passed = change
            passed.append(change)
        return passed, flags

    def tick(self, now: float, wall: float) -> tuple[list[ConditionChange], list[ChatterFlag]]:
        """Release the clears of alarms calm for `quiet` seconds, and turn their flags off."""
        released: list[ConditionChange] = []
        flags: list[ChatterFlag] = []
        quiet = self.settings.quiet
        for alarm_id, latch in list(self._latched.items()):
            if now - latch.last_flip < quiet:
                continue
            del self._latched[alarm_id]
            self._edges.pop(alarm_id, None)
            flags.append(ChatterFlag(alarm_id, False, f"no longer chattering: calm for {quiet:g}s"))
            if latch.held is not None:
                released.append(
                    dataclasses.replace(
                        latch.held,
                        ts_wall=wall,
                        reason=f"{latch.held.reason} (held while chattering)",
                    )
                )
        return released, flags

    def next_deadline(self) -> float | None:
        if not self._latched:
            return None
        return min(latch.last_flip for latch in self._latched.values()) + self.settings.quiet


# ------------------------------------------------------------------------------------------ floods


@dataclass(frozen=True, slots=True)
class FloodSettings:
    """More than `alarms` activations within `window` s is a flood; at most `end_at` ends it."""

    alarms: int = 10
    window: float = 600.0
    end_at: int = 5


class Activations:
    """Tells announced activations (a new episode reaching `active_unack`) from other transitions.

    An alarm returning to `active_unack` from an overlay in the same episode is not a new alarm for
    the operator; an episode that starts under suppression and is announced later is one, when it is.
    """

    def __init__(self, episodes: dict[str, int] | None = None) -> None:
        self._announced: dict[str, int] = dict(episodes or {})

    def is_new(self, alarm_id: str, to_state: str, episode: int) -> bool:
        if to_state != ACTIVE_UNACK or episode <= self._announced.get(alarm_id, 0):
            return False
        self._announced[alarm_id] = episode
        return True


@dataclass(slots=True)
class Flood:
    """A flood in progress or ended. Times are on the caller's clock (`t`) and wall clock."""

    started: float
    started_wall: float
    first_out: str
    alarms: list[str] = field(default_factory=list)  # every activation during the flood, in order
    peak: int = 0
    ended: float | None = None
    ended_wall: float | None = None

    def event(self, state: str, window: float) -> dict[str, Any]:
        """The `P/events` JSON (`type: flood`, `state: started | ended`)."""
        return {
            "type": "flood",
            "state": state,
            "at": iso(self.started_wall if state == "started" else self.ended_wall),
            "started_at": iso(self.started_wall),
            "ended_at": iso(self.ended_wall),
            "first_out": self.first_out,
            "count": len(self.alarms),
            "peak": self.peak,
            "window_s": window,
            "alarms": list(dict.fromkeys(self.alarms))[:100],
        }


class FloodDetector:
    """Site-wide sliding-window count of activations (see the module docstring)."""

    def __init__(self, settings: FloodSettings = FloodSettings()) -> None:
        self.settings = settings
        self._recent: deque[tuple[float, str]] = deque()
        self.current: Flood | None = None

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] <= now - self.settings.window:
            self._recent.popleft()

    def observe(self, alarm_id: str, now: float, wall: float) -> list[tuple[str, Flood]]:
        """One activation; returns `("started", flood)` when it starts one (or an end first)."""
        out = self.tick(now, wall)
        self._trim(now)
        self._recent.append((now, alarm_id))
        flood = self.current
        count = len(self._recent)
        if flood is not None:
            flood.alarms.append(alarm_id)
            flood.peak = max(flood.peak, count)
        elif count > self.settings.alarms:
            first_t, first_id = self._recent[0]
            flood = Flood(
                started=first_t,
                started_wall=wall - (now - first_t),
                first_out=first_id,
                alarms=[a for _, a in self._recent],
                peak=count,
            )
            self.current = flood
            out.append(("started", flood))
        return out

    def tick(self, now: float, wall: float) -> list[tuple[str, Flood]]:
        """Ends the flood once the window holds at most `end_at` activations."""
        self._trim(now)
        flood = self.current
        if flood is None or len(self._recent) > self.settings.end_at:
            return []
        flood.ended, flood.ended_wall = now, wall
        self.current = None
        return [("ended", flood)]
