"""The MQTT driver: devices that publish their own state (access doors, gateways of other vendors).

Shape, as the Modbus driver: `MqttDriver` is an async context manager that owns a `TaskGroup`
(`fgw[mqtt-in:SITE].receive` keeps the broker connection, `fgw[mqtt-in:SITE].liveness` watches for
silent devices); `await driver.run()` is the same until cancelled.

    async with MqttDriver(site, devices, sink) as driver:
        await driver.wait_ready()      # connected and subscribed
        driver.stats()                 # per-device counters for /metrics

Why it is built this way:
- **Persistent session** (client id `fgw-{site}-in`, clean_session False, QoS 1 subscriptions): while
  the gateway restarts, the broker queues what devices publish, and it arrives afterwards.
- **Resubscribe on every connect**: a broker restarted without persistence has forgotten the session.
- **Liveness from live traffic only**: a retained message says what a device said once, not that it
  is alive now. A device is offline after `mqtt.timeout` of silence (default 3 x the template's
  `heartbeat`, or 30 s), or while its `controller_online` point reads false. `DeviceStatus` is emitted
  on changes only, with stale readings once when a device goes offline.
- **Bad payloads are counted, never fatal**: each malformed message counts once for its device; each
  distinct problem is logged once per device (`drivers.mqtt_payload` never raises anything else).
- **Batches, not messages**: the connection (`drivers.mqtt_link`, paho-mqtt on the event loop) hands
  over every message one socket read brought, and the driver gives the sink one `readings()` call
  for all of them (statuses keep their place: readings before a status change are delivered before
  it). One loop iteration per read instead of three per message (docs/performance.md, "Ingest").
- **Bounded memory**: nothing waits in the driver. A gateway slower than its devices leaves messages
  in the socket and the broker's queue (which bounds and drops by its own limits); the engine's own
  queue drops and counts (`Gateway.readings`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from config.models import MqttPoint
from config.mqtt_settings import BrokerSettings
from drivers.mqtt_link import LinkError, Message, MqttLink
from drivers.mqtt_payload import (
    Payload,
    PayloadError,
    Problem,
    decode_payload,
    payload_time,
    point_value,
)
from ground.backoff import BROKER_RECONNECT_CAP, Backoff
from ground.durations import format_duration
from ground.model import DeviceStatus, Quality, Reading, ReadingSink
from ground.tasks import cancel_and_wait

if TYPE_CHECKING:
    from config.site import Device, Site

log = logging.getLogger("drivers.mqtt")

CONTROLLER_ONLINE = "controller_online"
"""A point by this name reading false means the device's controller reports itself offline."""

DEFAULT_TIMEOUT = 30.0
"""Silence after which a device without `mqtt.timeout` or template heartbeat is offline."""


def build(site: Site, sink: ReadingSink) -> dict[str, MqttDriver]:
    """The driver kind's factory (see `drivers.DRIVERS`): one driver for every MQTT device."""
    devices = [d for d in site.devices.values() if d.spec.mqtt is not None]
    return {"mqtt": MqttDriver(site, devices, sink)} if devices else {}


def point_topic(device_topic: str, point: MqttPoint) -> str:
    """A point's full topic: relative to the device's full topic (`Site.device_topic`), or
    absolute with a leading `/`."""
    if point.topic.startswith("/"):
        return point.topic[1:]
    return f"{device_topic}/{point.topic}" if point.topic else device_topic


def device_timeout(device: Device) -> float:
    """Silence after which the device is offline (PRODUCT §3 comm_loss, for MQTT)."""
    assert device.spec.mqtt is not None
    if device.spec.mqtt.timeout is not None:
        return device.spec.mqtt.timeout
    if device.template is not None and device.template.heartbeat:
        return 3 * device.template.heartbeat
    return DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class _Route:
    device: str
    point: str
    spec: MqttPoint


@dataclass
class _DeviceState:
    """One device's counters and liveness; times are monotonic except `last_seen` (wall)."""

    id: str
    timeout: float
    points: tuple[str, ...]
    last_heard: float = 0.0
    heard: bool = False
    online: bool | None = None
    controller_down: bool = False
    messages: int = 0
    malformed: int = 0
    last_seen: float | None = None
    problems: Counter[str] = field(default_factory=Counter)

    def wanted(self, now: float) -> tuple[bool | None, str]:
        """What the status should be now, and why (None: not known yet)."""
        if self.controller_down:
            return False, "controller reports offline"
        if now - self.last_heard > self.timeout:
            return False, f"silent for more than {format_duration(self.timeout)}"
        if self.heard:
            return True, "publishing again"
        return None, ""


class MqttDriver:
    """Subscribes to the MQTT devices' topics and hands readings to a sink.

    Args:
        site: the site (broker settings, site id for the client id).
        devices: the MQTT devices to serve (each with `spec.mqtt`).
        sink: receives `Reading` batches (one per socket read: several messages and devices, in
            arrival order) and `DeviceStatus` changes.
        backoff: reconnect pacing (default: 0.5 s doubling up to 30 s, jittered).
        broker: connection settings (default: from `site`; reads the password file).
    """

    def __init__(
        self,
        site: Site,
        devices: Sequence[Device],
        sink: ReadingSink,
        *,
        backoff: Backoff | None = None,
        broker: BrokerSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.name = f"fgw[mqtt-in:{site.id}]"
        self.broker = broker or BrokerSettings.from_site(site)
        self.backoff = backoff or Backoff(cap=BROKER_RECONNECT_CAP)
        self._monotonic = monotonic
        self._wall = wall
        routes: dict[str, dict[str, list[_Route]]] = {}  # topic -> device -> its points there
        self._states: dict[str, _DeviceState] = {}
        for device in devices:
            if device.spec.mqtt is None:
                raise ValueError(f"device {device.id} is not an MQTT device")
            points = {n: p for n, p in device.points.items() if isinstance(p, MqttPoint)}
            self._states[device.id] = _DeviceState(
                device.id, device_timeout(device), tuple(points), last_heard=monotonic()
            )
            for name, point in points.items():
                topic = point_topic(site.device_topic(device), point)
                routes.setdefault(topic, {}).setdefault(device.id, []).append(
                    _Route(device.id, name, point)
                )
        # what one message on a topic touches, worked out once: each device and its points there
        self._routes: dict[str, tuple[tuple[_DeviceState, tuple[_Route, ...]], ...]] = {
            topic: tuple((self._states[d], tuple(r)) for d, r in by_device.items())
            for topic, by_device in routes.items()
        }
        self._batch: list[Reading] | None = None  # readings of the messages being handled
        self._ready = asyncio.Event()
        self._announced = False
        self._logged: set[tuple[str, str]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError(f"{self.name} is already running (the driver is not re-entrant)")
        now = self._monotonic()
        for state in self._states.values():
            state.last_heard, state.heard = now, False  # the silence timer starts now
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._tasks = [
            self._group.create_task(self._receive(), name=f"{self.name}.receive"),
            self._group.create_task(self._liveness(), name=f"{self.name}.liveness"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        await cancel_and_wait(self._tasks)  # once is not always enough on 3.11 (ground.tasks)
        self._tasks.clear()
        self._ready.clear()
        if group is not None:
            await group.__aexit__(exc_type, exc, tb)

    async def run(self) -> None:
        """Receive until cancelled (for callers that want a single awaitable)."""
        async with self:
            await asyncio.Future()

    async def wait_ready(self) -> None:
        """Return once connected and subscribed (again, after a reconnect)."""
        await self._ready.wait()

    @property
    def topics(self) -> list[str]:
        """Every topic subscribed to."""
        return sorted(self._routes)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-device counters: messages, malformed, last_seen (wall clock), online, problems."""
        return {
            s.id: {
                "messages": s.messages,
                "malformed": s.malformed,
                "last_seen": s.last_seen,
                "online": s.online,
                "problems": dict(s.problems),
            }
            for s in self._states.values()
        }

    # ------------------------------------------------------------------------------ connection

    async def _receive(self) -> None:
        """Connect, subscribe, receive; on any broker trouble, back off and do it again, forever."""
        outage_logged = False
        while True:
            try:
                async with MqttLink(
                    self.broker, "in", self.handle_batch, clean_session=False, name=self.name
                ) as link:
                    await self._subscribe(link)
                    self.backoff.reset()
                    self._ready.set()
                    if not self._announced:  # where devices must publish: once, not per reconnect
                        self._announced = True
                        shown = ", ".join(self.topics[:5]) + (
                            ", …" if len(self._routes) > 5 else ""
                        )
                        log.info("%s: reading %d device topics: %s", self.name,
                                 len(self._routes), shown)  # fmt: skip
                    if outage_logged:
                        log.info("%s: connected to %s again", self.name, self.broker.where)
                        outage_logged = False
                    await link.closed()
                    raise LinkError("disconnected")
            except LinkError as exc:
                self._ready.clear()
                if not outage_logged:
                    log.warning("%s: broker %s: %s", self.name, self.broker.where, exc)
                    outage_logged = True
            await asyncio.sleep(self.backoff.next_delay())

    async def _subscribe(self, link: MqttLink) -> None:
        topics = self.topics
        granted = await link.subscribe([(t, 1) for t in topics])
        for topic, code in zip(topics, granted, strict=False):
            value = getattr(code, "value", code)
            if isinstance(value, int) and value >= 0x80:
                self._log_once("*", f"refused:{topic}", "broker refused subscription to %s", topic)

    # ------------------------------------------------------------------------------ messages

    def handle(self, topic: str, raw: bytes | bytearray, *, retained: bool = False) -> None:
        """Map one message to readings and status changes (the part without sockets).

        Args:
            topic: the message's topic.
            raw: its payload.
            retained: a retained message (sent on subscribe) is a value, not a sign of life.
        """
        self.handle_batch(((topic, bytes(raw), retained),))

    def handle_batch(self, messages: Iterable[Message]) -> None:
        """Map messages (topic, payload, retained) that arrived together; one `readings()` call.

        A status change delivers the readings gathered before it first, so the sink sees the same
        order as message by message. Never raises: a failure is logged and the batch goes on.
        """
        now, wall = self._monotonic(), self._wall()
        self._batch = []
        try:
            for topic, raw, retained in messages:
                routes = self._routes.get(topic)
                if routes:
                    try:
                        self._message(topic, raw, retained, routes, now, wall)
                    except Exception:  # a bug here must cost one message, not the connection
                        log.exception("%s: cannot handle a message on %s", self.name, topic)
        finally:
            batch, self._batch = self._batch, None
            if batch:
                self._deliver(self.sink.readings, batch)

    def _message(
        self,
        topic: str,
        raw: bytes,
        retained: bool,
        routes: tuple[tuple[_DeviceState, tuple[_Route, ...]], ...],
        now: float,
        wall: float,
    ) -> None:
        try:
            payload: Payload | PayloadError = decode_payload(raw)
        except PayloadError as exc:
            payload = exc
        ts = (payload_time(payload, wall) if isinstance(payload, Payload) else None) or wall
        for state, mine in routes:
            state.messages += 1
            if not retained:
                state.last_heard, state.heard, state.last_seen = now, True, wall
            readings = self._readings(state, topic, mine, payload, ts)
            self._update_status(state, now, wall)
            if state.online is False:  # e.g. a retained value, or the controller says it is down
                readings = [r if r.point == CONTROLLER_ONLINE else _stale(r) for r in readings]
            if readings:
                if self._batch is not None:
                    self._batch.extend(readings)
                else:
                    self._deliver(self.sink.readings, readings)

    def _readings(
        self,
        state: _DeviceState,
        topic: str,
        mine: tuple[_Route, ...],
        payload: Payload | PayloadError,
        ts: float,
    ) -> list[Reading]:
        readings: list[Reading] = []
        problems: list[PayloadError] = []
        for route in mine:
            try:
                if isinstance(payload, PayloadError):
                    raise payload
                value, quality = point_value(route.spec, payload)
            except PayloadError as exc:
                problems.append(exc)
                if exc.kind is not Problem.MISSING_FIELD:  # a partial update is not a bad value
                    readings.append(Reading(state.id, route.point, None, Quality.BAD, ts))
                continue
            readings.append(Reading(state.id, route.point, value, quality, ts))
            if route.point == CONTROLLER_ONLINE and quality is Quality.GOOD:
                state.controller_down = value is False
        if not problems:
            return readings
        serious = [p for p in problems if p.kind is not Problem.MISSING_FIELD]
        if serious or len(problems) == len(mine):
            problem = (serious or problems)[0]
            state.malformed += 1
            state.problems[problem.kind] += 1
            self._log_once(
                state.id,
                problem.kind,
                "%s: malformed payload on %s: %s (further ones are only counted)",
                state.id,
                topic,
                problem.reason,
            )
        return readings

    # ------------------------------------------------------------------------------ liveness

    async def _liveness(self) -> None:
        timeouts = [s.timeout for s in self._states.values()] or [DEFAULT_TIMEOUT]
        period = min(1.0, max(0.05, min(timeouts) / 4))
        while True:
            await asyncio.sleep(period)
            self.check_liveness()

    def check_liveness(self) -> None:
        """Mark devices silent past their timeout offline (the liveness task calls this)."""
        now, wall = self._monotonic(), self._wall()
        for state in self._states.values():
            self._update_status(state, now, wall)

    def _update_status(self, state: _DeviceState, now: float, wall: float) -> None:
        online, reason = state.wanted(now)
        if online is None or online == state.online:
            return
        state.online = online
        self._flush()  # what was read before the change is delivered before it
        level = logging.INFO if online else logging.WARNING
        log.log(level, "%s %s: %s", state.id, "online" if online else "offline", reason,
                extra={"device": state.id})  # fmt: skip
        self._deliver(self.sink.device_status, DeviceStatus(state.id, online, wall, reason))
        if not online:
            keep = {CONTROLLER_ONLINE} if state.controller_down else set()
            stale = [
                Reading(state.id, p, None, Quality.STALE, wall)
                for p in state.points
                if p not in keep
            ]
            if stale:
                self._deliver(self.sink.readings, stale)

    # ------------------------------------------------------------------------------ helpers

    def _flush(self) -> None:
        batch = self._batch
        if batch:
            self._batch = []
            self._deliver(self.sink.readings, batch)

    def _log_once(self, device: str, key: str, message: str, *args: object) -> None:
        if (device, key) not in self._logged:
            self._logged.add((device, key))
            log.warning(message, *args, extra={"device": device})

    def _deliver(self, method: Callable[[Any], None], arg: object) -> None:
        """A failing sink is its owner's bug; it must not stop the driver."""
        try:
            method(arg)
        except Exception:
            log.exception("%s: the reading sink failed", self.name)


def _stale(reading: Reading) -> Reading:
    """The value as the device said it, marked as not trustworthy (it is not answering itself)."""
    return Reading(reading.device, reading.point, reading.value, Quality.STALE, reading.ts)
