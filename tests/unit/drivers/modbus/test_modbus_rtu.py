"""Modbus RTU: a serial port that does not exist gives stale readings, not an error.

Over a real serial pair (socat ptys): tests/integration/modbus/test_modbus_rtu.py.
"""

from __future__ import annotations

from pathlib import Path

from config.models import ModbusBus
from drivers.modbus.poller import poll_once
from ground.model import Quality
from tests.unit.drivers.modbus.test_modbus_poller import (  # noqa: F401  (no_leaked_tasks: an autouse fixture)
    SIMPLE,
    device,
    no_leaked_tasks,
)


async def test_missing_serial_port_gives_stale_readings(tmp_path: Path) -> None:
    bus = ModbusBus(id="rs485-9", transport="rtu", port=str(tmp_path / "nope"), timeout=0.3)
    readings = await poll_once({bus.id: bus}, [device("x", 1, SIMPLE, bus=bus.id)])
    assert [(r.point, r.quality) for r in readings] == [("level", Quality.STALE)]
