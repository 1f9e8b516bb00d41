"""MQTT ingest against the wire library's ceiling: the whole gateway vs a bare paho subscriber.

    python -m bench.ingest [--doors 50] [--messages 20000] [--repeat 3]

A private Mosquitto and one publisher (a paho client in its own process, QoS 0, as fast as it can)
sending `--messages` door messages of about 100 bytes (`{topic}/state` and `{topic}/event` in turn,
spread over `--doors` access doors; a door opens on one state message in fifty and closes on the
next: each opening starts the `door_held_open` on-delay, which the gateway journals to SQLite).
The consumers take turns on the same broker and the same publisher run:

- **gateway**: `Gateway(site)` in this process — the MQTT driver (aiomqtt, persistent QoS 1
  session), payload decoding, the rule engine and alarm book, and every component the service
  runs, the history store's queue included. Counted where the components get the batches, i.e.
  after the engine.
- **bare**: a paho-mqtt 2.x subscriber on `doors/#` that only counts the messages; and, for the
  profile, an aiomqtt subscriber that only counts (the asyncio library the driver is built on).

Each consumer's rate is messages over the time from its first to its last message; the runs
alternate `--repeat` times and the medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt

from bench.support import broker, header, median
from gateway.components import Component
from gateway.config.site import Site, load_site
from gateway.model import Reading
from gateway.service import Gateway


def site_yaml(doors: int, mqtt_port: int) -> str:
    lines = [
        "site: {id: ingest, timezone: Asia/Shanghai, locale: en}",
        "storage: {path: ./state}",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}",
        "devices:",
    ]
    lines += [
        f"  - {{id: door-{n}, template: access_door, mqtt: {{topic: doors/d{n}}}}}"
        for n in range(doors)
    ]
    return "\n".join(lines) + "\n"


def publish(port: int, messages: int, doors: int) -> None:
    """`python -m bench.ingest --publish PORT MESSAGES DOORS`: the publisher, in its own process."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{port}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    card = "0012345678"
    info = None
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
    client.disconnect()
    client.loop_stop()


class Arrivals:
    """First and last arrival times and a count, from any thread."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        now = time.perf_counter()
        with self.lock:
            if not self.count:
                self.first = now
            self.count += n
            self.last = now

    def rate(self) -> float:
        return (self.count - 1) / (self.last - self.first) if self.count > 1 else float("nan")


class Counter(Component):
    """Counts the readings the gateway's components are handed (after the engine)."""

    name = "bench-counter"

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.arrivals.add(len(batch))


async def _publisher(port: int, messages: int, doors: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ingest", "--publish", str(port), str(messages), str(doors)
    )
    await process.wait()


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


async def measure(site: Site, port: int, messages: int, doors: int, repeat: int) -> None:
    gateway, bare, lib = [], [], []
    for _ in range(repeat):
        gateway.append(await gateway_run(site, port, messages, doors))
        bare.append(await bare_run(port, messages, doors))
        lib.append(await aiomqtt_run(port, messages, doors))
    g, b = median([r for r, _ in gateway]), median([r for r, _ in bare])
    print(f"{messages:,} messages over {doors} doors, one publisher (QoS 0), ×{repeat}")
    print(f"  gateway (driver+decode+rules+storage queue): {g:>9,.0f} readings/s "
          f"(received {min(c for _, c in gateway):,}..{max(c for _, c in gateway):,})")  # fmt: skip
    print(f"  bare paho subscriber                       : {b:>9,.0f} messages/s "
          f"(received {min(c for _, c in bare):,}..{max(c for _, c in bare):,})")  # fmt: skip
    print(f"  bare aiomqtt subscriber (asyncio)          : {median([r for r, _ in lib]):>9,.0f} "
          f"messages/s")  # fmt: skip
    print(f"  ratio gateway/bare paho                    : {g / b:.2f}   (goal >= 0.60)")


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
