"""The driver against a simulated converter on loopback: what a plant room's wiring does.

A Modbus TCP converter (and a transparent one, RTU frames over TCP) with one connection, one request
at a time on its line at its baud rate, three live units and a dead one; a unit with a hole inside a
merged read; a busy unit; a converter answering 0B; a host that does not answer at all; RTU on a
pseudo-terminal. Never a mock of the wire.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest

from config.models import BusSim, ModbusBus, ModbusPoint
from drivers.modbus.device import DevicePoller
from drivers.modbus.link import Endpoint, NoAnswer
from drivers.modbus.poller import ModbusBusDriver, poll_once
from ground.model import Quality
from simulators.base import DeviceSimulator
from simulators.converter import ConverterServer, Line, PtyLine
from simulators.registry import simulator_for
from tests.integration.modbus.test_modbus_poller import fgw_tasks
from tests.support import free_port
from tests.unit.drivers.modbus.test_modbus_poller import (  # noqa: F401  (no_leaked_tasks: an autouse fixture)
    Recorder,
    device,
    no_leaked_tasks,
)

pytestmark = pytest.mark.integration

LEVEL = {"level": ModbusPoint(register="holding", address=0, type="uint16")}
HOLEY = {
    "a": ModbusPoint(register="holding", address=0, type="uint16"),
    "b": ModbusPoint(register="holding", address=1, type="uint16"),
    "c": ModbusPoint(register="holding", address=2, type="uint16"),
    "in_hole": ModbusPoint(register="holding", address=4, type="uint16"),
    "d": ModbusPoint(register="holding", address=6, type="uint16"),
    "e": ModbusPoint(register="holding", address=7, type="uint32"),
}


def unit_sim(name: str, points: dict[str, ModbusPoint], **values: int) -> DeviceSimulator:
    sim = simulator_for(name, None, dict(points))
    for point, value in values.items():
        sim.set(point, value)
    return sim


def converter_bus(
    port: int, transport: Literal["tcp", "rtu-over-tcp"] = "tcp", **options: object
) -> ModbusBus:
    return ModbusBus.model_validate(
        {
            "id": "rs485",
            "transport": transport,
            "host": "127.0.0.1",
            "port": port,
            "baudrate": 19200,
            "timeout": 0.3,
            **options,
        }
    )


@pytest.fixture
async def converter(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[ConverterServer, ModbusBus]]:
    """Units 1-3 live, unit 4 configured but dead (not on the line), one connection, 19200 baud."""
    framing, dead = getattr(request, "param", ("mbap", "silent"))
    transport = "tcp" if framing == "mbap" else "rtu-over-tcp"
    bus = converter_bus(free_port(), transport, sim=BusSim(converter=True, dead_answer=dead))
    units = {u: unit_sim(f"dev-{u}", LEVEL, level=10 * u) for u in (1, 2, 3)}
    line = Line(units, bus.baudrate, 0.002, dead_timeout=0.25, dead_answer=dead)
    server = ConverterServer(bus, line, framing, connections=1)
    await server.start()
    try:
        yield server, bus
    finally:
        await server.stop()


@pytest.mark.parametrize(
    "converter",
    [("mbap", "silent"), ("mbap", "0B"), ("rtu", "silent")],
    indirect=True,
    ids=["tcp-silent", "tcp-0B", "transparent"],
)
async def test_one_connection_three_live_units_and_a_dead_one(
    converter: tuple[ConverterServer, ModbusBus],
) -> None:
    server, bus = converter
    period = 0.1
    devices = [device(f"dev-{u}", u, LEVEL, bus="rs485", poll=period) for u in (1, 2, 3, 4)]
    sink = Recorder()
    async with ModbusBusDriver(bus, devices, sink) as driver:
        started = time.monotonic()
        await sink.wait_for(lambda: sink.online("dev-4") == [False], timeout=20)
        await sink.wait_for(lambda: driver.stats()["dev-4"].polls >= 6, timeout=30)
        window = time.monotonic() - started
        stats = driver.stats()
        assert server.refused == 0, "the gateway opened one connection, as the converter allows"
        for unit in (1, 2, 3):
            assert sink.online(f"dev-{unit}") == [True], "a live unit is never reported silent"
            assert sink.latest(f"dev-{unit}")["level"].value == 10 * unit
            # The dead unit holds the line for its timeout on its own (backed-off) attempts only.
            free = window - stats["dev-4"].polls * bus.timeout
            assert stats[f"dev-{unit}"].polls >= 0.6 * free / period, (stats, window)
        reason = sink.statuses[-1].reason
        assert sink.statuses[-1].device == "dev-4"
        assert f"127.0.0.1:{bus.port}" in reason
        if server.line.dead_answer == "0B":
            assert "exception 0B" in reason
    assert not fgw_tasks()


async def test_a_second_connection_is_refused_by_a_one_connection_converter(
    converter: tuple[ConverterServer, ModbusBus],
) -> None:
    server, bus = converter
    first, second = Endpoint(bus), Endpoint(bus)
    (block,) = DevicePoller(device("dev-1", 1, LEVEL, bus="rs485"), bus).blocks
    try:
        assert await first.read(block, 1, 0.3) == [10]
        with pytest.raises(NoAnswer, match=r"lost|no answer|reset"):
            await second.read(block, 2, 0.3)
        assert server.refused == 1
        assert await first.read(block, 2, 0.3) == [20]
    finally:
        first.close()
        second.close()


async def test_a_hole_inside_a_merged_read_is_bisected_once_and_remembered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = converter_bus(free_port(), "rtu-over-tcp")
    sim = unit_sim("meter", HOLEY, a=1, b=2, c=3, d=6, e=70000)
    sim.holes = {"holding": frozenset({4, 5})}
    line = Line({1: sim}, bus.baudrate, 0.001)
    server = ConverterServer(bus, line, "rtu")
    await server.start()
    poller = DevicePoller(device("meter", 1, HOLEY, bus="rs485"), bus)
    link = Endpoint(bus)
    try:
        assert len(poller.blocks) == 1  # one merged read of 0..8
        caplog.set_level(logging.WARNING, logger="drivers.modbus")
        for _ in range(3):
            outcome = await poller.poll(link)
            assert outcome.failure is None
            got = {r.point: (r.value, r.quality) for r in outcome.readings}
            assert got == {
                "a": (1, Quality.GOOD),
                "b": (2, Quality.GOOD),
                "c": (3, Quality.GOOD),
                "in_hole": (None, Quality.BAD),
                "d": (6, Quality.GOOD),
                "e": (70000, Quality.GOOD),
            }
        splits = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(splits) == 1, splits
        assert "holding 4..4 (in_hole)" in splits[0]
        # Learned: 0..2 and 6..8, the hole's point not asked again (until a re-probe).
        assert [(b.address, b.count) for b in poller.blocks] == [(0, 3), (6, 3)]
        before = line.requests
        await poller.poll(link)
        assert line.requests - before == 2
    finally:
        link.close()
        await server.stop()


async def test_busy_is_asked_again_once_after_a_pause(
    converter: tuple[ConverterServer, ModbusBus],
) -> None:
    server, bus = converter
    server.line.busy[2] = 1
    poller = DevicePoller(device("dev-2", 2, LEVEL, bus="rs485"), bus)
    link = Endpoint(bus)
    try:
        outcome = await poller.poll(link)
        assert [(r.value, r.quality) for r in outcome.readings] == [(20, Quality.GOOD)]
        server.line.busy[2] = 2  # busy twice: that request's points are bad, the unit is alive
        outcome = await poller.poll(link)
        assert outcome.failure is None
        assert [(r.value, r.quality) for r in outcome.readings] == [(None, Quality.BAD)]
    finally:
        link.close()


async def test_a_bus_whose_host_does_not_answer_names_its_endpoint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = converter_bus(free_port())  # nothing listens there
    devices = [device(f"dev-{u}", u, LEVEL, bus="rs485", poll=0.1) for u in (1, 2)]
    sink = Recorder()
    async with ModbusBusDriver(bus, devices, sink):
        await sink.wait_for(lambda: sink.online("dev-1") == sink.online("dev-2") == [False])
        await sink.wait_for(lambda: sink.online("modbus:rs485") == [False])
    for status in sink.statuses:
        assert f"127.0.0.1:{bus.port}" in status.reason
    offline = [r.getMessage() for r in caplog.records if "offline" in r.getMessage()]
    assert offline and all(f"127.0.0.1:{bus.port}" in line for line in offline)
    silent = [r.getMessage() for r in caplog.records if "silent" in r.getMessage()]
    assert len(silent) == 1 and f"bus rs485 (127.0.0.1:{bus.port}) silent" in silent[0]


async def test_a_live_unit_answering_again_ends_the_bus_silence(
    converter: tuple[ConverterServer, ModbusBus],
) -> None:
    server, bus = converter
    devices = [device(f"dev-{u}", u, LEVEL, bus="rs485", poll=0.1) for u in (1, 2)]
    for unit in (1, 2):
        server.units[unit].offline = True
    sink = Recorder()
    async with ModbusBusDriver(bus, devices, sink):
        await sink.wait_for(lambda: sink.online("modbus:rs485") == [False], timeout=20)
        server.units[2].offline = False
        await sink.wait_for(lambda: sink.online("modbus:rs485") == [False, True], timeout=20)
        assert sink.online("dev-2") == [False, True] and sink.online("dev-1") == [False]


SILENT_BUS_SITE = """
site: {id: wires, name: Wires}
modbus:
  - {id: rs485, transport: rtu-over-tcp, host: 127.0.0.1, port: 4001}
devices:
  - {id: meter-1, template: energy_meter, modbus: {bus: rs485, unit: 1}}
  - {id: pump-1, template: booster_pump, modbus: {bus: rs485, unit: 2}, depends_on: [meter-1]}
  - {id: fire-1, template: fire_panel, modbus: {bus: rs485, unit: 3}}
"""


def test_the_bus_alarm_is_the_root_cause_of_its_devices_comm_loss(tmp_path: Path) -> None:
    from config.site import load_site
    from ground.model import DeviceStatus
    from rules.engine import RuleEngine

    site = load_site(tmp_path / "site.yaml", SILENT_BUS_SITE)
    (rule,) = site.bus_rules()
    assert rule.alarm_id == "modbus:rs485.comm_loss" and "127.0.0.1:4001" in rule.message.en
    engine = RuleEngine([*site.rules(), rule], depends_on=site.depends_on())
    # The driver reports the bus first when its endpoint refuses connections (the converter is
    # off), then each device's comm_loss as it reaches its own limit.
    changes = engine.device_status(DeviceStatus("modbus:rs485", False, 1.0, "bus silent"), 1.0)
    for device_id in ("meter-1", "pump-1", "fire-1"):
        changes += engine.device_status(DeviceStatus(device_id, False, 2.0, "silent"), 2.0)
    last = {c.alarm_id: c for c in changes}
    assert last["modbus:rs485.comm_loss"].active and not last["modbus:rs485.comm_loss"].suppressed
    for device_id in ("meter-1", "pump-1"):
        change = last[f"{device_id}.comm_loss"]
        # the bus, not the pump's supply on the same bus (meter-1, silent too)
        assert change.active and change.suppressed and change.cause == "modbus:rs485.comm_loss"
    # Life safety first: the fire panel's comm_loss stays active, never suppressed by the bus,
    # and says which root cause it is active under.
    fire = last["fire-1.comm_loss"]
    assert fire.active and not fire.suppressed and fire.during == "modbus:rs485.comm_loss"


SOCAT = shutil.which("socat")


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed: no pseudo-terminal pair")
async def test_rtu_on_a_pseudo_terminal_with_a_dead_unit(tmp_path: Path) -> None:
    bus = ModbusBus(
        id="rs485", transport="rtu", port=str(tmp_path / "ttyFGW0"), baudrate=19200, timeout=0.3
    )
    units = {u: unit_sim(f"dev-{u}", LEVEL, level=u) for u in (1, 2)}
    served = PtyLine(bus, Line(units, bus.baudrate, 0.002, dead_timeout=0.25))
    await served.start()
    try:
        devices = [device(f"dev-{u}", u, LEVEL, bus="rs485") for u in (1, 2, 3)]
        readings = await poll_once({"rs485": bus}, devices)
        assert [(r.device, r.value, r.quality) for r in readings] == [
            ("dev-1", 1, Quality.GOOD),
            ("dev-2", 2, Quality.GOOD),
            ("dev-3", None, Quality.STALE),
        ]
    finally:
        await served.stop()
    await asyncio.sleep(0)


WIRED_SITE = """
site: {{id: wired, name: Wired}}
modbus:
  - {{id: mgate, transport: tcp, host: 127.0.0.1, port: {tcp}, baudrate: 19200, timeout: 300ms,
     sim: {{converter: true, dead_answer: 0B}}}}
  - {{id: usr, transport: rtu-over-tcp, host: 127.0.0.1, port: {transparent}, baudrate: 19200,
     timeout: 300ms}}
  - {{id: rs485, transport: rtu, port: {tty}, baudrate: 19200, timeout: 300ms}}
devices:
  - {{id: meter-1, template: energy_meter, modbus: {{bus: mgate, unit: 1}}}}
  - {{id: pump-1, template: booster_pump, modbus: {{bus: mgate, unit: 2}}}}
  - {{id: meter-2, template: energy_meter, modbus: {{bus: usr, unit: 1}}}}
  - {{id: lift-1, template: lift, modbus: {{bus: usr, unit: 2}}}}
  - {{id: pump-2, template: booster_pump, modbus: {{bus: rs485, unit: 5}}}}
"""


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed: no pseudo-terminal pair")
async def test_fgw_sim_serves_converters_transparent_converters_and_rtu_lines(
    tmp_path: Path,
) -> None:
    from config.site import load_site
    from simulators.runner import SiteSimulator

    text = WIRED_SITE.format(tcp=free_port(), transparent=free_port(), tty=tmp_path / "ttyS9")
    site = load_site(tmp_path / "site.yaml", text)
    async with SiteSimulator(site, mqtt=False, seed=5) as sims:
        assert {type(s).__name__ for s in sims.servers.values()} == {"ConverterServer", "PtyLine"}
        readings = await poll_once(site.buses, site.devices.values())
        assert {r.device for r in readings} == set(site.devices)
        assert {r.quality for r in readings} == {Quality.GOOD}
        sims.devices["pump-1"].offline = True  # behind the MGate: exception 0B
        readings = await poll_once(site.buses, site.devices.values(), ["meter-1", "pump-1"])
        assert {r.device: r.quality for r in readings} == {
            "meter-1": Quality.GOOD,
            "pump-1": Quality.STALE,
        }
    assert not (tmp_path / "ttyS9").exists(), "the pseudo-terminal pair is gone with the simulator"


async def test_a_life_safety_request_goes_ahead_of_dead_units_waiting_for_the_line(
    converter: tuple[ConverterServer, ModbusBus],
) -> None:
    """Three requests to dead units queue for the one connection; a fire panel's request made after
    them waits for the one in flight only, never for the queue of their timeouts."""
    _server, bus = converter
    link = Endpoint(bus)
    (block,) = DevicePoller(device("dev-1", 1, LEVEL, bus="rs485"), bus).blocks
    done: list[str] = []

    async def ask(name: str, unit: int, first: bool) -> None:
        try:
            await link.read(block, unit, 0.3, first=first)
        except NoAnswer:
            pass
        done.append(name)

    try:
        async with asyncio.TaskGroup() as group:
            for unit in (7, 8, 9):
                group.create_task(ask(f"dead-{unit}", unit, False))
                await asyncio.sleep(0)  # in this order
            group.create_task(ask("fire", 1, True))
        assert done == ["dead-7", "fire", "dead-8", "dead-9"]
    finally:
        link.close()


@pytest.mark.parametrize("retries", [0, 1])
async def test_retries_send_a_silent_request_again(
    converter: tuple[ConverterServer, ModbusBus], retries: int
) -> None:
    server, bus = converter
    bus = bus.model_copy(update={"retries": retries})
    poller = DevicePoller(device("dev-3", 3, LEVEL, bus="rs485"), bus)
    link = Endpoint(bus)
    try:
        server.line.drop[3] = 1  # the first request is lost on the line
        before = server.line.requests
        outcome = await poller.poll(link)
        assert server.line.requests - before == 1 + retries
        if retries:
            assert [(r.value, r.quality) for r in outcome.readings] == [(30, Quality.GOOD)]
        else:
            assert outcome.failure is not None and "no answer" in outcome.failure
    finally:
        link.close()


async def test_a_converter_that_refuses_connections_is_the_bus_before_its_units(
    converter: tuple[ConverterServer, ModbusBus],
) -> None:
    server, bus = converter
    devices = [device(f"dev-{u}", u, LEVEL, bus="rs485", poll=0.1) for u in (1, 2, 3)]
    sink = Recorder()
    async with ModbusBusDriver(bus, devices, sink):
        await sink.wait_for(lambda: all(sink.online(f"dev-{u}") == [True] for u in (1, 2, 3)))
        await server.stop()  # power off: the connection drops, new ones are refused
        await sink.wait_for(lambda: sink.online("modbus:rs485") == [False])
        first_down = next(i for i, s in enumerate(sink.statuses) if not s.online)
        assert sink.statuses[first_down].device == "modbus:rs485", "the bus, then its units"
        assert "cannot connect to 127.0.0.1" in sink.statuses[first_down].reason
        await server.start()  # power back
        await sink.wait_for(lambda: sink.online("modbus:rs485") == [False, True], timeout=30)
        await sink.wait_for(lambda: all(sink.online(f"dev-{u}")[-1] for u in (1, 2, 3)), 30)
