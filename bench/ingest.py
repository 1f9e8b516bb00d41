"""MQTT ingest against the wire library's ceiling: the whole gateway vs a bare paho subscriber.

    python -m bench.ingest [--doors 50] [--messages 20000] [--repeat 3]

A private Mosquitto and one publisher (a paho client in its own process, QoS 0, as fast as it can)
sending `--messages` door messages of about 100 bytes (`{topic}/state` and `{topic}/event` in turn,
spread over `--doors` access doors; a door opens on one state message in fifty and closes on the
next: each opening starts the `door_held_open` on-delay, which the gateway journals to SQLite).
The consumers take turns on the same broker and the same publisher run:

- **gateway**: `Gateway(site)` in this process — the MQTT driver (paho-mqtt on the event loop,
  `drivers.mqtt_link`; persistent QoS 1 session), payload decoding, the rule engine and alarm book,
  and every component the service runs, the history store's queue included. Counted where the
  components get the batches, i.e. after the engine (one reading per door message).
- **bare**: a paho-mqtt 2.x subscriber on `doors/#` (its own network thread, `loop_start`) that
  only counts the messages — the ceiling; an aiomqtt subscriber that only counts (the asyncio
  library the driver used before, and the publisher uses); and the driver's own connection
  (`MqttLink`) that only counts: the gateway's wire path without the gateway's work, so
  gateway/link is what decoding, rules and storage cost.

Each consumer's rate is messages over the time from its first to its last message; the runs
alternate `--repeat` times and the medians are printed. Two figures beside them say what bounds a
rate: the publisher's own send rate (a consumer cannot go faster: when the bare subscriber is
near it, the ceiling is the publisher, not paho), and each consumer's CPU time per message in this
process (the gateway's start and stop included), which a busy machine disturbs much less than
wall-clock rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt

from bench.support import broker, header, median
from config.mqtt_settings import BrokerSettings
from config.site import Site, load_site
from drivers.mqtt_link import MqttLink
from gateway.components import Component
from gateway.service import Gateway
from ground.model import Reading


def site_yaml(doors: int, mqtt_port: int) -> str:
    lines = [
        "site: {id: ingest, timezone: Asia/Shanghai, locale: en}",
        "storage: {path: ./state}",
        # bare device topics (doors/dN), as the bench's publisher and bare subscribers use them
        f'mqtt: {{host: 127.0.0.1, port: {mqtt_port}, device_base: ""}}',
        "devices:",
    ]
    lines += [
        f"  - {{id: door-{n}, template: access_door, mqtt: {{topic: doors/d{n}}}}}"
        for n in range(doors)
    ]
    return "\n".join(lines) + "\n"


def publish(port: int, messages: int, doors: int) -> None:
    """`python -m bench.ingest --publish PORT MESSAGES DOORS`: the publisher, in its own process.

    Prints its send rate (messages/s, until the last one left) as its only output line.
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    card = "0012345678"
    info = None
    start = time.perf_counter()
    for n in range(messages):
        door = f"doors/d{n % doors}"
        if n % 2:
            payload = json.dumps({"event": "granted", "card": card, "ts": "2026-11-26T10:00:00Z",
                                  "reader": "entry", "seq": n})  # fmt: skip
            info = client.publish(f"{door}/event", payload, qos=0)
        else:
            payload = json.dumps({"open": n % 100 == 0, "reason": "contact", "seq": n,
                                  "pad": "x" * 40})  # fmt: skip
            info = client.publish(f"{door}/state", payload, qos=0)
    if info is not None:
        info.wait_for_publish(30)
    print(f"{messages / (time.perf_counter() - start):.0f}", flush=True)
    client.disconnect()
    client.loop_stop()


class Arrivals:
    """First and last arrival times and a count, from any thread.

    The rate leaves out what arrived at the first time (one message, or the first batch): it came
    before the clock started. Counting it would flatter consumers that take batches.
    """

    def __init__(self) -> None:
        self.count = self.before = 0
        self.first = self.last = 0.0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        now = time.perf_counter()
        with self.lock:
            if not self.count:
                self.first, self.before = now, n
            self.count += n
            self.last = now

    def rate(self) -> float:
        if self.last <= self.first:
            return float("nan")
        return (self.count - self.before) / (self.last - self.first)


class Counter(Component):
    """Counts the readings the gateway's components are handed (after the engine)."""

    name = "bench-counter"

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.arrivals.add(len(batch))


SENT: list[float] = []
"""The publisher's send rate of every run, in order."""


async def _publisher(port: int, messages: int, doors: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ingest", "--publish", str(port), str(messages), str(doors),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    with contextlib.suppress(ValueError, IndexError):
        SENT.append(float(out.split()[-1]))


async def _settle(arrivals: Arrivals, messages: int, quiet: float = 2.0) -> None:
    """Wait until every message arrived, or nothing more arrived for `quiet` seconds."""
    seen, since = -1, time.monotonic()
    while arrivals.count < messages and time.monotonic() - since < quiet:
        if arrivals.count != seen:
            seen, since = arrivals.count, time.monotonic()
        await asyncio.sleep(0.05)


async def gateway_run(site: Site, port: int, messages: int, doors: int) -> tuple[float, int]:
    gateway = Gateway(site)
    arrivals = Arrivals()
    gateway.components.append(Counter(arrivals))
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(gateway.run(stop), name="bench.gateway")
        for driver in gateway.drivers.values():
            wait_ready = getattr(driver, "wait_ready", None)
            if wait_ready is not None:
                await asyncio.wait_for(wait_ready(), 20)
        await _publisher(port, messages, doors)
        await _settle(arrivals, messages)
        stop.set()
    return arrivals.rate(), arrivals.count


async def bare_run(port: int, messages: int, doors: int) -> tuple[float, int]:
    arrivals = Arrivals()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{port}")
    client.on_message = lambda _c, _u, _m: arrivals.add(1)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect("127.0.0.1", port)
    client.subscribe("doors/#", qos=1)
    client.loop_start()
    try:
        await asyncio.to_thread(subscribed.wait, 10)
        await _publisher(port, messages, doors)
        await _settle(arrivals, messages)
    finally:
        client.disconnect()
        client.loop_stop()
    return arrivals.rate(), arrivals.count


async def aiomqtt_run(port: int, messages: int, doors: int) -> tuple[float, int]:
    """The asyncio library the gateway's driver is built on, counting only (for the profile)."""
    arrivals = Arrivals()

    async def consume(client: aiomqtt.Client) -> None:
        async for _message in client.messages:
            arrivals.add(1)

    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"bench-aiomqtt-{port}", max_queued_incoming_messages=0
    ) as client:
        await client.subscribe("doors/#", qos=1)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(consume(client), name="bench.aiomqtt")
            await _publisher(port, messages, doors)
            await _settle(arrivals, messages)
            task.cancel()
    return arrivals.rate(), arrivals.count


Run = tuple[float, int, float]
"""A consumer's run: rate (messages/s), messages received, CPU µs per message received."""


async def _timed(run: Awaitable[tuple[float, int]]) -> Run:
    cpu = time.process_time()
    rate, count = await run
    return rate, count, (time.process_time() - cpu) / max(count, 1) * 1e6


async def link_run(site: Site, port: int, messages: int, doors: int) -> tuple[float, int]:
    """The driver's connection alone, counting the batches it hands over."""
    arrivals = Arrivals()
    settings = replace(BrokerSettings.from_site(site), client_id_base=f"bench-link-{port}")
    async with MqttLink(settings, "in", lambda batch: arrivals.add(len(batch))) as link:
        await link.subscribe([("doors/#", 1)])
        await _publisher(port, messages, doors)
        await _settle(arrivals, messages)
    return arrivals.rate(), arrivals.count


async def measure(site: Site, port: int, messages: int, doors: int, repeat: int) -> None:
    gateway: list[Run] = []
    bare: list[Run] = []
    lib: list[Run] = []
    link: list[Run] = []
    SENT.clear()
    for _ in range(repeat):
        gateway.append(await _timed(gateway_run(site, port, messages, doors)))
        bare.append(await _timed(bare_run(port, messages, doors)))
        lib.append(await _timed(aiomqtt_run(port, messages, doors)))
        link.append(await _timed(link_run(site, port, messages, doors)))
    g, b = median([r[0] for r in gateway]), median([r[0] for r in bare])

    def line(name: str, runs: list[Run], unit: str) -> str:
        counts = [r[1] for r in runs]
        return (f"  {name:<43}: {median([r[0] for r in runs]):>9,.0f} {unit} "
                f"(received {min(counts):,}..{max(counts):,}; "
                f"CPU {median([r[2] for r in runs]):.1f} µs/message)")  # fmt: skip

    print(f"{messages:,} messages over {doors} doors, one publisher (QoS 0), ×{repeat}")
    print(line("gateway (driver+decode+rules+storage queue)", gateway, "readings/s"))
    print(line("bare paho subscriber", bare, "messages/s"))
    print(line("bare aiomqtt subscriber (asyncio)", lib, "messages/s"))
    print(line("bare MqttLink (the driver's wire path)", link, "messages/s"))
    if SENT:
        print(f"  {'publisher (paho, QoS 0) sending':<43}: {median(SENT):>9,.0f} messages/s")
    print(f"  ratio gateway/bare paho                    : {g / b:.2f}   (goal >= 0.60)")
    print(f"  ratio gateway/bare MqttLink                : {g / median([r[0] for r in link]):.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doors", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--publish", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish:
        publish(*args.publish)
        return
    header("ingest")
    with tempfile.TemporaryDirectory(prefix="fgw-bench-ingest-") as tmp:
        folder = Path(tmp)
        with broker(folder) as port:
            path = folder / "site.yaml"
            path.write_text(site_yaml(args.doors, port))
            site = load_site(path)
            asyncio.run(measure(site, port, args.messages, args.doors, args.repeat))


if __name__ == "__main__":
    main()
