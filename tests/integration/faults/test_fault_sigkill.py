"""Fault injection: the gateway is SIGKILLed in the middle of ingesting, with the broker and the
database both away (issue 6). On restart it must restore its alarms (retained state re-published)
and its queues: every alarm transition journaled before the kill reaches MQTT, in order, and every
line waiting in the export queue reaches the database with its original timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from config.site import Site, load_site
from gateway.export.spoolcodec import decode
from gateway.storage.segqueue import read_queue
from simulators.runner import SiteSimulator
from tests.reliability_support import (
    EventCollector,
    Victoria,
    until,
    wait_until,
    write_fault_site,
)
from tests.support import ROOT, Broker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def start_gateway(site: Site, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", str(site.path)],
            cwd=ROOT, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        db.close()


def parse_line(text: str) -> tuple[dict[str, str], dict[str, float], int]:
    head, fields, ts = text.rsplit(" ", 2)
    measurement, *tags = head.split(",")
    labels = dict(t.split("=", 1) for t in tags)
    values = {}
    for field in fields.split(","):
        name, value = field.split("=", 1)
        if value.startswith('"'):
            continue  # a string field (an alarm state): VictoriaMetrics keeps no strings
        values[f"{measurement}_{name}"] = (
            1.0 if value == "true" else 0.0 if value == "false" else float(value)
        )
    return labels, values, int(ts)


async def retained_alarm(port: int, topic: str) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"rel-retained-{free_port()}") as c:
        await c.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for message in c.messages:
                return json.loads(bytes(message.payload))
    raise AssertionError("no retained alarm")


async def test_sigkill_during_ingest_restores_alarms_and_queues(tmp_path: Path) -> None:
    broker = Broker(free_port(), tmp_path / "broker")
    broker.workdir.mkdir()
    victoria = Victoria(free_port(), tmp_path)
    site = load_site(write_fault_site(tmp_path, broker.port, influx_url=victoria.url))
    state = site.storage_dir
    journal_sql = "SELECT event FROM alarm_journal ORDER BY seq"
    log = tmp_path / "gateway.log"
    first = second = None
    try:
        async with SiteSimulator(site, mqtt=False, seed=9) as sims:
            first = start_gateway(site, log)
            sims.devices["fire-1"].inject("fire", zone=4)
            sims.devices["pump-2"].inject("trip")
            await until(
                lambda: len(rows(state / "gateway.sqlite3", journal_sql)) >= 2, 20, "journal"
            )
            sims.devices["pump-2"].clear()
            await until(lambda: len(rows(state / "gateway.sqlite3", journal_sql)) >= 3, 20, "clear")
            await until(  # lines: a queue entry holds a chunk of them
                lambda: sum(e.items for e in read_queue(state / "influx-queue")) > 50,
                20, "export queue",
            )  # fmt: skip
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL

            journal = [json.loads(r[0]) for r in rows(state / "gateway.sqlite3", journal_sql)]
            outbox = rows(state / "gateway.sqlite3", "SELECT topic FROM outbox ORDER BY seq")
            queued = [
                text
                for e in read_queue(state / "influx-queue")
                for text in decode(e.body).decode().split("\n")
            ]
            assert len(outbox) >= 2 * len(journal)  # each transition: retained state + event

            broker.start()
            victoria.start()
            collector = EventCollector(broker.port, site.topic_prefix, f"rel-kill-{free_port()}")
            collecting = asyncio.create_task(collector.run(), name="test.collector")
            try:
                await until(lambda: collector.subscribed, 10, "collector subscribed")
                second = start_gateway(site, log)
                alarms = lambda: [e for e in collector.events if e.get("type") == "alarm"]  # noqa: E731
                await until(lambda: len(alarms()) >= len(journal), 45, "queued events replayed")
                assert alarms()[: len(journal)] == journal
                fire = await retained_alarm(
                    broker.port, f"{site.topic_prefix}/alarms/fire-1/fire_alarm"
                )
                assert fire["state"] == "active_unack" and fire["episode"] == 1  # restored, not new
            finally:
                collecting.cancel()
                await asyncio.gather(collecting, return_exceptions=True)

            expected: dict[tuple[str, str], dict[int, float]] = {}
            for text in queued:
                labels, values, ts = parse_line(text)
                for series, value in values.items():
                    expected.setdefault((series, labels.get("device", "")), {})[ts] = value

            def complete() -> dict | None:  # type: ignore[type-arg]
                got = victoria.samples(f'{{site="{site.id}"}}')
                ok = all(set(v) <= set(got.get(k, {})) for k, v in expected.items())
                return got if ok else None

            got = await asyncio.to_thread(wait_until, complete, 45, "queued lines exported")
            for key, samples in expected.items():
                for ts, value in samples.items():
                    assert got[key][ts] == pytest.approx(value), (key, ts)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait, 30) == 0
        print(
            f"\nFIGURE SIGKILL: {len(journal)} journaled transitions and {len(outbox)} outbox "
            f"messages restored and delivered; {len(queued)} export lines restored and written; lost 0"
        )
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        broker.stop()
        victoria.stop()
        with contextlib.suppress(OSError):
            print(log.read_text()[-3000:]) if os.environ.get("FGW_TEST_VERBOSE") else None
