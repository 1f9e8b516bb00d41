"""Modbus RTU over a real serial pair (socat ptys): RTU framing, a shared line, a dead slave on it.

On RS-485 one request is on the wire at a time, so a dead slave costs the whole line its timeout on
every attempt; the driver keeps those attempts rare (back-off) so its neighbours keep their rate.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from config.models import ModbusBus
from drivers.modbus.poller import ModbusBusDriver, poll_once
from ground.model import Quality
from tests.integration.modbus.test_modbus_poller import PUMP, TestServer, fgw_tasks
from tests.unit.drivers.modbus.test_modbus_poller import (  # noqa: F401  (no_leaked_tasks: an autouse fixture)
    SIMPLE,
    Recorder,
    device,
    no_leaked_tasks,
)

SOCAT = shutil.which("socat")

pytestmark = pytest.mark.skipif(
    SOCAT is None, reason="socat is not installed (apt-get install socat): no serial pair for RTU"
)


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals: what one end writes, the other reads — a null-modem cable."""
    server_end, client_end = tmp_path / "server", tmp_path / "client"
    process = subprocess.Popen(
        [str(SOCAT), f"pty,raw,echo=0,link={server_end}", f"pty,raw,echo=0,link={client_end}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (server_end.exists() and client_end.exists()):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail("socat did not create the serial pair")
        time.sleep(0.01)
    yield str(server_end), str(client_end)
    process.terminate()
    process.wait(timeout=5)


class RtuServer(TestServer):
    """The same test server (units, silent units, request counts) on the serial line."""

    def __init__(self, units: list[int], port: str) -> None:
        super().__init__(units, port=1)
        self.serial_port = port

    async def start(self) -> None:
        self.server = ModbusSerialServer(  # type: ignore[assignment]
            self.context(),
            framer=FramerType.RTU,
            port=self.serial_port,
            baudrate=19200,
            trace_pdu=self.trace,
        )
        assert self.server is not None
        await self.server.serve_forever(background=True)


@pytest.fixture
async def rtu(serial_pair: tuple[str, str]) -> AsyncIterator[tuple[RtuServer, ModbusBus]]:
    server_end, client_end = serial_pair
    server = RtuServer([1, 2, 3], server_end)
    await server.start()
    bus = ModbusBus(id="rs485-1", transport="rtu", port=client_end, baudrate=19200, timeout=0.3)
    yield server, bus
    await server.stop()


async def test_rtu_framing_reads_values(rtu: tuple[RtuServer, ModbusBus]) -> None:
    server, bus = rtu
    values = {"running": True, "fault": True, "pressure": 2.5, "hours": 123456, "model": "AB",
              "temperature": 4.5, "energy": 9.75, "enabled": False, "alarm": True}  # fmt: skip
    await server.write(1, PUMP, values)
    await server.write(2, SIMPLE, {"level": 77})
    readings = await poll_once(
        {bus.id: bus}, [device("pump", 1, PUMP, bus=bus.id), device("tank", 2, SIMPLE, bus=bus.id)]
    )
    got = {(r.device, r.point): r.value for r in readings}
    assert {p: got[("pump", p)] for p in PUMP} == pytest.approx(values)
    assert got[("tank", "level")] == 77
    assert {r.quality for r in readings} == {Quality.GOOD}


async def test_dead_slave_is_backed_off_and_neighbours_keep_their_rate(
    rtu: tuple[RtuServer, ModbusBus],
) -> None:
    server, bus = rtu
    server.silent.add(3)
    period = 0.2
    sink = Recorder()
    devices = [
        device(f"dev-{u}", u, SIMPLE, bus=bus.id, poll=period, timeout=0.3, comm_loss_polls=2)
        for u in (1, 2, 3)
    ]
    async with ModbusBusDriver(bus, devices, sink) as driver:
        await sink.wait_for(lambda: sink.online("dev-3") == [False])
        before = {i: s.polls for i, s in driver.stats().items()}
        started = time.monotonic()
        await sink.wait_for(lambda: driver.stats()["dev-1"].polls >= before["dev-1"] + 25)
        window = time.monotonic() - started
        after = {i: s.polls for i, s in driver.stats().items()}
    assert not fgw_tasks()
    neighbour_polls = after["dev-2"] - before["dev-2"]
    dead_attempts = after["dev-3"] - before["dev-3"]
    # Without back-off the dead slave would be tried every period, costing the line 0.3 s each time
    # (~12 attempts in this window); with back-off, attempts grow with the log of the window.
    assert window / period * 0.6 <= 25 <= window / period + 2, window
    assert neighbour_polls >= 22
    assert dead_attempts <= math.log2(window / period) + 2, (dead_attempts, window)
    assert sink.online("dev-3") == [False]
    assert sink.online("dev-1") == sink.online("dev-2") == [True]
    assert len(sink.batches_of("dev-3", Quality.STALE)) == 1
    # every poll is one RTU request on the wire, no more (a request lost under load may count as a
    # failed poll the server never saw)
    answered = after["dev-1"] - driver.stats()["dev-1"].errors
    assert answered <= server.requests[1] <= after["dev-1"]
