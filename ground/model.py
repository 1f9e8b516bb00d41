"""The values that flow between layers: wire -> decode -> Reading -> rules -> alarms -> outputs.

These types are the seams of the gateway. Drivers produce `Reading`s and `DeviceStatus`es and hand
them to a `ReadingSink`; nothing below the sink knows about rules, nothing above it knows about wires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

Value = bool | int | float | str
"""A decoded point value. Booleans stay booleans, strings stay strings."""


class Quality(StrEnum):
    """How far a reading can be trusted (PRODUCT §1)."""

    GOOD = "good"
    BAD = "bad"  # decode error, or outside the point's physical range
    STALE = "stale"  # the device is not answering


@dataclass(slots=True, unsafe_hash=True)
class Reading:
    """One value of one point at one time.

    `ts` is wall-clock seconds since the epoch (UTC): it is what storage, MQTT and InfluxDB record.
    Timers never use it; they run on the monotonic clock passed alongside.

    Treat a reading as immutable: it is shared by every consumer. It is not a frozen dataclass only
    because a frozen one builds each instance through `object.__setattr__`, which is slower, and
    drivers build one per point per poll; equality and hashing are those of a frozen one.
    """

    device: str
    point: str
    value: Value | None
    quality: Quality
    ts: float


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's communication changed: it stopped answering, or answers again.

    Drivers emit this only on a change (log once when a device becomes unavailable, once when it
    recovers), never once per poll.
    """

    device: str
    online: bool
    ts: float
    reason: str = ""


class ReadingSink(Protocol):
    """Where drivers deliver what they read. Implementations must not block: they queue."""

    def readings(self, batch: Sequence[Reading]) -> None: ...

    def device_status(self, status: DeviceStatus) -> None: ...
