"""InfluxDB export: a round trip through a real v2 write API (VictoriaMetrics on loopback).

Line protocol and store-and-forward with a recording writer: tests/unit/gateway/export/test_influx_export.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.export.influx import InfluxExporter
from ground.model import Quality, Reading
from tests.reliability_support import Victoria, wait_until
from tests.support import free_port
from tests.unit.gateway.export.test_influx_export import site_with_influx


async def test_round_trip_through_a_real_v2_write_api(tmp_path: Path) -> None:
    victoria = Victoria(free_port(), tmp_path)
    victoria.start()
    try:
        site = site_with_influx(tmp_path, victoria.url)
        exporter = InfluxExporter(site)
        task = asyncio.create_task(exporter.run(), name="test.influx")
        now = time.time() - 30  # VictoriaMetrics shows no samples from the future
        for i in range(20):
            exporter.on_readings(
                [
                    Reading("pump-1", "outlet_pressure", 3.0 + i / 10, Quality.GOOD, now + i),
                    Reading("pump-1", "running", i % 2 == 0, Quality.GOOD, now + i),
                ]
            )

        def arrived() -> bool:
            series = victoria.samples('{device="pump-1"}')
            return len(series.get(("booster_pump_outlet_pressure", "pump-1"), {})) == 20

        await asyncio.to_thread(wait_until, arrived, 20, "20 pressures in VictoriaMetrics")
        series = victoria.samples('{device="pump-1",site="riverside"}')
        pressure = series[("booster_pump_outlet_pressure", "pump-1")]
        assert pressure == {round((now + i) * 1000): pytest.approx(3.0 + i / 10) for i in range(20)}
        running = series[("booster_pump_running", "pump-1")]
        assert running == {round((now + i) * 1000): float(i % 2 == 0) for i in range(20)}
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await exporter.close()
    finally:
        victoria.stop()
