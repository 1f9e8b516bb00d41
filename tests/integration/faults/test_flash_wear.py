"""A real `fgw run` on the simulators, measured from outside: bytes written per value polled (a
generous bound; the figure belongs to bench.footprint), and a power cut (SIGKILL) that loses at
most the history's commit interval of readings and no alarm, ticket or event that was sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.footprint import stored_samples
from bench.support import write_bytes
from config.site import Site, load_site
from gateway.storage.history import HistoryStore
from simulators.runner import SiteSimulator
from tests.reliability_support import EventCollector, until, write_fault_site
from tests.support import ROOT, Broker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

BOUND = 40.0
"""Bytes per value polled a minute-long run must stay under (the goal is 8; it was ~140)."""
COMMIT = 2.0
"""The history's commit interval in these tests, seconds."""


def fault_site(tmp_path: Path, port: int, *, defaults: bool = False) -> Site:
    """The fault drill's site: five devices polled every 200 ms; with the history's default
    settings, or committing every `COMMIT` s and storing every change of pump-1's pressure."""
    path = write_fault_site(tmp_path, port)
    if defaults:
        return load_site(path)
    text = path.read_text().replace(
        "modbus:\n",
        f"history: {{commit_interval: {COMMIT:.0f}s, deadband: {{pump-1.outlet_pressure: 0}}}}\n"
        "modbus:\n",
        1,
    )
    path.write_text(text)
    return load_site(path)


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
        return []
    finally:
        db.close()


def newest_stored(site: Site, device: str, point: str, since: float) -> float | None:
    store = HistoryStore(site.storage_dir)
    try:
        got = store.query(device, point, since, time.time() + 60, max_points=10**6)
    finally:
        store.close()
    times = [x["ts"] for x in got if "value" in x]
    return max(times) if times else None


async def test_a_minute_of_fgw_run_writes_few_bytes_per_value(tmp_path: Path) -> None:
    broker = Broker(free_port(), tmp_path / "broker")
    broker.workdir.mkdir()
    broker.start()
    site = fault_site(tmp_path, broker.port, defaults=True)
    log = tmp_path / "gateway.log"
    gateway = None
    try:
        async with SiteSimulator(site, mqtt=False, seed=3):
            gateway = start_gateway(site, log)
            history = site.storage_dir / "history.sqlite3"
            await until(lambda: rows(history, "SELECT 1 FROM block LIMIT 1"), 90, "first commit")
            written0, wall0 = write_bytes(gateway.pid), time.time()
            await asyncio.sleep(60)  # the measured window: what the gateway does, not a wait
            written1, wall1 = write_bytes(gateway.pid), time.time()
            assert gateway.poll() is None
            gateway.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(gateway.wait, 30) == 0
        counted = stored_samples(history, wall0, wall1)
        assert counted is not None
        stored, good, covered = counted
        nominal = sum(len(d.points) / d.spec.poll for d in site.devices.values())
        assert covered == 0 or good / covered > 0.5 * nominal  # the devices answered, at speed
        assert stored > 0
        window = wall1 - wall0
        per_value = (written1 - written0) / window / nominal
        print(f"\nFIGURE fgw run: {per_value:.1f} bytes written per value polled "
              f"({nominal:.0f} values/s, {100 * stored / window / nominal:.1f} % stored)")  # fmt: skip
        assert per_value < BOUND
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        broker.stop()


async def test_a_power_cut_loses_at_most_the_commit_interval_and_no_alarm(tmp_path: Path) -> None:
    broker = Broker(free_port(), tmp_path / "broker")
    broker.workdir.mkdir()
    broker.start()
    site = fault_site(tmp_path, broker.port)
    state = site.storage_dir
    log = tmp_path / "gateway.log"
    gateway = None
    collector = EventCollector(broker.port, site.topic_prefix, f"flash-kill-{free_port()}")
    collecting = asyncio.create_task(collector.run(), name="test.collector")
    try:
        await until(lambda: collector.subscribed, 10, "collector subscribed")
        async with SiteSimulator(site, mqtt=False, seed=4) as sims:
            gateway = start_gateway(site, log)
            start = time.time()
            await until(lambda: newest_stored(site, "pump-1", "outlet_pressure", start), 30,
                        "history written")  # fmt: skip
            await asyncio.sleep(3 * COMMIT)  # a few commits in: the steady state
            sims.devices["fire-1"].inject("fire", zone=2)
            sims.devices["pump-2"].inject("trip")
            sent = lambda: [e for e in collector.events if e.get("type") == "alarm"]  # noqa: E731
            await until(lambda: len(sent()) >= 2, 20, "fire and trip sent")
            before = list(collector.events)
            killed = time.time()
            gateway.send_signal(signal.SIGKILL)  # a power cut, as far as the process can tell
            assert await asyncio.to_thread(gateway.wait, 10) == -signal.SIGKILL
        newest = newest_stored(site, "pump-1", "outlet_pressure", start)
        assert newest is not None
        # polled every 200 ms, each change stored: what is on disk is at most a commit interval
        # (and the second the writer folds readings in) older than the cut
        lost = killed - newest
        print(f"\nFIGURE power cut: the newest stored reading {lost:.2f} s before the kill "
              f"(commit interval {COMMIT:.0f} s)")  # fmt: skip
        assert lost <= COMMIT + 1.0 + 1.5
        journal_sql = "SELECT event FROM alarm_journal ORDER BY seq"
        journal = [json.loads(e) for (e,) in rows(state / "gateway.sqlite3", journal_sql)]
        for event in before:  # every event sent was on disk before it went
            if event.get("type") == "alarm":
                assert event in journal, event
        fire = [e for e in journal if e["id"] == "fire-1.fire_alarm"]
        assert fire and fire[-1]["to"] == "active_unack"
    finally:
        collecting.cancel()
        await asyncio.gather(collecting, return_exceptions=True)
        if gateway is not None and gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        broker.stop()
