"""Support for the reliability tests: a real VictoriaMetrics (InfluxDB v2 write API stand-in) on a
free loopback port, and killing a broker the hard way.

VictoriaMetrics names series `measurement_field` and turns tags into labels; data is readable about
0.6 s after a write, so tests poll `/api/v1/export` for a condition instead of sleeping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import Broker, wait_for_port

VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


def need_victoria() -> None:
    if not Path(VICTORIA).exists():
        pytest.fail("victoria-metrics is missing: run scripts/setup.sh (Debian package)")


@dataclass
class Victoria:
    """A VictoriaMetrics on 127.0.0.1:port keeping its data in `workdir` across restarts."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        need_victoria()
        log = (self.workdir / "victoria.log").open("ab")
        self.process = subprocess.Popen(
            [
                VICTORIA,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}",
                "-search.latencyOffset=0s",
                "-retentionPeriod=100y",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_for_port(self.port, timeout=20)

    def stop(self) -> None:
        """A graceful stop: VictoriaMetrics flushes what it accepted (the outage is ours to test)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def export(self, match: str) -> list[dict[str, Any]]:
        # make what was accepted searchable now (it is otherwise after a few seconds)
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as answer:
            text = answer.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def samples(self, match: str) -> dict[tuple[str, str], dict[int, float]]:
        """`{(series name, device): {timestamp ms: value}}` of every series matching."""
        out: dict[tuple[str, str], dict[int, float]] = {}
        for series in self.export(match):
            key = (series["metric"]["__name__"], series["metric"].get("device", ""))
            out.setdefault(key, {}).update(zip(series["timestamps"], series["values"], strict=True))
        return out


async def until(predicate: Any, timeout: float, what: str | Callable[[], str] = "condition") -> Any:
    """Await a condition on state that changes without an event to wait on (SQLite rows, counters
    of another component): checked every 50 ms, bounded by `timeout`. `what` names the condition
    in the failure; a callable is asked then, to say how far it got."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")
        await asyncio.sleep(0.05)  # nothing to wait on but the state itself
    return result


def kill_broker(broker: Broker) -> None:
    """SIGKILL: no clean disconnect, no last words — as a crashed or unplugged broker."""
    if broker.process is not None:
        broker.process.kill()
        broker.process.wait()
        broker.process = None


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll a condition (for things outside the event loop, e.g. an HTTP export)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)


# ------------------------------------------------------------------------------ sites and brokers

FAULT_SITE = """
site: {{id: {site_id}, name: Fault site, timezone: UTC, locale: en}}
storage: {{path: {storage}}}
console: {{enabled: false}}
alarms: {{chattering: {{activations: 1000, window: 1s}}}}  # a storm drill, not a chattering sensor
mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}
{influx}
modbus:
  - {{id: plant-room, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms, retries: 0}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: plant-room, unit: 1}}, poll: 200ms}}
  - {{id: pump-2, template: booster_pump, modbus: {{bus: plant-room, unit: 2}}, poll: 200ms}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: plant-room, unit: 10}}, poll: 200ms}}
  - {{id: lift-1, template: lift, modbus: {{bus: plant-room, unit: 21}}, poll: 200ms}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: plant-room, unit: 30}}, poll: 200ms}}
"""

STORM = [("pump-1", "trip"), ("pump-2", "trip"), ("meter-1", "breaker_trip"), ("lift-1", "fault"),
         ("fire-1", "fire")]  # fmt: skip
"""Faults whose alarms have no on-delay: each inject and clear is a transition within a poll."""


def write_fault_site(
    folder: Path, mqtt_port: int, *, storage: str = "./state", influx_url: str | None = None
) -> Path:
    import uuid

    from tests.support import free_port

    influx = (
        f"influx: {{url: '{influx_url}', org: o, bucket: b, flush_interval: 200ms}}"
        if influx_url
        else ""
    )
    path = folder / "site.yaml"
    path.write_text(
        FAULT_SITE.format(
            site_id=f"rel-{uuid.uuid4().hex[:8]}",
            storage=storage,
            mqtt_port=mqtt_port,
            influx=influx,
            modbus_port=free_port(),
        )
    )
    return path


class PersistentBroker(Broker):
    """A Mosquitto that keeps sessions on disk (saved every second): a subscriber's queued QoS 1
    messages survive the broker being killed, so a test can see what was published while it was
    reconnecting, whoever reconnects first."""

    def start(self) -> None:
        import os
        import subprocess

        from tests.support import MOSQUITTO

        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
            "max_queued_messages 100000\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=log, stdout=log)
        log.close()
        wait_for_port(self.port)

    async def saved(self, *needles: str, timeout: float = 10.0) -> None:
        """Wait until the broker's database on disk holds every needle (a client id, a topic).

        Mosquitto saves only every `autosave_interval` + 1 s, whole seconds, at its loop's next
        turn: a fixed sleep is a race with a kill that comes after it.
        """
        database = self.workdir / "mosquitto.db"

        def on_disk() -> bool:
            data = database.read_bytes() if database.exists() else b""
            return all(needle.encode() in data for needle in needles)

        await until(on_disk, timeout, f"broker database holds {needles}")


class EventCollector:
    """Every message on `P/events`, through a persistent session (clean_session false, QoS 1) that
    reconnects by itself: nothing the broker queued for it is missed across a broker restart."""

    def __init__(self, port: int, prefix: str, client_id: str) -> None:
        self.port = port
        self.prefix = prefix
        self.client_id = client_id
        self.events: list[dict[str, Any]] = []
        self.subscribed = False

    async def run(self) -> None:
        import asyncio

        import aiomqtt

        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=self.client_id, clean_session=False
                ) as client:
                    await client.subscribe(f"{self.prefix}/events", qos=1)
                    self.subscribed = True
                    async for message in client.messages:
                        self.events.append(json.loads(bytes(message.payload)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)
