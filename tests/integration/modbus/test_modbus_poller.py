"""The Modbus bus driver against real pymodbus servers on loopback.

A pymodbus 3.16 server with several unit ids, a trace hook that counts requests per unit and can
drop a unit's requests (a dead device behind a gateway). The schedule and the registry, and the
recording sink these share: tests/unit/drivers/modbus/test_modbus_poller.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer

from config.models import ModbusBus, ModbusPoint, Workarounds
from drivers.modbus.link import Endpoint, NoAnswer
from drivers.modbus.plan import plan_reads
from drivers.modbus.poller import ModbusBusDriver, poll_once
from ground.model import Quality
from simulators.encode import encode_point
from tests.support import free_port
from tests.unit.drivers.modbus.test_modbus_poller import (  # noqa: F401 - the autouse fixture
    SIMPLE,
    Recorder,
    device,
    no_leaked_tasks,
)


def tcp_bus(port: int, timeout: float = 0.5, bus_id: str = "plant") -> ModbusBus:
    return ModbusBus(id=bus_id, transport="tcp", host="127.0.0.1", port=port, timeout=timeout)


PUMP = {
    "running": ModbusPoint(register="holding", address=0, type="uint16", bit=0),
    "fault": ModbusPoint(register="holding", address=0, type="uint16", bit=1),
    "pressure": ModbusPoint(register="holding", address=1, type="float32", order="CDAB"),
    "hours": ModbusPoint(register="holding", address=3, type="uint32"),
    "model": ModbusPoint(register="holding", address=10, type="string", length=4),
    "temperature": ModbusPoint(register="input", address=0, type="int16", scale=0.1),
    "energy": ModbusPoint(register="input", address=4, type="float64", order="HGFEDCBA"),
    "enabled": ModbusPoint(register="coil", address=0, type="bool"),
    "alarm": ModbusPoint(register="discrete", address=2, type="bool"),
}


def fgw_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("fgw[") and not t.done()]


FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
SIZE = 100  # registers and bits per table and unit on the test server


class TestServer:
    """A Modbus TCP server on loopback answering `units`; `silent` units' requests are dropped."""

    __test__ = False

    def __init__(self, units: Iterable[int], port: int | None = None) -> None:
        self.units = list(units)
        self.port = port or free_port()
        self.silent: set[int] = set()
        self.requests: Counter[int] = Counter()
        self.server: ModbusTcpServer | None = None

    def context(self) -> ModbusServerContext:
        def block(value: Any) -> ModbusSequentialDataBlock:
            return ModbusSequentialDataBlock(1, [value] * SIZE)

        return ModbusServerContext(
            devices={
                u: ModbusDeviceContext(di=block(False), co=block(False), hr=block(0), ir=block(0))
                for u in self.units
            },
            single=False,
        )

    def trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        if sending:
            return pdu
        self.requests[pdu.dev_id] += 1
        return None if pdu.dev_id in self.silent else pdu

    async def start(self) -> None:
        self.server = ModbusTcpServer(
            self.context(), address=("127.0.0.1", self.port), trace_pdu=self.trace
        )
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def write(
        self, unit: int, points: dict[str, ModbusPoint], values: dict[str, Any]
    ) -> None:
        """Put engineering values into the unit's registers, bits of a status word combined."""
        assert self.server is not None
        image: dict[tuple[str, int], int] = {}
        for name, value in values.items():
            p = points[name]
            for i, word in enumerate(encode_point(p, value)):
                key = (p.table, p.address + i)
                image[key] = image.get(key, 0) | word if p.bit is not None else word
        for (table, address), word in image.items():
            bits = table in ("coil", "discrete")
            await self.server.async_setValues(
                unit, FUNCTION[table], address, [bool(word)] if bits else [word]
            )


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    s = TestServer(units=[1, 2, 3])
    await s.start()
    yield s
    await s.stop()


async def test_several_units_decoded_as_written(server: TestServer) -> None:
    one = {"running": True, "fault": False, "pressure": 3.25, "hours": 70_000, "model": "CR10",
           "temperature": -12.5, "energy": 1234.5, "enabled": True, "alarm": True}  # fmt: skip
    two = {"running": False, "fault": True, "pressure": 0.5, "hours": 7, "model": "X",
           "temperature": 21.0, "energy": 0.0, "enabled": False, "alarm": False}  # fmt: skip
    await server.write(1, PUMP, one)
    await server.write(2, PUMP, two)
    sink = Recorder()
    devices = [device("pump-1", 1, PUMP, poll=0.1), device("pump-2", 2, PUMP, poll=0.1)]
    async with ModbusBusDriver(tcp_bus(server.port), devices, sink) as driver:
        assert fgw_tasks(), "polling tasks are named fgw[modbus:BUS].poll[DEVICE]"
        await sink.wait_for(lambda: {"pump-1", "pump-2"} <= {b[0].device for b in sink.batches})
        stats = driver.stats()
    assert not fgw_tasks(), "leaving the driver stops every task it started"
    for device_id, expected in (("pump-1", one), ("pump-2", two)):
        latest = sink.latest(device_id)
        got = {name: r.value for name, r in latest.items()}
        assert got == pytest.approx(expected)
        assert {r.quality for r in latest.values()} == {Quality.GOOD}
        assert sink.online(device_id) == [True]
        assert stats[device_id].online is True and stats[device_id].errors == 0
    assert isinstance(sink.latest("pump-1")["hours"].value, int)


async def test_silent_unit_goes_offline_once_and_does_not_slow_its_neighbours(
    server: TestServer,
) -> None:
    server.silent.add(3)
    sink = Recorder()
    period, timeout = 0.1, 0.5
    devices = [
        device(f"dev-{u}", u, SIMPLE, poll=period, timeout=timeout, comm_loss_polls=3)
        for u in (1, 2, 3)
    ]
    async with ModbusBusDriver(tcp_bus(server.port), devices, sink) as driver:
        started = time.monotonic()
        await sink.wait_for(lambda: sink.online("dev-3") == [False])
        assert driver.stats()["dev-3"].polls == 3
        # It is tried again (on back-off) but reported once, not once per poll.
        await sink.wait_for(lambda: driver.stats()["dev-3"].polls >= 6, timeout=20)
        window = time.monotonic() - started
        polls = {i: s.polls for i, s in driver.stats().items()}
        # The three devices share one connection (max_connections 1): the dead unit's attempts
        # hold it for their timeouts, and only those; the rest of the time is its neighbours'.
        free = window - polls["dev-3"] * timeout
        for neighbour in ("dev-1", "dev-2"):
            assert polls[neighbour] >= 0.6 * free / period, (polls, window)
            assert polls[neighbour] <= window / period + 2, "no bursts: a fixed-rate schedule"
        assert free > window / 3, "back-off keeps the dead unit's attempts rare"
        assert sink.online("dev-3") == [False]
        assert sink.online("dev-1") == sink.online("dev-2") == [True]
        stale = sink.batches_of("dev-3", Quality.STALE)
        assert len(stale) == 1 and [r.point for r in stale[0]] == ["level"]
        assert stale[0][0].value is None
        assert "no answer" in sink.statuses[-1].reason
        assert driver.stats()["dev-3"].errors >= 6
        assert driver.stats()["dev-3"].online is False


async def test_server_restart_reconnects_and_device_comes_back(server: TestServer) -> None:
    sink = Recorder()
    devices = [device("tank", 1, SIMPLE, poll=0.1, timeout=0.3, comm_loss_polls=2)]
    await server.write(1, SIMPLE, {"level": 11})
    async with ModbusBusDriver(tcp_bus(server.port), devices, sink) as driver:
        await sink.wait_for(lambda: sink.latest("tank").get("level") is not None)
        await server.stop()
        await sink.wait_for(lambda: sink.online("tank") == [True, False])
        assert sink.latest("tank")["level"].quality is Quality.STALE
        await server.start()  # same port, fresh register image
        await server.write(1, SIMPLE, {"level": 42})
        await sink.wait_for(lambda: sink.online("tank") == [True, False, True], timeout=15)
        await sink.wait_for(lambda: sink.latest("tank")["level"].value == 42)
        assert sink.latest("tank")["level"].quality is Quality.GOOD
        assert driver.stats()["tank"].online is True


async def test_ten_adjacent_points_are_one_request(server: TestServer) -> None:
    points = {
        f"r{i}": ModbusPoint(register="holding", address=20 + i, type="uint16") for i in range(10)
    }
    await server.write(2, points, {f"r{i}": 100 + i for i in range(10)})
    readings = await poll_once({"plant": tcp_bus(server.port)}, [device("meter", 2, points)])
    assert server.requests[2] == 1
    assert [(r.point, r.value, r.quality) for r in readings] == [
        (f"r{i}", 100 + i, Quality.GOOD) for i in range(10)
    ]
    no_merge = device("meter", 2, points, workarounds={"no_merge": True})
    await poll_once({"plant": tcp_bus(server.port)}, [no_merge])
    assert server.requests[2] == 11


async def test_exception_response_is_an_answer_with_bad_points(server: TestServer) -> None:
    points = {
        "ok": ModbusPoint(register="holding", address=0, type="uint16"),
        "missing": ModbusPoint(register="holding", address=SIZE + 50, type="uint16"),
    }
    sink = Recorder()
    async with ModbusBusDriver(
        tcp_bus(server.port), [device("odd", 1, points, poll=0.1)], sink
    ) as driver:
        await sink.wait_for(lambda: len(sink.batches) >= 3)
        stats = driver.stats()["odd"]
    latest = sink.latest("odd")
    assert latest["ok"].quality is Quality.GOOD
    assert (latest["missing"].value, latest["missing"].quality) == (None, Quality.BAD)
    assert sink.online("odd") == [True], "an exception response means the device is alive"
    assert stats.errors >= 3


async def test_poll_once_bounds_a_silent_device_by_its_timeout(server: TestServer) -> None:
    server.silent.add(3)
    await server.write(1, SIMPLE, {"level": 5})
    devices = [device("a", 1, SIMPLE, timeout=0.3), device("b", 3, SIMPLE, timeout=0.3)]
    started = time.monotonic()
    readings = await poll_once({"plant": tcp_bus(server.port)}, devices)
    assert time.monotonic() - started < 0.3 + 2.0  # the timeout, never a hang
    assert [(r.device, r.value, r.quality) for r in readings] == [
        ("a", 5, Quality.GOOD),
        ("b", None, Quality.STALE),
    ]
    only_a = await poll_once({"plant": tcp_bus(server.port)}, devices, device_ids=["a"])
    assert [r.device for r in only_a] == ["a"]
    with pytest.raises(ValueError, match="nope"):
        await poll_once({"plant": tcp_bus(server.port)}, devices, device_ids=["nope"])
    assert not fgw_tasks()


async def test_silence_on_an_open_connection_is_no_answer_within_the_timeout(
    server: TestServer,
) -> None:
    """Silence on an open connection is `NoAnswer` naming the endpoint, within the request's own
    timeout; the connection is kept (a late answer is recognised by its transaction id)."""
    link = Endpoint(tcp_bus(server.port, timeout=0.3))
    (block,) = plan_reads(SIMPLE, Workarounds(), 10)
    try:
        await server.write(1, SIMPLE, {"level": 4})
        assert await link.read(block, 1, 0.3) == [4]  # connects first
        server.silent.add(1)
        for _ in range(2):
            with pytest.raises(NoAnswer, match=r"^no answer within 0.3s from 127.0.0.1:\d+$"):
                await link.read(block, 1, 0.3)
        assert link.connections[0].connected
        server.silent.discard(1)
        await server.write(1, SIMPLE, {"level": 9})
        assert await link.read(block, 1, 0.3) == [9]
        assert await link.read(block, 1, 0.5) == [9]  # another device's timeout, same connection
    finally:
        link.close()


async def test_undecodable_points_are_counted_each_poll_and_logged_once(
    server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    from drivers.modbus.device import DevicePoller

    points = {
        "flow": ModbusPoint(register="holding", address=0, type="float32"),
        "level": ModbusPoint(register="holding", address=2, type="uint16", range=(0, 100)),
    }
    bus = tcp_bus(server.port)
    poller = DevicePoller(device("meter", 1, points), bus)
    link = Endpoint(bus)
    assert server.server is not None
    try:
        await server.server.async_setValues(1, FUNCTION["holding"], 0, [0x7FC0, 0, 150])  # NaN
        outcomes = [await poller.poll(link) for _ in range(3)]
        for outcome in outcomes:
            assert outcome.failure is None and outcome.errors == 1  # out of range is no error
            assert [(r.point, r.value, r.quality) for r in outcome.readings] == [
                ("flow", None, Quality.BAD),
                ("level", 150, Quality.BAD),
            ]
        logged = [r.getMessage() for r in caplog.records if "cannot decode" in r.getMessage()]
        assert logged == ["meter: cannot decode flow from [32704, 0]"]
        await server.write(1, points, {"flow": 1.5, "level": 42})
        outcome = await poller.poll(link)
        assert outcome.errors == 0 and {r.quality for r in outcome.readings} == {Quality.GOOD}
        await server.server.async_setValues(1, FUNCTION["holding"], 0, [0x7F80, 0])  # +inf
        assert (await poller.poll(link)).errors == 1
        logged = [r.getMessage() for r in caplog.records if "cannot decode" in r.getMessage()]
        assert len(logged) == 2, "logged again once it came back after being settled"
    finally:
        link.close()


async def test_unreachable_server_gives_stale_readings_quickly() -> None:
    port = free_port()  # nothing listens
    readings = await poll_once({"plant": tcp_bus(port)}, [device("gone", 1, SIMPLE, timeout=0.5)])
    assert [(r.point, r.quality) for r in readings] == [("level", Quality.STALE)]
