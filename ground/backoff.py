"""One back-off for every reconnect and retry: capped, jittered, reset after success.

Jitter keeps a fleet of gateways (or a bus of devices) from retrying in lockstep after a shared
outage; the cap keeps a recovered peer from waiting long to be noticed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BROKER_RECONNECT_CAP = 5.0
"""Longest wait between attempts to reach the MQTT broker. Alarms wait on the other side of that
link, so a broker that is back must be noticed within seconds; an attempt to a broker on the local
network costs next to nothing, even every few seconds for hours."""


@dataclass(slots=True)
class Backoff:
    """Exponential back-off with "full jitter" on the upper half of each step.

    Args:
        initial: the first delay, in seconds.
        cap: the largest delay.
        factor: growth per failure.
        jitter: fraction of each delay that is random (0 = none, 0.5 = the delay is 50–100 %).
    """

    initial: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        base = min(self.cap, self.initial * self.factor**self.failures)
        self.failures += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def peek(self) -> float:
        """The upper bound of the next delay, without counting a failure."""
        return min(self.cap, self.initial * self.factor**self.failures)

    def reset(self) -> None:
        """The peer answered: start from `initial` again next time."""
        self.failures = 0
