"""The MQTT driver against a real Mosquitto: topics to readings, bad payloads, restarts, liveness."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from config.models import MqttPoint
from config.site import Site, load_site
from drivers.mqtt import MqttDriver, build, point_topic
from ground.backoff import Backoff
from ground.model import DeviceStatus, Quality, Reading
from tests.support import Broker

pytestmark = pytest.mark.integration

FAST = Backoff(initial=0.05, cap=0.3)


class Sink:
    """Collects what the driver delivers; tests await conditions on it, never sleep."""

    def __init__(self) -> None:
        self.got: list[Reading] = []
        self.statuses: list[DeviceStatus] = []
        self._changed = asyncio.Event()

    def readings(self, batch: Sequence[Reading]) -> None:
        self.got.extend(batch)
        self._changed.set()

    def device_status(self, status: DeviceStatus) -> None:
        self.statuses.append(status)
        self._changed.set()

    def of(self, device: str, point: str) -> list[Reading]:
        return [r for r in self.got if r.device == device and r.point == point]

    def online(self, device: str) -> list[bool]:
        return [s.online for s in self.statuses if s.device == device]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def make_site(tmp_path: Path, port: int, tank_timeout: str = "30s") -> Site:
    site_id = f"t{uuid.uuid4().hex[:8]}"  # own client ids and topics: sessions never collide
    path = tmp_path / "site.yaml"
    path.write_text(
        f"""
site: {{id: {site_id}}}
mqtt: {{host: 127.0.0.1, port: {port}}}
devices:
  - id: door-lobby
    template: access_door
    mqtt: {{topic: doors/lobby}}  # under mqtt.device_base: fgw/{site_id}/devices/doors/lobby
  - id: tank
    mqtt: {{topic: /{site_id}/tanks/1, timeout: {tank_timeout}}}  # absolute: no device_base
    points:
      level: {{topic: level, field: v, type: float32, range: [0, 100]}}
      alarm: {{topic: /{site_id}/absolute/alarm, type: bool}}
"""
    )
    return load_site(path)


def driver_for(site: Site, sink: Sink) -> MqttDriver:
    return MqttDriver(site, list(site.devices.values()), sink, backoff=FAST)


async def publish(
    port: int, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1
) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{uuid.uuid4().hex[:6]}") as c:
        await c.publish(topic, payload, qos=qos, retain=retain)


def test_point_topics_are_relative_or_absolute() -> None:
    assert point_topic("doors/lobby", MqttPoint(topic="state")) == "doors/lobby/state"
    assert point_topic("doors/lobby", MqttPoint(topic="/fire/zone1")) == "fire/zone1"
    assert point_topic("doors/lobby", MqttPoint()) == "doors/lobby"


def test_device_topics_go_under_the_device_base(tmp_path: Path) -> None:
    site = make_site(tmp_path, 1883)
    assert site.device_base == f"fgw/{site.id}/devices"
    assert site.device_topic(site.devices["door-lobby"]) == f"fgw/{site.id}/devices/doors/lobby"
    assert site.device_topic(site.devices["tank"]) == f"{site.id}/tanks/1"  # a leading / : absolute
    driver = MqttDriver(site, list(site.devices.values()), Sink())
    assert f"fgw/{site.id}/devices/doors/lobby/event" in driver.topics
    assert "doors/lobby/event" not in driver.topics
    assert f"{site.id}/absolute/alarm" in driver.topics


def test_liveness_without_sockets(tmp_path: Path) -> None:
    """The clock is injected: offline exactly once after the timeout, online on the next message."""
    site, sink = make_site(tmp_path, 1883, tank_timeout="10s"), Sink()
    clock = [1000.0]
    driver = MqttDriver(site, [site.devices["tank"]], sink, monotonic=lambda: clock[0])
    topic = f"{site.id}/tanks/1/level"
    driver.handle(topic, b'{"v": 5}', retained=True)  # a retained value is no sign of life
    driver.check_liveness()
    assert sink.online("tank") == []
    driver.handle(topic, b'{"v": 5}')
    for t in (1005.0, 1010.0, 1010.5, 1011.0, 1030.0, 1100.0):
        clock[0] = t
        driver.check_liveness()
    assert sink.online("tank") == [True, False]
    assert [r.quality for r in sink.got].count(Quality.STALE) == 2  # level and alarm, once
    driver.handle(topic, b'{"v": 6}')
    assert sink.online("tank") == [True, False, True]
    assert sink.got[-1].value == 6.0 and sink.got[-1].quality is Quality.GOOD


class Log:
    """A sink that records calls in order: ("readings", [(device, point, value)...]) or status."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def readings(self, batch: Sequence[Reading]) -> None:
        self.calls.append(("readings", [(r.device, r.point, r.value) for r in batch]))

    def device_status(self, status: DeviceStatus) -> None:
        self.calls.append(("status", (status.device, status.online)))

    def flattened(self) -> list[tuple[str, Any]]:
        """Readings one by one, statuses in their place: what order the engine sees."""
        return [(kind, item) for kind, items in self.calls
                for item in (items if kind == "readings" else [items])]  # fmt: skip


def test_a_batch_keeps_the_order_of_readings_and_statuses(tmp_path: Path) -> None:
    """One `readings()` call per batch, split only where a status change must come in between."""
    site = make_site(tmp_path, 1883)
    door = site.device_topic(site.devices["door-lobby"])
    messages = [
        (f"{site.id}/tanks/1/level", b'{"v": 1}', False),  # tank online
        (f"{site.id}/tanks/1/level", b'{"v": 2}', False),
        (f"{site.id}/absolute/alarm", b"ON", False),
        (f"{door}/state", b'{"open": true}', False),  # door online
        (f"{door}/event", b'{"event": "granted"}', False),
        (f"{site.id}/not/ours", b"1", False),
        (f"{door}/status", b'{"online": false}', False),  # controller down: door offline, stale
        (f"{site.id}/tanks/1/level", b"garbage", False),
    ]
    one_by_one, batched = Log(), Log()
    driver = MqttDriver(site, list(site.devices.values()), one_by_one)
    for topic, raw, retained in messages:
        driver.handle(topic, raw, retained=retained)
    driver = MqttDriver(site, list(site.devices.values()), batched)
    driver.handle_batch(messages)

    assert batched.flattened() == one_by_one.flattened()
    assert [kind for kind, _ in batched.calls] == [
        "status", "readings", "status", "readings", "status", "readings", "readings"
    ]  # fmt: skip
    assert len(one_by_one.calls) > len(batched.calls)
    assert driver.stats()["tank"]["malformed"] == 1


async def test_door_topics_map_to_readings(broker: Broker, tmp_path: Path) -> None:
    site, sink = make_site(tmp_path, broker.port), Sink()
    base = site.device_topic(site.devices["door-lobby"])
    assert set(build(site, sink)) == {"mqtt"}
    async with driver_for(site, sink) as driver:
        await driver.wait_ready()
        await publish(broker.port, f"{base}/state", '{"open": true}')
        await publish(
            broker.port, f"{base}/event", '{"event": "forced", "ts": "2020-01-01T00:00:00Z"}'
        )
        await publish(broker.port, f"{base}/status", '{"online": true}')
        await sink.until(lambda: len(sink.of("door-lobby", "controller_online")) == 1)
        stats = driver.stats()["door-lobby"]

    (door_open,) = sink.of("door-lobby", "door_open")
    (event,) = sink.of("door-lobby", "last_event")
    assert (door_open.value, door_open.quality) == (True, Quality.GOOD)
    assert (event.value, event.quality) == ("forced", Quality.GOOD)
    assert sink.of("door-lobby", "controller_online")[0].value is True
    assert event.ts > 1.7e9  # a `ts` from 2020 is not believed: the arrival time is used
    assert sink.online("door-lobby") == [True]
    assert stats["messages"] == 3 and stats["malformed"] == 0 and stats["online"] is True
    assert stats["last_seen"] is not None


async def test_malformed_payloads_are_counted_logged_once_and_survived(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site, sink = make_site(tmp_path, broker.port), Sink()
    topic = f"{site.id}/tanks/1/level"
    caplog.set_level(logging.WARNING, logger="drivers.mqtt")
    bad = [b"not json", b"not json either", b'{"v": "high"}', b'{"v": NaN}', b"x" * 1_000_000]
    async with driver_for(site, sink) as driver:
        await driver.wait_ready()
        for payload in bad:
            await publish(broker.port, topic, payload)
        await publish(broker.port, topic, b'{"v": 150}')  # out of range: a bad value, not malformed
        await publish(broker.port, topic, b'{"v": 42.5, "other": 1}')
        await sink.until(lambda: any(r.value == 42.5 for r in sink.of("tank", "level")))
        stats = driver.stats()["tank"]

    levels = [(r.value, r.quality) for r in sink.of("tank", "level")]
    assert levels == [(None, Quality.BAD)] * 5 + [(150.0, Quality.BAD), (42.5, Quality.GOOD)]
    assert stats["messages"] == 7
    assert stats["malformed"] == 5
    assert stats["problems"] == {"not_json": 2, "wrong_type": 1, "not_finite": 1, "too_large": 1}
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(logged) == 4, logged  # each distinct problem once, not once per message


async def test_reconnects_and_resubscribes_after_a_broker_restart(
    private_broker: Broker, tmp_path: Path
) -> None:
    site, sink = make_site(tmp_path, private_broker.port), Sink()
    async with driver_for(site, sink) as driver:
        await driver.wait_ready()
        await publish(private_broker.port, f"{site.id}/absolute/alarm", b"ON")
        await sink.until(lambda: len(sink.of("tank", "alarm")) == 1)

        private_broker.restart()  # no persistence: the broker forgot the session
        # retained, so it reaches the driver only through a new SUBSCRIBE (or live, if already back)
        await publish(private_broker.port, f"{site.id}/absolute/alarm", b"OFF", retain=True)
        await sink.until(lambda: len(sink.of("tank", "alarm")) == 2, timeout=10)
        await driver.wait_ready()
        await publish(private_broker.port, f"{site.id}/tanks/1/level", b'{"v": 7}')
        await sink.until(lambda: len(sink.of("tank", "level")) == 1, timeout=10)

    assert [r.value for r in sink.of("tank", "alarm")] == [True, False]
    assert sink.of("tank", "level")[0].value == 7.0


async def test_messages_queued_while_away_arrive_after_restart(
    broker: Broker, tmp_path: Path
) -> None:
    site = make_site(tmp_path, broker.port)
    first, second = Sink(), Sink()
    async with driver_for(site, first) as driver:
        await driver.wait_ready()
    # the gateway is down; the broker keeps its session and queues QoS 1 messages for it
    await publish(broker.port, f"{site.id}/tanks/1/level", b'{"v": 12}')
    async with driver_for(site, second) as driver:
        await second.until(lambda: len(second.of("tank", "level")) == 1)
    assert second.of("tank", "level")[0].value == 12.0


async def test_silence_makes_a_device_offline_once_and_speech_online_again(
    broker: Broker, tmp_path: Path
) -> None:
    site, sink = make_site(tmp_path, broker.port, tank_timeout="300ms"), Sink()
    topic = f"{site.id}/tanks/1/level"
    async with driver_for(site, sink) as driver:
        await driver.wait_ready()
        await publish(broker.port, topic, b'{"v": 1}')
        await sink.until(lambda: sink.online("tank") == [True])
        await sink.until(lambda: sink.online("tank") == [True, False])
        await publish(broker.port, topic, b'{"v": 2}')
        await sink.until(lambda: len(sink.online("tank")) == 3)
        stats = driver.stats()["tank"]

    assert sink.online("tank") == [True, False, True]  # offline said once, not once per check
    offline = next(s for s in sink.statuses if s.device == "tank" and not s.online)
    assert "silent" in offline.reason
    stale = [r for r in sink.got if r.device == "tank" and r.quality is Quality.STALE]
    assert sorted(r.point for r in stale) == ["alarm", "level"]  # once, every point
    assert [r.value for r in sink.of("tank", "level") if r.quality is Quality.GOOD] == [1.0, 2.0]
    assert stats["online"] is True


async def test_controller_online_false_means_offline(broker: Broker, tmp_path: Path) -> None:
    site, sink = make_site(tmp_path, broker.port), Sink()
    base = site.device_topic(site.devices["door-lobby"])
    async with driver_for(site, sink) as driver:
        await driver.wait_ready()
        await publish(broker.port, f"{base}/status", '{"online": true}')
        await sink.until(lambda: sink.online("door-lobby") == [True])
        await publish(broker.port, f"{base}/status", '{"online": false}')
        await sink.until(lambda: sink.online("door-lobby") == [True, False])
        await publish(broker.port, f"{base}/state", '{"open": true}')
        await sink.until(lambda: any(r.value is True for r in sink.of("door-lobby", "door_open")))
        await publish(broker.port, f"{base}/status", '{"online": true}')
        await sink.until(lambda: sink.online("door-lobby") == [True, False, True])

    offline = next(s for s in sink.statuses if not s.online)
    assert offline.reason == "controller reports offline"
    door = [(r.value, r.quality) for r in sink.of("door-lobby", "door_open")]
    assert door == [(None, Quality.STALE), (True, Quality.STALE)]  # while the controller is down
