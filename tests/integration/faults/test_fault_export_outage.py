"""Fault injection: the InfluxDB stand-in (VictoriaMetrics, v2 write API) is down for 60 s while the
gateway polls five devices every 200 ms (issue 6).

Every good reading the gateway took must be in the database afterwards, under its template's
measurement, with its own timestamp (ms) and value. A recording component sees exactly the batches
the exporter sees. Meanwhile the health report says the export is degraded with a growing queue.
The recovery time (database back -> queue drained) is printed as a figure for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from config.site import load_site
from gateway.components import Component
from gateway.service import Gateway
from ground.model import Quality, Reading
from simulators.runner import SiteSimulator
from tests.reliability_support import Victoria, until, wait_until, write_fault_site
from tests.support import Broker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OUTAGE = 60.0


class Recorder(Component):
    name = "test-recorder"

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.readings.extend(batch)


def exported(reading: Reading) -> bool:
    return reading.quality == Quality.GOOD and isinstance(reading.value, int | float)


async def test_database_down_for_60s_loses_no_reading(broker: Broker, tmp_path: Path) -> None:
    victoria = Victoria(free_port(), tmp_path)
    victoria.start()
    site = load_site(write_fault_site(tmp_path, broker.port, influx_url=victoria.url))
    gateway = Gateway(site)
    recorder = Recorder()
    gateway.components.insert(0, recorder)
    exporter = next(c for c in gateway.components if c.name == "influx")
    stop = asyncio.Event()
    try:
        async with SiteSimulator(site, mqtt=False, seed=5):
            run = asyncio.create_task(gateway.run(stop), name="test.gateway")
            await until(lambda: exporter.stats()["sent"] > 50, 15, "first lines exported")
            await asyncio.to_thread(victoria.stop)
            down, down_wall = time.monotonic(), time.time()
            await until(lambda: exporter.stats()["reachable"] is False, 15, "export noticed")
            await asyncio.sleep(OUTAGE - (time.monotonic() - down))  # the outage itself
            health = gateway.health()["checks"]["influx"]
            assert health["status"] == "degraded" and health["queued"] > 0, health
            queued = health["queued"]
            oldest_age = time.time() - health["oldest"]
            await asyncio.to_thread(victoria.start)
            up, up_wall = time.monotonic(), time.time()
            await until(lambda: exporter.stats()["reachable"], 45, "export reconnected")
            await until(lambda: exporter.stats()["queued"] < 100, 45, "queue drained")
            recovery = time.monotonic() - up
            stop.set()
            await asyncio.wait_for(run, 30)  # close() sends what is left
        assert exporter.stats()["queued"] == 0 and exporter.stats()["dropped"] == 0

        expected: dict[tuple[str, str], dict[int, float]] = {}
        for r in filter(exported, recorder.readings):
            measurement = site.devices[r.device].measurement
            key = (f"{measurement}_{r.point}", r.device)
            expected.setdefault(key, {})[round(r.ts * 1000)] = float(r.value)  # type: ignore[arg-type]
        during = sum(1 for r in filter(exported, recorder.readings) if down_wall <= r.ts <= up_wall)

        def complete() -> dict | None:  # type: ignore[type-arg]
            got = victoria.samples(f'{{site="{site.id}"}}')
            return got if all(set(v) <= set(got.get(k, {})) for k, v in expected.items()) else None

        got = await asyncio.to_thread(wait_until, complete, 20, "every reading in VictoriaMetrics")
    finally:
        stop.set()
        victoria.stop()
    total = sum(len(v) for v in expected.values())
    for key, samples in expected.items():
        for ts, value in samples.items():
            assert got[key][ts] == pytest.approx(value, rel=1e-6, abs=1e-9), (key, ts)
    print(
        f"\nFIGURE export outage {OUTAGE:.0f}s: {total} readings taken, {during} during the outage, "
        f"{queued} lines queued (oldest {oldest_age:.0f}s old), lost 0, "
        f"recovery {recovery:.1f}s (reconnect + drain)"
    )
