"""`fgw poll SITE --once`: one JSON line per reading, for commissioning a device."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from config.site import load_site
from simulators.runner import SiteSimulator
from tests.e2e import write_site
from tests.support import ROOT, Broker

pytestmark = pytest.mark.integration


def _poll(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "poll", str(site), "--once", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_poll_once_reads_a_modbus_and_an_mqtt_device(broker: Broker, tmp_path: Path) -> None:
    path = write_site(tmp_path, broker.port)
    site = load_site(path)
    async with SiteSimulator(site, "127.0.0.1", broker.port, seed=5) as sim:
        await asyncio.wait_for(sim.mqtt_ready.wait(), 10)
        sim.devices["pump-1"].set("run_hours", 1234.5)
        await sim.refresh()
        result = await asyncio.to_thread(
            _poll, path, "--device", "pump-1", "--device", "door-lobby", "--mqtt-wait", "2"
        )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_point = {(r["device"], r["point"]): r for r in lines}
    assert set(lines[0]) == {"device", "point", "value", "unit", "quality", "ts"}
    hours = by_point[("pump-1", "run_hours")]
    assert hours["value"] == pytest.approx(1234.5, abs=0.1) and hours["unit"] == "h"
    assert hours["quality"] == "good" and hours["ts"].endswith("Z")
    assert len([r for r in lines if r["device"] == "pump-1"]) == len(site.devices["pump-1"].points)
    online = by_point[("door-lobby", "controller_online")]
    assert online["value"] is True and online["quality"] == "good"  # the retained status


async def test_poll_once_a_silent_device_is_stale_and_exit_1(
    broker: Broker, tmp_path: Path
) -> None:
    path = write_site(tmp_path, broker.port)
    site = load_site(path)
    async with SiteSimulator(site, "127.0.0.1", broker.port, seed=5) as sim:
        sim.devices["lift-1"].inject("offline")
        result = await asyncio.to_thread(_poll, path, "--device", "lift-1")
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all(r["quality"] == "stale" and r["value"] is None for r in lines)


def test_poll_refuses_an_unknown_device(tmp_path: Path, broker: Broker) -> None:
    result = _poll(write_site(tmp_path, broker.port), "--device", "nope")
    assert result.returncode == 2 and "unknown device" in result.stderr
