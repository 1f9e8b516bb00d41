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
publisher.stop()` ends either cleanly. One task, `fgw[mqtt-out:SITE]`, connects, announces and
wakes for what no callback covers (messages queued by components, a stop, a dropped link).

Why paho driven by the loop rather than aiomqtt, and why a sliding window of PUBACKs:
docs/design/publishing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from config.mqtt_settings import CALL_TIMEOUT, BrokerSettings
from drivers.mqtt_link import LinkError, Message, MqttLink
from gateway.outbox import MemoryOutbox, Outbox
from ground.backoff import BROKER_RECONNECT_CAP, Backoff
from ground.model import Reading

if TYPE_CHECKING:
    from config.site import Site

log = logging.getLogger("fgw.publisher")

WINDOW = 20
"""QoS 1 messages in flight at once (paho's default limit): one round trip per window, not message."""

PUMP_TURN = 100
"""Messages handed over in one go at most; then the loop runs its other work before the rest (a
backlog of readings after an outage must not stall the polls and the rules behind it)."""

STOP_TIMEOUT = 5.0
"""Seconds a stop may spend flushing the outbox and saying `offline`."""

DELIVERY_WAIT = 0.05
"""Seconds `delivered()` waits at most: a slow broker must not hold up whoever waits on it."""


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON (Chinese stays readable); NaN/Infinity become null, times ISO strings.

    Encoded as it is first: a value that is not finite is rare, and walking every payload to look
    for one cost more than the encoding itself. Only when the encoder refuses one is the value
    walked and encoded again.
    """
    try:
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
        )
    except (ValueError, TypeError):  # NaN or infinity somewhere (or a key JSON cannot take)
        text = json.dumps(
            _finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
        )
    return text.encode("utf-8")


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
        outbox: where messages wait for their PUBACK (default: in memory, readings bounded by
                `mqtt.readings_queue_mb`).
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
        self.outbox: Outbox = (
            outbox if outbox is not None else MemoryOutbox(site.file.mqtt.readings_queue_bytes)
        )
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
        self._link: MqttLink | None = None  # set while the outbox may be sent on it
        self._in_flight: deque[tuple[int, int, float]] = deque()  # (seq, packet id, sent at)
        self._done_mids: set[int] = set()  # packet ids done, not yet at the window's head
        self._said: dict[int, asyncio.Future[None]] = {}  # announcements waiting for PUBACK
        self._sent_upto = 0  # seq of the newest message handed to this connection
        self._pumping = False
        self._pump_scheduled = False
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
                except LinkError as exc:
                    self._lost(exc)
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
            except (LinkError, TimeoutError) as exc:
                self._lost(exc)
        if len(self.outbox):
            log.warning("%s: stopped with %d messages undelivered", self.name, len(self.outbox))

    def send_now(self) -> None:
        """Hand what is queued to the broker now, not at the publisher task's next turn.

        The gateway calls it right after the commit that put an alarm's messages on disk: the
        alarm then leaves in the same loop turn as the reading that raised it. Never raises (a
        dead connection is the publisher task's to notice).
        """
        self._pump()

    # ------------------------------------------------------------------------------ one connection

    async def _connection(self) -> None:
        """One connection: announce, send until stopped or the link drops, then say goodbye."""
        link = MqttLink(
            self.broker,
            "out",
            _no_messages,
            name=self.name,
            will=(self.status_topic, b"offline", 1, True),
            on_published=self._published,
        )
        self._in_flight.clear()
        self._done_mids.clear()
        self._sent_upto = 0
        async with link:
            link.when_closed(self._wakeup.set)
            self.backoff.reset()
            if self._outage_logged:
                log.info("%s: connected to %s again", self.name, self.broker.where)
                self._outage_logged = False
            try:
                if not self._stop_requested.is_set():
                    await self._announce(link)
                self._link = link
                await self._send(link)
                await self._say(link, [(self.status_topic, b"offline")])
            except asyncio.CancelledError:
                # The owner's TaskGroup is shutting down: still a clean stop, within bounds.
                self._connected.clear()
                self._stop_requested.set()
                self._link = link
                with contextlib.suppress(TimeoutError, LinkError):
                    async with asyncio.timeout(self.stop_timeout):
                        await self._send(link)
                        await self._say(link, [(self.status_topic, b"offline")])
                raise
            finally:
                self._link = None
                self._connected.clear()
                self._progress.set()

    async def _announce(self, link: MqttLink) -> None:
        """`online`, then every non-normal alarm again (a broker without persistence lost them)."""
        messages = [(self.status_topic, b"online")]
        messages += [alarm_message(self.prefix, payload) for payload in self._snapshot()]
        await self._say(link, messages)
        self._connected.set()

    async def _say(self, link: MqttLink, messages: list[tuple[str, bytes]]) -> None:
        """Publish retained QoS 1 messages outside the outbox and wait for every PUBACK."""
        loop = asyncio.get_running_loop()
        waiting = []
        for topic, body in messages:
            mid = link.publish(topic, body, qos=1, retain=True)
            waiting.append(self._said.setdefault(mid, loop.create_future()))
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                for future in waiting:
                    await link.wait_for(future)
        except TimeoutError:
            raise LinkError(f"no PUBACK within {CALL_TIMEOUT:g} s") from None
        finally:
            self._said.clear()

    async def _send(self, link: MqttLink) -> None:
        """Deliver the outbox in order, up to `WINDOW` messages in flight; return when stopping and
        nothing is left to send (or the stop was abandoned) and nothing is in flight.

        The sending itself is `_pump`, run here whenever something was queued, and directly by
        `send_now` and by each PUBACK: this task only wakes for what no callback covers — messages
        queued by components, the stop, a connection that dropped, a PUBACK that never comes.

        Raises:
            LinkError: the connection dropped, or the oldest message in flight had no PUBACK
                within `CALL_TIMEOUT` (the broker is stuck: reconnect and send again).
        """
        while True:
            self._wakeup.clear()
            if link.is_closed:
                await link.closed()  # raises, unless it was our own disconnect
                raise LinkError("the connection closed")
            self._pump()
            stopping = self._stop_requested.is_set()
            if stopping and not self._in_flight and (self._abandon or not len(self.outbox)):
                return
            if not self._in_flight:
                await self._wakeup.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CALL_TIMEOUT):
                    await self._wakeup.wait()
            oldest = self._in_flight[0][2] if self._in_flight else None
            if oldest is not None and time.monotonic() - oldest >= CALL_TIMEOUT:
                raise LinkError(f"no PUBACK within {CALL_TIMEOUT:g} s")

    def _pump(self) -> None:
        """Hand the outbox's next messages to the link, up to `WINDOW` in flight, in order.

        `peek` commits what is not on disk yet first, so nothing leaves before it is durable.
        Each publish is written before `link.publish` returns; PUBACKs come back in order on the
        one connection, and `_published` forgets the prefix that is done.
        """
        link = self._link
        if link is None or self._pumping or self._abandon:
            return
        in_flight = self._in_flight
        handed = 0
        while True:  # QoS 0 messages are done once written: the window frees up as it fills
            if handed >= PUMP_TURN:
                self._pump_soon()
                return
            sent = 0
            self._pumping = True
            try:
                room = WINDOW - len(in_flight)
                if room > 0 and len(self.outbox):
                    waiting = self.outbox.peek(len(in_flight) + room)
                    now = time.monotonic()
                    for m in waiting:
                        if m.seq <= self._sent_upto:
                            continue
                        mid = link.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
                        in_flight.append((m.seq, mid, now))
                        self._sent_upto = m.seq
                        sent += 1
                        if len(in_flight) >= WINDOW:
                            break
            except LinkError:
                self._wakeup.set()  # the task notices the closed link and reconnects
                sent = 0
            finally:
                self._pumping = False
            handed += sent
            if not self._forget_done() or not sent:
                return

    def _published(self, mid: int) -> None:
        """paho's `on_publish`: a PUBACK came (QoS 1) or a QoS 0 message was written."""
        said = self._said.get(mid)
        if said is not None:
            if not said.done():
                said.set_result(None)
            return
        self._done_mids.add(mid)
        if self._pumping or not self._forget_done():
            return
        if len(self.outbox) > len(self._in_flight):
            # room in the window for more: sent right after this callback, not from inside it
            # (paho holds a non-reentrant lock around its callbacks, and a QoS 0 message written
            # here would call back into it)
            self._pump_soon()

    def _pump_soon(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self._pump_scheduled = False
        self._pump()

    def _forget_done(self) -> bool:
        """Acknowledge the prefix of the window that is done; whether anything was."""
        in_flight, done_mids = self._in_flight, self._done_mids
        done, acked = 0, 0
        while in_flight and in_flight[0][1] in done_mids:
            acked, mid, _ = in_flight.popleft()
            done_mids.discard(mid)
            done += 1
        if not done:
            return False
        self.outbox.ack(acked)
        self.published += done
        if acked > self._acked_upto:
            self._acked_upto = acked
        self._progress.set()
        if not len(self.outbox):
            self._flushed.set()
        if self._stop_requested.is_set() and not in_flight:
            self._wakeup.set()  # the task may finish now
        return True

    def _lost(self, exc: BaseException) -> None:
        if not self._outage_logged:
            log.warning("%s: broker %s: %s", self.name, self.broker.where, exc)
            self._outage_logged = True


def _no_messages(_messages: list[Message]) -> None:
    """The publisher subscribes to nothing."""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
