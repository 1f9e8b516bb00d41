"""What the API keeps of the flow through the gateway: latest reading per point, reading rate, events.

The rule engine keeps only latest *good* values (it must not evaluate stale data); the console also
wants to show a stale or bad value as such, with its time. This is that small table, plus the
counters `/metrics` reports, fed by the API component's hooks on the gateway's event loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from gateway.api.events import EventHub
from ground.model import Reading

RATE_WINDOW = 10.0
"""Seconds over which readings/s is averaged."""


class LiveState:
    """Latest readings, the reading rate and the event hub, shared by the component and the app."""

    def __init__(self, hub: EventHub, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.hub = hub
        # the reading itself (immutable, shared by every consumer): `.value`, `.quality`, `.ts`;
        # keeping it costs a dict store per reading, where a copy of its fields cost an object
        self.latest: dict[str, dict[str, Reading]] = {}
        self.readings_total = 0
        self._monotonic = monotonic
        self._buckets: deque[tuple[float, int]] = deque()  # (second, readings in it)

    def add(self, batch: Sequence[Reading]) -> None:
        latest = self.latest
        device: str | None = None
        points: dict[str, Reading] = {}
        for r in batch:  # a batch is usually one device's poll: its table is looked up once
            if r.device != device:
                device = r.device
                points = latest.get(device) or latest.setdefault(device, {})
            points[r.point] = r
        self.readings_total += len(batch)
        second = float(int(self._monotonic()))
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + len(batch))
        else:
            self._buckets.append((second, len(batch)))
        self._trim(second)

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - RATE_WINDOW:
            self._buckets.popleft()

    def readings_per_second(self) -> float:
        self._trim(float(int(self._monotonic())))
        return sum(count for _, count in self._buckets) / RATE_WINDOW
