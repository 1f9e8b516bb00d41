"""What each gateway delivers upstream, counted the same way for both, and a cuttable broker link.

`Uplink` subscribes on the private broker that stands in for the platform: the peer's telemetry on
`v1/gateway/telemetry` and Facility Gateway's `P/readings/{device}` and `P/events`. It keeps every
delivered poll's own timestamp per device (so rates and jitter are those of the polls, not of the
sending), and answers the peer's `getSessionLimits` RPC as a ThingsBoard server with no rate limits
would (without an answer the peer never sends). `MqttCut` is a TCP relay in front of the broker
for the gateways only: `cut()` closes their connections and refuses new ones, as a broker outage
does, while `Uplink` stays connected to the broker itself and misses nothing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

NO_LIMITS = {"messages": "0:0,", "telemetryMessages": "0:0,", "telemetryDataPoints": "0:0,"}
SESSION_LIMITS = {"rateLimits": NO_LIMITS, "gatewayRateLimits": NO_LIMITS,
                  "maxInflightMessages": 100, "maxPayloadSize": 65536}  # fmt: skip


@dataclass
class Delivered:
    """Polls (their own timestamps, epoch s), values and arrival times per device, and events."""

    polls: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    values: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    truthy: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    """device -> point -> the first poll time at which a watched point was true."""


def answered(body: dict[str, Any]) -> bool:
    """Whether a Facility Gateway readings message is a poll the device answered: at least one
    value is good. The message that marks every point `stale` once when a device stops answering
    is not a poll (the peer sends nothing for a device that did not answer)."""
    values = body.get("values", {})
    quality = body.get("quality", {})
    return any(point not in quality for point in values)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Uplink:
    """Counts deliveries on `port` for the peer and for `prefix` (Facility Gateway) alike.

    Args:
        watch: point names whose first true value per device is recorded (e.g. `fire`).
    """

    def __init__(self, port: int, prefix: str, watch: tuple[str, ...] = ()) -> None:
        self.prefix = prefix
        self.watch = watch
        self.data = Delivered()
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.malformed = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-up-{port}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise TimeoutError("the uplink counter did not subscribe")

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([("v1/gateway/telemetry", 1), ("v1/devices/me/rpc/request/+", 1),
                          (f"{self.prefix}/readings/#", 1), (f"{self.prefix}/events", 1)])  # fmt: skip
        self.ready.set()

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._take(client, message)
        except (ValueError, TypeError, KeyError, AttributeError):  # counted, never kills the loop
            self.malformed += 1

    def _take(self, client: mqtt.Client, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        topic = message.topic
        if topic.startswith("v1/devices/me/rpc/request/"):
            if isinstance(body, dict) and body.get("method") == "getSessionLimits":
                request = topic.rsplit("/", 1)[1]
                client.publish(f"v1/devices/me/rpc/response/{request}", json.dumps(SESSION_LIMITS),
                               qos=1)  # fmt: skip
            return
        with self.lock:
            if topic == "v1/gateway/telemetry":
                for device, rows in body.items():
                    for row in rows if isinstance(rows, list) else [rows]:
                        ts = row.get("ts")
                        ts = ts / 1000 if isinstance(ts, int | float) else now
                        self._poll(device, ts, row.get("values", {}), now)
            elif topic == f"{self.prefix}/events":
                self.data.events.append({**body, "_arrived": now})
            elif "ts" in body and answered(body):
                self._poll(body.get("device", topic.rsplit("/", 1)[1]), _epoch(body["ts"]),
                           body.get("values", {}), now)  # fmt: skip

    def _poll(self, device: str, ts: float, values: dict[str, Any], now: float) -> None:
        self.data.polls[device].append(ts)
        self.data.arrivals[device].append(now)
        self.data.values += len(values)
        for point in self.watch:
            if values.get(point) and point not in self.data.truthy[device]:
                self.data.truthy[device][point] = ts

    def take(self) -> Delivered:
        """What was delivered since the last take."""
        with self.lock:
            data, self.data = self.data, Delivered()
            return data

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class MqttCut:
    """A TCP relay on a free port in front of the broker on `target`; `cut()` is a broker outage."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        self.listener: socket.socket | None = None
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the connect timeout would otherwise end an idle pipe
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones (the gateways see the broker go away)."""
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the accepting thread; close alone does not
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def restore(self) -> None:
        if self.listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()
