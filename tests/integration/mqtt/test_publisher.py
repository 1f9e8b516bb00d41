"""The gateway's MQTT publisher against a real Mosquitto: status, retained alarms, events, outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from config.mqtt_settings import BrokerSettings
from config.site import Site, load_site
from gateway.publisher import MqttPublisher, alarm_message, encode_json
from ground.backoff import Backoff
from ground.model import Quality, Reading
from tests.reliability_support import until
from tests.support import MOSQUITTO, ROOT, Broker, free_port, wait_for_port

pytestmark = pytest.mark.integration

REPO = ROOT


def fast() -> Backoff:
    return Backoff(initial=0.05, cap=0.3)


def make_site(tmp_path: Path, port: int, extra: str = "") -> Site:
    site_id = f"p{uuid.uuid4().hex[:8]}"
    path = tmp_path / "site.yaml"
    path.write_text(
        f"""
site: {{id: {site_id}}}
mqtt: {{host: 127.0.0.1, port: {port}{extra}}}
devices:
  - id: tank
    mqtt: {{topic: tanks/1}}
    points: {{level: {{topic: level}}}}
"""
    )
    return load_site(path)


def alarm(state: str = "active_unack", rule: str = "dry_run") -> dict[str, Any]:
    return {
        "id": f"pump-1.{rule}",
        "device": "pump-1",
        "rule": rule,
        "priority": "high",
        "state": state,
        "message": "水泵干运行 / Dry run",
        "value": 0.0,
        "episode": 3,
        "raised_at": "2026-11-26T12:00:00.000Z",
        "acked_at": None,
        "acked_by": None,
        "cleared_at": None,
    }


class Recorder:
    """What a test subscriber received, with a way to await a condition on it."""

    def __init__(self) -> None:
        self.messages: list[aiomqtt.Message] = []
        self.client: aiomqtt.Client | None = None
        self._changed = asyncio.Event()

    def payloads(self, topic: str) -> list[bytes]:
        return [bytes(m.payload) for m in self.messages if m.topic.value == topic]  # type: ignore[arg-type]

    async def collect(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.messages.append(message)
            self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def subscriber(
    port: int, *topics: str, client_id: str | None = None, clean: bool = True
) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    client = recorder.client = aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=client_id or f"test-{uuid.uuid4().hex[:6]}",
        clean_session=None if clean else False,
    )
    async with client, asyncio.TaskGroup() as group:
        task = group.create_task(recorder.collect(client), name="test.subscriber")
        for topic in topics:
            await client.subscribe(topic, qos=1)
        try:
            yield recorder
        finally:
            task.cancel()


async def retained(port: int, topic_filter: str) -> dict[str, bytes]:
    """What a fresh subscriber gets as retained messages under `topic_filter`, right now."""
    sentinel = f"sentinel/{uuid.uuid4().hex}"
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(sentinel, b"end", qos=1, retain=True)
    async with subscriber(port, topic_filter, sentinel) as rec:  # retained come in SUBSCRIBE order
        await rec.until(lambda: bool(rec.payloads(sentinel)))
        assert rec.client is not None
        await rec.client.publish(sentinel, b"", qos=1, retain=True)
    return {
        m.topic.value: bytes(m.payload)  # type: ignore[arg-type]
        for m in rec.messages
        if m.retain and m.topic.value != sentinel
    }


async def delivered(publisher: MqttPublisher, timeout: float = 5.0) -> None:
    """Wait until the outbox is empty: every message has its PUBACK."""
    async with asyncio.timeout(timeout):
        await publisher.wait_flushed()
    assert publisher.stats()["queued"] == 0


# --------------------------------------------------------------------------------------- pure


def test_alarm_topic_and_payload() -> None:
    topic, body = alarm_message("fgw/riverside", alarm())
    assert topic == "fgw/riverside/alarms/pump-1/dry_run"
    assert json.loads(body)["message"] == "水泵干运行 / Dry run"
    assert "水泵" in body.decode()  # readable, not \\u escapes
    assert alarm_message("P", alarm(state="normal")) == ("P/alarms/pump-1/dry_run", b"")
    assert alarm_message("P", {"id": "door-1.door_forced", "state": "active_ack"})[0] == (
        "P/alarms/door-1/door_forced"
    )
    with pytest.raises(ValueError):
        alarm_message("P", {"id": "pump-1.#", "state": "active_ack"})


def test_json_has_no_nan() -> None:
    assert json.loads(encode_json({"value": float("nan"), "l": [float("inf")]})) == {
        "value": None,
        "l": [None],
    }


def test_password_file_is_read_and_never_printed(tmp_path: Path) -> None:
    (tmp_path / "mqtt.pass").write_text("s3cret-pw\n")
    site = make_site(tmp_path, 1883, ", username: gateway, password_file: mqtt.pass")
    settings = BrokerSettings.from_site(site)
    assert settings.password is not None and settings.password.reveal() == "s3cret-pw"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.password)
    (tmp_path / "mqtt.pass").unlink()
    with pytest.raises(OSError, match=r"mqtt\.pass"):
        BrokerSettings.from_site(site)


async def test_readings_are_not_queued_unless_enabled(tmp_path: Path) -> None:
    publisher = MqttPublisher(make_site(tmp_path, 1883), snapshot=list)
    publisher.publish_readings("tank", {"level": 1.0})
    assert publisher.stats()["queued"] == 0


# --------------------------------------------------------------------------------------- broker


async def test_status_alarm_retained_and_cleared(broker: Broker, tmp_path: Path) -> None:
    site = make_site(tmp_path, broker.port)
    prefix = site.topic_prefix
    async with MqttPublisher(site, snapshot=list, backoff=fast()) as publisher:
        await publisher.wait_connected()
        publisher.publish_alarm(alarm())
        await delivered(publisher)
        got = await retained(broker.port, f"{prefix}/#")
        assert got[f"{prefix}/status"] == b"online"
        assert json.loads(got[f"{prefix}/alarms/pump-1/dry_run"]) == alarm()

        publisher.publish_alarm(alarm(state="normal"))
        await delivered(publisher)
        got = await retained(broker.port, f"{prefix}/#")
        assert f"{prefix}/alarms/pump-1/dry_run" not in got  # the empty payload cleared it
        assert got[f"{prefix}/status"] == b"online"

    got = await retained(broker.port, f"{prefix}/#")
    assert got == {f"{prefix}/status": b"offline"}  # a clean stop says offline too


async def test_events_arrive_in_order_and_stop_flushes_before_offline(
    broker: Broker, tmp_path: Path
) -> None:
    site = make_site(tmp_path, broker.port)
    prefix = site.topic_prefix
    async with subscriber(broker.port, f"{prefix}/#") as rec:
        publisher = MqttPublisher(site, snapshot=list, backoff=fast())
        async with publisher:
            await publisher.wait_connected()
            for n in range(60):
                publisher.publish_event({"type": "alarm", "n": n})
        # leaving the block stopped the publisher: everything queued went out, then `offline`
        await rec.until(lambda: rec.payloads(f"{prefix}/status")[-1:] == [b"offline"])
    events = [json.loads(p)["n"] for p in rec.payloads(f"{prefix}/events")]
    assert events == list(range(60))
    topics = [m.topic.value for m in rec.messages]
    assert topics[-1] == f"{prefix}/status"
    assert rec.payloads(f"{prefix}/status") == [b"online", b"offline"]


async def test_readings_published_when_enabled(broker: Broker, tmp_path: Path) -> None:
    site = make_site(tmp_path, broker.port, ", publish_readings: true")
    prefix = site.topic_prefix
    batch = [
        Reading("tank", "level", 42.5, Quality.GOOD, 1_800_000_000.0),
        Reading("tank", "temp", None, Quality.STALE, 1_800_000_000.0),
    ]
    async with (
        subscriber(broker.port, f"{prefix}/readings/#") as rec,
        MqttPublisher(site, snapshot=list, backoff=fast()) as publisher,
    ):
        publisher.publish_readings("tank", batch)
        await rec.until(lambda: bool(rec.payloads(f"{prefix}/readings/tank")))
    body = json.loads(rec.payloads(f"{prefix}/readings/tank")[0])
    assert body == {
        "device": "tank",
        "values": {"level": 42.5, "temp": None},
        "quality": {"temp": "stale"},
        "ts": "2027-01-15T08:00:00.000Z",
    }


async def test_a_burst_of_readings_larger_than_the_window_all_goes_out(
    broker: Broker, tmp_path: Path
) -> None:
    """QoS 0 messages are done once written: the window refills while they go, and nothing waits
    for a later message to be sent (a bus's polls finish in bursts)."""
    site = make_site(tmp_path, broker.port, ", publish_readings: true")
    prefix = site.topic_prefix
    async with (
        subscriber(broker.port, f"{prefix}/readings/#") as rec,
        MqttPublisher(site, snapshot=list, backoff=fast()) as publisher,
    ):
        await publisher.wait_connected()
        for n in range(10 * 20):  # ten windows' worth, queued in one go
            publisher.publish_readings(
                f"tank-{n}", [Reading(f"tank-{n}", "level", float(n), Quality.GOOD, 1.8e9)]
            )
        await rec.until(lambda: len(rec.messages) == 200, timeout=10)
    assert publisher.stats()["dropped"] == 0
    assert sorted(json.loads(bytes(m.payload))["values"]["level"] for m in rec.messages) == [  # type: ignore[arg-type]
        float(n) for n in range(200)
    ]


async def test_a_cancelled_run_still_says_offline(broker: Broker, tmp_path: Path) -> None:
    site = make_site(tmp_path, broker.port)
    status = f"{site.topic_prefix}/status"
    publisher = MqttPublisher(site, snapshot=list, backoff=fast())
    async with subscriber(broker.port, status) as rec:
        async with asyncio.TaskGroup() as group:  # the service's shape: run() in its TaskGroup
            task = group.create_task(publisher.run(), name="test.publisher")
            await publisher.wait_connected()
            publisher.publish_event({"type": "ticket", "n": 1})
            task.cancel()
        await rec.until(lambda: rec.payloads(status) == [b"online", b"offline"])
        started = time.monotonic()
        await publisher.stop()  # after a cancelled run there is nothing left to do
        assert time.monotonic() - started < 1.0
    assert publisher.stats()["queued"] == 0


async def test_broker_restart_without_persistence_is_made_whole(
    private_broker: Broker, tmp_path: Path
) -> None:
    site = make_site(tmp_path, private_broker.port)
    prefix, port = site.topic_prefix, private_broker.port
    calls = 0

    def snapshot() -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        return [alarm(state="active_ack")]

    async with MqttPublisher(site, snapshot=snapshot, backoff=fast()) as publisher:
        await publisher.wait_connected()
        private_broker.restart()  # retained messages are gone with it
        status, dry_run = f"{prefix}/status", f"{prefix}/alarms/pump-1/dry_run"
        async with subscriber(port, f"{prefix}/#") as rec:  # live, or retained if it was quicker
            await rec.until(lambda: bool(rec.payloads(dry_run) and rec.payloads(status)), 10)
        got = await retained(port, f"{prefix}/#")  # and a fresh subscriber gets them retained
        assert got[status] == b"online"
        assert json.loads(got[dry_run])["state"] == "active_ack"
        assert calls >= 2


class PersistentBroker(Broker):
    """A Mosquitto that keeps sessions across a restart, so a test subscriber misses nothing
    (QoS 0 messages too: readings are QoS 0)."""

    def start(self) -> None:
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            "queue_qos0_messages true\nmax_queued_messages 100000\n"
            "log_dest stderr\nlog_type error\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=log, stdout=log)
        wait_for_port(self.port)


async def persistent_reader(port: int, topic: str) -> str:
    """A subscriber's persistent session, which the broker keeps while the reader is away; its id."""
    reader = f"test-reader-{uuid.uuid4().hex[:6]}"
    async with subscriber(port, topic, client_id=reader, clean=False):
        pass
    return reader


async def test_events_published_while_the_broker_is_down_arrive_in_order(tmp_path: Path) -> None:
    b = PersistentBroker(free_port(), tmp_path)
    b.start()
    try:
        site = make_site(tmp_path, b.port)
        events = f"{site.topic_prefix}/events"
        async with MqttPublisher(site, snapshot=list, backoff=fast()) as publisher:
            await publisher.wait_connected()
            reader = await persistent_reader(b.port, events)
            publisher.publish_event({"type": "alarm", "n": 0})
            await delivered(publisher)
            b.stop()
            for n in range(1, 21):
                publisher.publish_event({"type": "alarm", "n": n})
            assert publisher.stats()["queued"] > 0
            b.start()
            async with subscriber(b.port, events, client_id=reader, clean=False) as rec:
                await rec.until(lambda: len(rec.payloads(events)) >= 21, timeout=10)
        assert [json.loads(p)["n"] for p in rec.payloads(events)] == list(range(21))
    finally:
        b.stop()


@pytest.mark.parametrize("queue_mb", [None, 0.1])
async def test_readings_queued_while_the_broker_is_down_arrive_within_their_bound(
    tmp_path: Path, queue_mb: float | None
) -> None:
    """3,000 readings of a 30 s outage of 100 devices: all within the default bound, in order;
    with `readings_queue_mb: 0.1`, the newest that fit (about 400 bytes each), the rest counted.
    (A QoS 0 reading written in the instant the connection dies is lost: the outage here is one
    the publisher has noticed.)"""
    b = PersistentBroker(free_port(), tmp_path)
    b.start()
    try:
        extra = ", publish_readings: true" + (
            f", readings_queue_mb: {queue_mb}" if queue_mb else ""
        )
        site = make_site(tmp_path, b.port, extra)
        readings = f"{site.topic_prefix}/readings/#"
        async with MqttPublisher(site, snapshot=list, backoff=fast()) as publisher:
            await publisher.wait_connected()
            reader = await persistent_reader(b.port, readings)
            b.stop()
            await until(lambda: not publisher.connected, 10, "the publisher notices")
            for n in range(3000):
                batch = [Reading(f"pump-{n % 100:03d}", f"p{i}", float(n), Quality.GOOD, 1.8e9)
                         for i in range(10)]  # fmt: skip
                publisher.publish_readings(f"pump-{n % 100:03d}", batch)
            kept = 3000 - publisher.stats()["dropped"]
            if queue_mb is None:
                assert kept == 3000
            else:
                assert 200 < kept < 300  # 0.1 MiB of readings
            b.start()
            async with subscriber(b.port, readings, client_id=reader, clean=False) as rec:
                await rec.until(lambda: len(rec.messages) >= kept, timeout=20)
                await publisher.wait_flushed()
        got = [json.loads(bytes(m.payload))["values"]["p0"] for m in rec.messages]  # type: ignore[arg-type]
        assert got == [float(n) for n in range(3000 - kept, 3000)]
    finally:
        b.stop()


WILL_SCRIPT = """
import asyncio, sys
from config.site import load_site
from gateway.publisher import MqttPublisher

async def main():
    async with MqttPublisher(load_site(sys.argv[1]), snapshot=list) as publisher:
        await publisher.wait_connected()
        print("connected", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_last_will_says_offline_when_the_gateway_is_killed(
    broker: Broker, tmp_path: Path
) -> None:
    site = make_site(tmp_path, broker.port)
    status = f"{site.topic_prefix}/status"
    script = tmp_path / "gateway_publisher.py"
    script.write_text(WILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    async with subscriber(broker.port, status) as rec:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(site.path), stdout=asyncio.subprocess.PIPE, env=env
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(10):
                assert (await proc.stdout.readline()).strip() == b"connected"
            await rec.until(lambda: rec.payloads(status) == [b"online"])
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT, no goodbye: only the will
            await rec.until(lambda: rec.payloads(status) == [b"online", b"offline"])
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    assert (await retained(broker.port, status)) == {status: b"offline"}


async def test_connections_set_tcp_nodelay(broker: Broker, tmp_path: Path) -> None:
    """Nagle would hold the first small PUBLISHes back ~40 ms waiting for an ACK."""
    async with MqttPublisher(make_site(tmp_path, broker.port), snapshot=list) as publisher:
        await publisher.wait_connected()
        assert publisher._link is not None
        sock = publisher._link._client.socket()  # paho's socket: the only way to see the option
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_delivered_waits_for_the_pubacks_and_never_for_an_absent_broker(
    broker: Broker, tmp_path: Path
) -> None:
    away = MqttPublisher(make_site(tmp_path, free_port()), snapshot=list, backoff=fast())
    away.publish_event({"type": "alarm", "n": 0})
    await asyncio.wait_for(away.delivered(timeout=60), 5)  # not connected: returns at once
    assert away.stats()["queued"] == 1

    site = make_site(tmp_path, broker.port)
    async with subscriber(broker.port, f"{site.topic_prefix}/events") as rec:
        publisher = MqttPublisher(site, snapshot=list, backoff=fast())
        async with publisher:
            await publisher.wait_connected()
            for n in range(3 * 20 + 7):  # more than a window in flight: sent as room frees up
                publisher.publish_event({"type": "alarm", "n": n})
            await publisher.delivered(timeout=30)
            assert publisher.stats()["queued"] == 0 and publisher.stats()["published"] >= 67
            await rec.until(lambda: len(rec.payloads(f"{site.topic_prefix}/events")) == 67)
    assert [json.loads(p)["n"] for p in rec.payloads(f"{site.topic_prefix}/events")] == list(
        range(67)
    )
