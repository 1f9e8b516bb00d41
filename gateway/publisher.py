"""The gateway's voice on MQTT (PRODUCT §6): status, retained alarm state, events, readings.

    P/status                  retained `online`; `offline` as last will and on a clean stop
    P/alarms/{device}/{rule}  retained JSON of a non-normal alarm; an empty retained payload clears it
    P/events                  one JSON per alarm transition or ticket change, QoS 1, in order
    P/readings/{device}       latest values, when `mqtt.publish_readings` is on

Everything goes through an ordered `Outbox` and leaves it only after the broker's PUBACK, so an
unreachable broker delays messages but never loses alarms or events (readings are bounded). On every
(re)connect the publisher says `online` and re-publishes every non-normal alarm from `snapshot()`:
a broker restarted without persistence has lost its retained messages, and is whole again.

Shape: `await publisher.run()` inside the owner's TaskGroup (cancelled at shutdown: the queue is
flushed and `offline` said, within `stop_timeout`), or `async with publisher:`; `await
publisher.stop()` ends either cleanly. Tasks: `fgw[mqtt-out:SITE].watch` notices a dropped link,
`….publish` carry the in-flight QoS 1 messages (order is kept on the single connection).

Why a sliding window: a message queued while others wait for their PUBACK is handed to paho at once
(up to `WINDOW` in flight), not after the whole previous window came back: an alarm raised just after
another one does not wait a round trip to leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiomqtt

from gateway.backoff import BROKER_RECONNECT_CAP, Backoff
from gateway.model import Reading
from gateway.mqtt_settings import BrokerSettings
from gateway.outbox import MemoryOutbox, Outbox

if TYPE_CHECKING:
    from gateway.config.site import Site

log = logging.getLogger("fgw.publisher")

WINDOW = 20
"""QoS 1 messages in flight at once (paho's default limit): one round trip per window, not message."""

STOP_TIMEOUT = 5.0
"""Seconds a stop may spend flushing the outbox and saying `offline`."""

DELIVERY_WAIT = 0.05
"""Seconds `delivered()` waits at most: a slow broker must not hold up whoever waits on it."""


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (Chinese stays readable); NaN/Infinity become null, times ISO strings."""
    return json.dumps(
        _finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
    ).encode("utf-8")


def iso_utc(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds (PRODUCT §6 times)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alarm_message(prefix: str, payload: Mapping[str, Any]) -> tuple[str, bytes]:
    """Topic and retained payload of an alarm's state: empty once it is `normal` (acknowledged).

    Raises:
        ValueError: the payload names no device and rule usable in a topic.
    """
    device, rule = payload.get("device"), payload.get("rule")
    if not device or not rule:
        device, _, rule = str(payload.get("id", "")).partition(".")
    for part in (device, rule):
        if not isinstance(part, str) or not part or any(c in part for c in "/+#"):
            raise ValueError(f"alarm payload without a usable device and rule: {payload!r:.200}")
    body = b"" if payload.get("state") == "normal" else encode_json(dict(payload))
    return f"{prefix}/alarms/{device}/{rule}", body


class MqttPublisher:
    """Publishes the gateway's state to the site's broker, through an ordered outbox.

    Args:
        site: the site (broker, `topic_prefix`, `publish_readings`).
        snapshot: the payloads of every alarm that is not `normal`, re-published on each connect.
        outbox: where messages wait for their PUBACK (default: in memory, 1000 readings at most).
        backoff: reconnect pacing (default: 0.5 s doubling up to 30 s, jittered).
        broker: connection settings (default: from `site`; reads the password file).
        stop_timeout: seconds a stop may spend flushing and saying `offline`.
    """

    def __init__(
        self,
        site: Site,
        snapshot: Callable[[], Iterable[Mapping[str, Any]]],
        *,
        outbox: Outbox | None = None,
        backoff: Backoff | None = None,
        broker: BrokerSettings | None = None,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.name = f"fgw[mqtt-out:{site.id}]"
        self.prefix = site.topic_prefix
        self.status_topic = f"{self.prefix}/status"
        self.readings_enabled = site.file.mqtt.publish_readings
        self.broker = broker or BrokerSettings.from_site(site)
        self.outbox: Outbox = outbox if outbox is not None else MemoryOutbox()
        self.backoff = backoff or Backoff(cap=BROKER_RECONNECT_CAP)
        self.stop_timeout = stop_timeout
        self.published = 0
        self._snapshot = snapshot
        self._wakeup = asyncio.Event()  # something was queued, or a stop was asked for
        self._stop_requested = asyncio.Event()
        self._connected = asyncio.Event()
        self._flushed = asyncio.Event()  # the outbox was seen empty after an ack
        self._progress = asyncio.Event()  # an ack came back, or the connection went
        self._queued_upto = 0  # seq of the newest alarm or event queued
        self._acked_upto = 0  # seq of the newest message the broker acknowledged
        self._done = asyncio.Event()
        self._running = False
        self._abandon = False  # stop timed out: leave what is queued
        self._outage_logged = False
        self._group: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------ what to say

    def publish_alarm(self, payload: Mapping[str, Any]) -> None:
        """Queue an alarm's current state, retained: `P/alarms/{device}/{rule}` (QoS 1)."""
        topic, body = alarm_message(self.prefix, payload)
        self._put(topic, body, qos=1, retain=True)

    def publish_event(self, event: Mapping[str, Any]) -> None:
        """Queue one event on `P/events` (QoS 1, not retained)."""
        self._put(f"{self.prefix}/events", encode_json(dict(event)), qos=1, retain=False)

    def publish_readings(
        self, device: str, values: Mapping[str, Any] | Iterable[Reading], ts: float | None = None
    ) -> None:
        """Queue a device's latest values on `P/readings/{device}` if `mqtt.publish_readings` is on.

        `values` maps point names to values, or is a batch of `Reading`s (then points whose
        quality is not good are listed under `quality`). Readings may be dropped (oldest first)
        while the broker is away; alarms and events never are.
        """
        if not self.readings_enabled:
            return
        body: dict[str, Any] = {"device": device}
        if isinstance(values, Mapping):
            body["values"] = dict(values)
        else:
            batch = list(values)
            body["values"] = {r.point: r.value for r in batch}
            bad = {r.point: str(r.quality) for r in batch if r.quality != "good"}
            if bad:
                body["quality"] = bad
            ts = ts if ts is not None else max((r.ts for r in batch), default=None)
        body["ts"] = iso_utc(ts if ts is not None else datetime.now(UTC).timestamp())
        self._put(f"{self.prefix}/readings/{device}", encode_json(body), qos=0, droppable=True)

    def _put(
        self, topic: str, payload: bytes, *, qos: int, retain: bool = False, droppable: bool = False
    ) -> None:
        seq = self.outbox.put(topic, payload, qos=qos, retain=retain, droppable=droppable)
        if not droppable:
            self._queued_upto = seq
        self._flushed.clear()
        self._wakeup.set()

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._task = self._group.create_task(self.run(), name=f"{self.name}.run")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        try:
            await self.stop()
        finally:
            if self._task is not None:
                self._task.cancel()
            if group is not None:
                await group.__aexit__(exc_type, exc, tb)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_flushed(self) -> None:
        """Return once everything queued so far has been acknowledged by the broker."""
        if len(self.outbox):
            self._flushed.clear()
            await self._flushed.wait()

    async def delivered(self, timeout: float = DELIVERY_WAIT) -> None:
        """Return once the broker acknowledged every alarm and event queued so far — or at once
        when not connected, or after `timeout`: for work that should not delay a send (the gateway
        tells its components about transitions after their alarms left), but must not wait for a
        broker that is away or slow either."""
        target = self._queued_upto
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.connected and self._acked_upto < target and not self._abandon:
                    self._progress.clear()
                    await self._progress.wait()

    async def wait_connected(self) -> None:
        """Return once connected and `online` (again, after a reconnect) has been said."""
        await self._connected.wait()

    def stats(self) -> dict[str, Any]:
        """For /metrics: connected, queued, dropped (readings), published."""
        return {
            "connected": self.connected,
            "queued": len(self.outbox),
            "dropped": self.outbox.dropped,
            "published": self.published,
        }

    async def run(self) -> None:
        """Connect, publish, reconnect with back-off — until `stop()` or cancellation."""
        if self._running:
            raise RuntimeError(f"{self.name} is already running")
        self._running = True
        self._done.clear()
        try:
            while not self._stop_requested.is_set():
                try:
                    await self._connection()
                except* aiomqtt.MqttError as group:
                    self._lost(group.exceptions[0])
                if self._stop_requested.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.backoff.next_delay()):
                        await self._stop_requested.wait()
        finally:
            self._running = False
            self._done.set()

    async def stop(self, timeout: float | None = None) -> None:
        """Flush what is queued (bounded), say `offline` (retained), disconnect.

        A clean stop is not a crash, so the broker would not publish the last will: the status
        must be said. Works whether `run()` is still running, was cancelled, or never ran.
        """
        timeout = self.stop_timeout if timeout is None else timeout
        self._stop_requested.set()
        self._wakeup.set()
        if self._running:
            try:
                async with asyncio.timeout(timeout):
                    await self._done.wait()
            except TimeoutError:
                self._abandon = True
                self._wakeup.set()
        elif len(self.outbox) and not self._abandon:
            try:  # run() was cancelled while the broker was away: one last try to deliver
                async with asyncio.timeout(timeout):
                    await self._connection()
            except* (aiomqtt.MqttError, TimeoutError) as group:
                self._lost(group.exceptions[0])
        if len(self.outbox):
            log.warning("%s: stopped with %d messages undelivered", self.name, len(self.outbox))

    # ------------------------------------------------------------------------------ one connection

    async def _connection(self) -> None:
        """One connection: announce, send until stopped or the link drops, then say goodbye."""
        will = aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True)
        async with self.broker.client("out", will=will) as client:
            self.backoff.reset()
            if self._outage_logged:
                log.info("%s: connected to %s again", self.name, self.broker.where)
                self._outage_logged = False
            try:
                async with asyncio.TaskGroup() as group:
                    watch = group.create_task(self._watch(client), name=f"{self.name}.watch")
                    if not self._stop_requested.is_set():
                        await self._announce(client)
                    await self._send(client)
                    watch.cancel()
                await client.publish(self.status_topic, b"offline", qos=1, retain=True)
            except asyncio.CancelledError:
                # The owner's TaskGroup is shutting down: still a clean stop, within bounds.
                self._connected.clear()
                self._stop_requested.set()
                with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
                    async with asyncio.timeout(self.stop_timeout):
                        await self._send(client)
                        await client.publish(self.status_topic, b"offline", qos=1, retain=True)
                raise
            finally:
                self._connected.clear()
                self._progress.set()

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Raise `MqttError` as soon as the connection drops (nothing is subscribed)."""
        async for _ in client.messages:
            pass

    async def _announce(self, client: aiomqtt.Client) -> None:
        await client.publish(self.status_topic, b"online", qos=1, retain=True)
        for payload in self._snapshot():
            topic, body = alarm_message(self.prefix, payload)
            await client.publish(topic, body, qos=1, retain=True)
        self._connected.set()

    async def _send(self, client: aiomqtt.Client) -> None:
        """Deliver the outbox in order, up to `WINDOW` messages in flight; return when stopping and
        nothing is left to send (or the stop was abandoned) and nothing is in flight.

        Messages are handed to paho as soon as `peek` has them (it commits them to disk first).
        PUBACKs come back in order on the one connection; the outbox forgets the prefix whose
        publishes completed. A failed publish fails the group: the connection is over, and the
        next one starts again from the oldest unacknowledged message.
        """
        in_flight: deque[tuple[int, asyncio.Task[None]]] = deque()
        sent_upto = 0
        async with asyncio.TaskGroup() as group:
            while True:
                self._wakeup.clear()
                done, acked = 0, 0
                while in_flight and in_flight[0][1].done():
                    acked = in_flight.popleft()[0]
                    done += 1
                if done:
                    self.outbox.ack(acked)
                    self.published += done
                    self._acked_upto = max(self._acked_upto, acked)
                    self._progress.set()
                    if not len(self.outbox):
                        self._flushed.set()
                room = WINDOW - len(in_flight)
                if room > 0 and not self._abandon:
                    waiting = self.outbox.peek(len(in_flight) + room)
                    for m in [m for m in waiting if m.seq > sent_upto][:room]:
                        task = group.create_task(  # tasks start in order, so paho sends in order
                            client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain),
                            name=f"{self.name}.publish",
                        )
                        task.add_done_callback(self._wake)
                        in_flight.append((m.seq, task))
                        sent_upto = m.seq
                if not in_flight and self._stop_requested.is_set():
                    if self._abandon or not len(self.outbox):
                        return
                    continue
                await self._wakeup.wait()

    def _wake(self, _task: asyncio.Task[None]) -> None:
        self._wakeup.set()

    def _lost(self, exc: BaseException) -> None:
        if not self._outage_logged:
            log.warning("%s: broker %s: %s", self.name, self.broker.where, exc)
            self._outage_logged = True


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
