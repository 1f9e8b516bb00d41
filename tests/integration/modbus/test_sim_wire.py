"""The simulators on the real wire: Modbus TCP on loopback (read by mbpoll and by pymodbus), the
doors and the inject channel through a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from config.site import Site, load_site
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.support import Broker, free_port

pytestmark = pytest.mark.integration

MBPOLL = shutil.which("mbpoll") or "/usr/bin/mbpoll"


def write_site(tmp_path: Path, broker: Broker, modbus_port: int) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(
        f"""
site: {{id: testsite}}
mqtt: {{host: 127.0.0.1, port: {broker.port}}}
modbus:
  - {{id: plant, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms}}
  - {{id: serial, transport: rtu, port: /dev/ttyUSB9}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: plant, unit: 1}}}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: plant, unit: 10}}}}
  - {{id: lift-1, template: lift, modbus: {{bus: plant, unit: 21}}}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: plant, unit: 30}}}}
  - {{id: tank-1, modbus: {{bus: serial, unit: 9}},
      points: {{level: {{register: holding, address: 0, type: uint16}}}}}}
  - {{id: door-lobby, template: access_door, mqtt: {{topic: doors/lobby}}}}
"""
    )
    return load_site(path)


@pytest.fixture
async def sim(tmp_path: Path, broker: Broker) -> AsyncIterator[SiteSimulator]:
    site = write_site(tmp_path, broker, free_port())
    async with SiteSimulator(site, broker.host, broker.port, seed=1, tick=0.05) as running:
        await asyncio.wait_for(running.mqtt_ready.wait(), 10)
        yield running


async def mbpoll(*args: str) -> list[int]:
    proc = await asyncio.create_subprocess_exec(
        MBPOLL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, (out + err).decode()
    return [int(v) for v in re.findall(r"^\[\d+\]:\s+(-?\d+)", out.decode(), re.M)]


async def test_mbpoll_reads_run_hours_as_the_docs_say(sim: SiteSimulator) -> None:
    port = sim.servers["plant"].address[1]
    sim.devices["pump-1"].set("run_hours", 1234.5)
    await sim.refresh()
    words = await mbpoll("-m", "tcp", "-a", "1", "-t", "3", "-r", "7", "-c", "2", "-p", str(port),
                         "-1", "127.0.0.1")  # fmt: skip
    assert words == [12345, 0]  # 0.1 h per count, low word first (CDAB)
    # mbpoll's 32-bit int is low word first too: the docs' one-liner gives the counter directly.
    assert await mbpoll("-m", "tcp", "-a", "1", "-t", "3:int", "-r", "7", "-c", "1",
                        "-p", str(port), "-1", "127.0.0.1") == [12345]  # fmt: skip
    assert "tank-1" in sim.skipped  # the rtu bus is skipped, said so


async def test_units_share_the_bus_and_an_offline_unit_is_silent(sim: SiteSimulator) -> None:
    port = sim.servers["plant"].address[1]
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
    await client.connect()
    try:
        fire = await client.read_discrete_inputs(0, count=6, device_id=30)
        assert fire.bits[:6] == [False, False, False, False, False, True]  # pump ready
        await send_inject(sim.broker[0], sim.broker[1], "testsite", "fire-1",
                          {"fault": "fire", "zone": 3})  # fmt: skip
        zones = await client.read_input_registers(0, count=1, device_id=30)
        assert zones.registers == [0b100]
        fire = await client.read_discrete_inputs(0, count=1, device_id=30)
        assert fire.bits[0] is True

        sim.devices["lift-1"].inject("offline")
        with pytest.raises(ModbusException):
            await client.read_input_registers(0, count=8, device_id=21)
        assert sim.servers["plant"].dropped >= 1
        meter = await client.read_discrete_inputs(0, count=1, device_id=10)  # same connection
        assert not meter.isError()
        sim.devices["lift-1"].inject("clear")
        lift = await client.read_input_registers(0, count=8, device_id=21)
        assert lift.registers[0] & 0b100  # in service
    finally:
        client.close()


async def test_inject_round_trip(sim: SiteSimulator) -> None:
    host, port = sim.broker
    assert await send_inject(host, port, "testsite", "pump-1", {"fault": "trip"}) == {"ok": True}
    assert sim.devices["pump-1"].values["fault"] is True
    result = await send_inject(host, port, "testsite", "pump-1", {"fault": "explode"})
    assert result["ok"] is False and "dry_run" in result["error"] and "clear" in result["error"]
    result = await send_inject(host, port, "testsite", "pump-1", {"set": {"run_hours": 1999.5}})
    assert result == {"ok": True} and sim.devices["pump-1"].values["run_hours"] == 1999.5
    result = await send_inject(host, port, "testsite", "nobody", {"fault": "clear"})
    assert result["ok"] is False and "pump-1" in result["error"]
    assert await send_inject(host, port, "testsite", "pump-1", {"fault": "clear"}) == {"ok": True}
    assert sim.devices["pump-1"].values["fault"] is False


async def test_inject_without_simulator_times_out(broker: Broker) -> None:
    with pytest.raises(TimeoutError, match="fgw sim"):
        await send_inject(broker.host, broker.port, "nosite", "pump-1", {"fault": "trip"}, 0.5)


async def test_door_publishes_to_the_broker(sim: SiteSimulator, broker: Broker) -> None:
    door = sim.site.device_topic(sim.site.devices["door-lobby"])
    assert (
        door == "fgw/testsite/devices/doors/lobby"
    )  # under mqtt.device_base, as the gateway reads
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"{door}/#", qos=1)
        seen: dict[str, list[dict[str, object]]] = {}

        async def until(predicate) -> None:  # type: ignore[no-untyped-def]
            async with asyncio.timeout(10):
                async for message in client.messages:
                    payload = json.loads(message.payload)  # type: ignore[arg-type]
                    seen.setdefault(message.topic.value, []).append(payload)
                    if predicate():
                        return

        await until(lambda: f"{door}/status" in seen)  # retained: there at once
        assert seen[f"{door}/status"][0] == {"online": True}
        sim.devices["door-lobby"].inject("forced")
        await until(lambda: any(e["event"] == "forced" for e in seen.get(f"{door}/event", [])))
        await until(lambda: {"open": True} in seen.get(f"{door}/state", []))
        event = next(e for e in seen[f"{door}/event"] if e["event"] == "forced")
        assert set(event) == {"event", "card", "ts"}


async def test_stop_leaves_nothing_behind(tmp_path: Path, broker: Broker) -> None:
    site = write_site(tmp_path, broker, free_port())
    before = {t for t in asyncio.all_tasks() if not t.done()}
    async with SiteSimulator(site, broker.host, broker.port, seed=1) as running:
        await asyncio.wait_for(running.mqtt_ready.wait(), 10)
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"fgw-sim[testsite].physics", "fgw-sim[testsite].mqtt"} <= names
        port = running.servers["plant"].address[1]
    await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if not t.done()} <= before
    with pytest.raises(OSError):  # the Modbus port is closed again
        await asyncio.open_connection("127.0.0.1", port)


async def test_mqtt_comes_back_after_a_broker_restart(
    tmp_path: Path, private_broker: Broker
) -> None:
    site = write_site(tmp_path, private_broker, free_port())
    async with SiteSimulator(site, private_broker.host, private_broker.port, seed=1) as running:
        await asyncio.wait_for(running.mqtt_ready.wait(), 10)
        await asyncio.to_thread(private_broker.restart)
        async with asyncio.timeout(15):
            while True:  # the inject channel answers again once the simulator has reconnected
                try:
                    result = await send_inject(
                        private_broker.host, private_broker.port, "testsite", "fire-1",
                        {"fault": "battery_low"}, timeout=1.0,
                    )  # fmt: skip
                    break
                except (TimeoutError, aiomqtt.MqttError):
                    await asyncio.sleep(0.1)
        assert result == {"ok": True}
        assert running.devices["fire-1"].values["battery_low"] is True


@pytest.mark.timeout(20)  # without the fix this hangs
async def test_stop_survives_a_swallowed_cancellation(tmp_path: Path, broker: Broker) -> None:
    """On Python 3.11 `asyncio.wait_for` (inside aiomqtt's publish) can eat a cancellation; the
    simulator must stop anyway instead of waiting for the next door message forever."""
    site = write_site(tmp_path, broker, free_port())
    running = SiteSimulator(site, broker.host, broker.port, seed=1)
    publish = running._publish

    started = asyncio.Event()

    async def stubborn(client: aiomqtt.Client) -> None:
        started.set()
        for _ in range(3):  # a cancel lost several times over, as the wait_for race loses it
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        await publish(client)

    running._publish = stubborn  # type: ignore[method-assign]
    async with asyncio.timeout(10):
        async with running:
            await started.wait()
    assert all(t.done() for t in running._children)
