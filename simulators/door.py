"""Access door simulator (MQTT): a door controller that reports its contact, access events and a heartbeat.

The physics only fills `outbox` with messages `(sub-topic, payload, retain)`; the runner publishes
them under the device's `mqtt.topic`. Sub-topics and JSON field names come from the template's points
(`door_open` → `state`/`open`, `last_event` → `event`/`event`, `controller_online` → `status`/`online`).
A dead controller says nothing: while `offline`, nothing is queued, not even `online: false`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from config.models import MqttPoint
from simulators.base import DeviceSimulator, state

DENIED_BURST = 6
"""Denied events a `denied_burst` sends, one every `DENIED_INTERVAL` seconds (≥ 5 in 60 s)."""
DENIED_INTERVAL = 0.5


class Message(NamedTuple):
    """One MQTT message to publish, relative to the device's topic."""

    subtopic: str
    payload: dict[str, Any]
    retain: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AccessDoorSimulator(DeviceSimulator):
    TEMPLATE: ClassVar[str] = "access_door"
    FAULTS: ClassVar[dict[str, str]] = {
        "forced": "event `forced`, the door opens and stays open until clear",
        "held_open": "an access is granted and the door stays open until clear",
        "denied_burst": f"{DENIED_BURST} `denied` events within {DENIED_BURST * DENIED_INTERVAL:.0f} s",
    }
    COUNTERS: ClassVar[frozenset[str]] = frozenset({"last_event"})
    """`set last_event=denied` sends that event once, rather than pinning a value."""

    clock: Callable[[], datetime] = field(default=_utc_now, repr=False)
    outbox: list[Message] = field(default_factory=list, repr=False)
    _next_access: float = state(0.0)
    _close_at: float | None = state(None)
    _next_heartbeat: float = state(0.0)
    _denied_left: int = state(0)
    _next_denied: float = state(0.0)
    _published_open: bool | None = state(None)
    _published_online: bool | None = state(None)

    @property
    def heartbeat(self) -> float:
        return self.template.heartbeat or 10.0

    def _point(self, name: str) -> MqttPoint:
        point = self.points[name]
        assert isinstance(point, MqttPoint), f"{name} of access_door is an MQTT point"
        return point

    def _payload(self, name: str, value: Any, **extra: Any) -> Message:
        point = self._point(name)
        body = {point.field: value, **extra} if point.field else value
        return Message(point.topic, body)

    def _reset(self) -> None:
        self.values.update(door_open=False, last_event="", controller_online=True)
        self._next_access = self.rng.uniform(5.0, 20.0)

    def _event(self, kind: str) -> None:
        card = "" if kind == "forced" else f"{self.rng.randrange(16**8):08X}"
        self.values["last_event"] = kind
        if not self.offline:
            ts = self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")
            self.outbox.append(self._payload("last_event", kind, card=card, ts=ts))

    def _open(self, seconds: float | None) -> None:
        """Open the door, for `seconds` (None: until a fault is cleared)."""
        self.values["door_open"] = True
        self._close_at = None if seconds is None else self.t + seconds

    def _start_fault(self, name: str, params: dict[str, Any]) -> None:
        super()._start_fault(name, params)
        if name == "forced":
            self._event("forced")
            self._open(None)
        elif name == "held_open":
            if not self.values["door_open"]:
                self._event("granted")
            self._open(None)
        elif name == "denied_burst":
            self._denied_left, self._next_denied = DENIED_BURST, self.t

    def _on_set(self, point: str, value: Any) -> None:
        if point == "last_event":
            self._event(str(value))

    def _on_clear(self) -> None:
        self.values.update(door_open=False, controller_online=True)
        self._close_at = None
        self._denied_left = 0
        self._next_access = self.t + self.rng.uniform(5.0, 20.0)
        self._published_open = self._published_online = None  # back online: say it all again

    def _physics(self, dt: float) -> None:
        v = self.values
        if self._denied_left and self.t >= self._next_denied:
            self._event("denied")
            self._denied_left -= 1
            self._next_denied = self.t + DENIED_INTERVAL
            if not self._denied_left:
                self.faults.pop("denied_burst", None)
        if self._close_at is not None and self.t >= self._close_at:
            v["door_open"] = False
            self._close_at = None
        if not self.faults and self.t >= self._next_access:
            if self.rng.random() < 0.92:
                self._event("granted")
                self._open(self.rng.uniform(3.0, 6.0))
            else:
                self._event("denied")
            self._next_access = self.t + self.rng.uniform(20.0, 60.0)
        self.values.update(self.pinned)  # a door pinned open by `set` is published as such
        if self.offline:
            return
        if v["door_open"] != self._published_open:
            self.outbox.append(self._payload("door_open", bool(v["door_open"])))
            self._published_open = bool(v["door_open"])
        online = bool(v["controller_online"])
        if online != self._published_online or self.t >= self._next_heartbeat:
            status = self._payload("controller_online", online)
            self.outbox.append(status._replace(retain=True))
            self._published_online = online
            self._next_heartbeat = self.t + self.heartbeat

    def announce(self) -> None:
        """Publish the door state and the status again at the next step (after a reconnect)."""
        self._published_open = self._published_online = None

    def take_outbox(self) -> list[Message]:
        """The messages queued since the last call (the runner publishes them in order)."""
        messages, self.outbox = self.outbox, []
        return messages
