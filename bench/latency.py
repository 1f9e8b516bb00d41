"""Fault to alarm on MQTT: how long the gateway takes, measured from outside it.

    python -m bench.latency [--rate 200] [--seconds 30] [--rounds 20]

A private Mosquitto, `fgw sim` (a Modbus fire panel polled every 200 ms; the doors are not
simulated, this bench drives them) and `fgw run` as the service runs (its own process); this
process publishes and watches, as a device and a subscriber would.

1. **MQTT in -> alarm out.** 50 access doors whose last event was `forced`. Messages go out at
   `--rate` per second (paho, QoS 0): nine in ten are heartbeats (`{topic}/status`), one in ten
   opens or closes a door, which raises (`active_unack`) or clears (`rtn_unack`) its
   `door_forced` alarm. Each sample is the time from the publish of a door message to the arrival
   of the alarm's retained message on `P/alarms/door-N/door_forced` (one clock, this process).
   Beside it, in the same run, the **floor**: the same sender and watcher with the gateway taken
   out (the bench publishes the "alarm" itself, QoS 1 retained, one hop through Mosquitto where the
   gateway's path has two): what the test harness and the broker cost, not the gateway.
2. **Modbus fault -> alarm, after the poll.** A fire injected into the panel's simulator is seen
   at the next poll; `raised_at` in the alarm is the wall time the gateway decoded that poll's
   answer, so arrival minus `raised_at` is the time from the poll to MQTT: the poll interval
   removed. (`raised_at` has millisecond precision, truncated: these figures are up to 1 ms high.)
   Inject -> alarm is printed beside it; it includes the wait for the next poll.

Chattering detection is relaxed for the run (a door forced open ten times a minute is, rightly,
chattering otherwise) and the doors' held-open delay is set to an hour.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.support import FGW, broker, free_port, header, median, percentile, simulators, stop

DOORS = 50
FIRE_POLL = 0.2


def site_yaml(mqtt_port: int, modbus_port: int, doors: int = DOORS) -> str:
    """The gateway's site; with `doors=0`, the simulators' (the doors are this bench's to drive)."""
    lines = [
        "site: {id: latency, timezone: Asia/Shanghai, locale: en}",
        "storage: {path: ./state}",
        # bare device topics (doors/dN), as the bench's publisher and bare subscribers use them
        f'mqtt: {{host: 127.0.0.1, port: {mqtt_port}, device_base: ""}}',
        "alarms: {chattering: {activations: 1000, window: 1s}}",
        "modbus:",
        f"  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 500ms}}",
        "devices:",
        f"  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 1}}, "
        f"poll: {int(FIRE_POLL * 1000)}ms}}",
    ]
    lines += [
        f"  - {{id: door-{n}, template: access_door, mqtt: {{topic: doors/d{n}}}}}"
        for n in range(doors)
    ]
    if doors:
        lines.append("rules:")
        lines += [f"  - {{id: door_held_open, device: door-{n}, for: 1h}}" for n in range(doors)]
    return "\n".join(lines) + "\n"


class Watch:
    """A paho subscriber on the site's alarm topics: arrival times by (device, rule, state); and on
    the doors' state topics, as the gateway is: arrival times of each door message by its `seq`."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.lock = threading.Condition()
        self.arrived: dict[tuple[str, str, str], list[tuple[float, float, dict]]] = {}
        self.doors: dict[int, float] = {}
        self.online = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{port}")
        self.client.on_message = self._on_message
        self.client.on_socket_open = _no_delay
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(
            [(f"{prefix}/alarms/#", 1), (f"{prefix}/status", 1), ("doors/+/state", 0)]
        )
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        now, wall = time.perf_counter(), time.time()
        with self.lock:
            if message.topic.startswith("doors/"):
                seq = json.loads(message.payload).get("seq")
                if seq is not None:
                    self.doors[seq] = now
            elif message.topic.endswith("/status"):
                self.online = message.payload == b"online"
            elif message.payload:
                alarm = json.loads(message.payload)
                key = (alarm["device"], alarm["rule"], alarm["state"])
                self.arrived.setdefault(key, []).append((now, wall, alarm))
            self.lock.notify_all()

    def wait(self, key: tuple[str, str, str], after: float, timeout: float = 30.0) -> tuple:
        """The first arrival for `key` later than `after` (perf_counter)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for entry in self.arrived.get(key, ()):
                    if entry[0] >= after:
                        return entry
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = {k: len(v) for k, v in self.arrived.items() if k[0] == key[0]}
                    raise TimeoutError(f"no {key} within {timeout}s (seen: {seen})")
                self.lock.wait(left)

    def wait_online(self, timeout: float = 30.0) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: self.online, timeout):
                raise TimeoutError("the gateway did not come online")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _no_delay(_client: object, _userdata: object, sock: socket.socket) -> None:
    """As the gateway's own connections: no Nagle delay on the bench's small messages either."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def paced(rate: float, seconds: float) -> Iterator[int]:
    """0, 1, 2, … each at its own due time (`rate` per second for `seconds`), not after the last:
    a late message does not push back the ones after it, so the offered rate stays `rate`."""
    period = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while (due := start + n * period) < start + seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield n
        n += 1


def mqtt_latency(
    port: int, watch: Watch, rate: float, seconds: float
) -> tuple[list[float], list[float]]:
    """Each door message's publish -> its alarm's arrival; and the same arrival minus the door
    message's own arrival at the watcher (which subscribes to it as the gateway does): the time
    from Mosquitto handing the message out to the alarm coming back through it, paired sample by
    sample, so the sender's own hop to the broker — not the gateway's — drops out."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-doors-{port}")
    client.on_socket_open = _no_delay
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for n in range(DOORS):  # the last event of every door: forced
            client.publish(f"doors/d{n}/event", json.dumps({"event": "forced"}), qos=1)
            client.publish(f"doors/d{n}/state", json.dumps({"open": False}), qos=1)
        time.sleep(1.0)  # let the setup settle before measuring
        sent: list[tuple[str, str, float, int]] = []
        is_open = [False] * DOORS
        for n in paced(rate, seconds):
            door = n % DOORS
            if n % 10 == 0:
                door = (n // 10) % DOORS
                is_open[door] = not is_open[door]
                body = json.dumps({"open": is_open[door], "reason": "contact", "seq": n})
                at = time.perf_counter()
                client.publish(f"doors/d{door}/state", body, qos=0)
                state = "active_unack" if is_open[door] else "rtn_unack"
                sent.append((f"door-{door}", state, at, n))
            else:
                client.publish(f"doors/d{door}/status", b'{"online": true}', qos=0)
        samples, paired = [], []
        for device, state, at, n in sent:
            arrival = watch.wait((device, "door_forced", state), at)[0]
            samples.append(arrival - at)
            with watch.lock:
                heard = watch.doors.get(n)
            if heard is not None:
                paired.append(arrival - heard)
        return samples, paired
    finally:
        client.disconnect()
        client.loop_stop()


def floor_latency(port: int, watch: Watch, rate: float, seconds: float) -> list[float]:
    """The harness alone: the same pace of messages, each tenth one an alarm-shaped message the
    bench publishes on the watched topics itself (`bench-floor-N`, not retained, so it leaves
    nothing behind); the heartbeats go to a topic nobody reads."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-floor-{port}")
    client.on_socket_open = _no_delay
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        time.sleep(0.5)
        sent: list[tuple[str, str, float]] = []
        for n in paced(rate, seconds):
            if n % 10 == 0:
                device, state = f"bench-floor-{n % DOORS}", f"s{n}"
                body = json.dumps({"device": device, "rule": "door_forced", "state": state})
                at = time.perf_counter()
                client.publish(f"{watch.prefix}/alarms/{device}/door_forced", body, qos=1)
                sent.append((device, state, at))
            else:
                client.publish("bench/floor/status", b'{"online": true}', qos=0)
        return [
            watch.wait((device, "door_forced", state), at)[0] - at for device, state, at in sent
        ]
    finally:
        client.disconnect()
        client.loop_stop()


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def modbus_latency(site: Path, watch: Watch, rounds: int) -> tuple[list[float], list[float]]:
    after_poll, total = [], []
    for _ in range(rounds):
        for fault, state in (("fire", "active_unack"), ("clear", "rtn_unack")):
            at = time.perf_counter()
            extra = ["--zone", "3"] if fault == "fire" else []
            subprocess.run([*FGW, "inject", str(site), "fire-1", fault, *extra], check=True,
                           capture_output=True)  # fmt: skip
            arrival, wall, alarm = watch.wait(("fire-1", "fire_alarm", state), at)
            if fault == "fire":
                after_poll.append(wall - epoch(alarm["raised_at"]))
                total.append(arrival - at)
    return after_poll, total


def commit_seconds(folder: Path, n: int = 50) -> list[float]:
    """Durable SQLite commits (WAL, synchronous=FULL, as the journal and its outbox) on this disk."""
    db = sqlite3.connect(folder / "fsync.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (x)")
    samples = []
    for i in range(n):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (i,))
        db.execute("COMMIT")
        samples.append(time.perf_counter() - start)
    db.close()
    return samples


def ms(values: Sequence[float], q: float) -> str:
    return f"{1000 * (median(values) if q == 0.5 else percentile(values, q)):.2f} ms"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="MQTT messages per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=20, help="Modbus fire rounds")
    args = parser.parse_args(argv)
    header("latency")
    with tempfile.TemporaryDirectory(prefix="fgw-bench-latency-") as tmp:
        folder = Path(tmp)
        modbus_port = free_port()
        with broker(folder) as port:
            site, sim_site = folder / "site.yaml", folder / "sim.yaml"
            site.write_text(site_yaml(port, modbus_port))
            sim_site.write_text(site_yaml(port, modbus_port, doors=0))
            with simulators(sim_site, [modbus_port]):
                log = (folder / "run.log").open("wb")
                gateway = subprocess.Popen([*FGW, "run", str(site), "--log-level", "warning"],
                                           stderr=log, stdout=log)  # fmt: skip
                watch = Watch(port, "fgw/latency")
                try:
                    watch.wait_online()
                    commits = commit_seconds(folder)
                    floor = floor_latency(port, watch, args.rate, min(args.seconds, 10.0))
                    samples, paired = mqtt_latency(port, watch, args.rate, args.seconds)
                    after_poll, total = modbus_latency(sim_site, watch, args.rounds)
                except TimeoutError:
                    print((folder / "run.log").read_text()[-2000:])
                    raise
                finally:
                    watch.close()
                    stop(gateway)
                    log.close()
    print(f"MQTT door message -> alarm on MQTT, {args.rate:g} msg/s for {args.seconds:g} s "
          f"({len(samples)} alarms): p50 {ms(samples, 0.5)}, p99 {ms(samples, 0.99)}, "
          f"max {1000 * max(samples):.2f} ms   (goal p99 <= 2 ms)")  # fmt: skip
    if paired:  # every door message the watcher heard (all of them, unless it fell behind)
        print(f"  from the door message leaving Mosquitto (its arrival at the same watcher) to the "
              f"alarm's arrival, paired ({len(paired)} alarms): p50 {ms(paired, 0.5)}, "
              f"p99 {ms(paired, 0.99)}, max {1000 * max(paired):.2f} ms")  # fmt: skip
    print(f"  floor, the same sender and watcher without the gateway (one hop through Mosquitto, "
          f"{len(floor)} messages): p50 {ms(floor, 0.5)}, p99 {ms(floor, 0.99)}, "
          f"max {1000 * max(floor):.2f} ms")  # fmt: skip
    print(f"Modbus fire -> alarm on MQTT, after the poll ({len(after_poll)} rounds): "
          f"p50 {ms(after_poll, 0.5)}, p99 {ms(after_poll, 0.99)}")  # fmt: skip
    print(f"A durable SQLite commit on this disk (a transition's journal and outbox rows are one "
          f"such commit, before it is sent): p50 {ms(commits, 0.5)}, p99 {ms(commits, 0.99)}")  # fmt: skip
    print(f"  inject -> alarm, poll every {int(FIRE_POLL * 1000)} ms included: "
          f"p50 {ms(total, 0.5)}, p99 {ms(total, 0.99)}")  # fmt: skip


if __name__ == "__main__":
    main()
