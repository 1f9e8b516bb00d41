"""A whole bus goes silent behind its converter, with the whole gateway running (PRODUCT §10, §9).

One alarm for the bus names its endpoint; the meter's and the pump's comm_loss are suppressed with
the bus alarm as their root cause (the pump's too, though its supply meter is silent as well: the
converter refusing connections is known before any unit's comm_loss); the fire panel's comm_loss
stays active (life safety first).
The converter is the simulated one, on loopback; the broker a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from config.site import load_site
from gateway.service import Gateway
from rules.alarms import AlarmState
from simulators.converter import ConverterServer, line_for
from simulators.registry import simulator_for
from tests.reliability_support import until
from tests.support import Broker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SITE = """
site: {{id: bus-{uid}, timezone: UTC, locale: en}}
storage: {{path: ./state}}
console: {{enabled: false}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
modbus:
  - {{id: rs485, transport: rtu-over-tcp, host: 127.0.0.1, port: {port}, baudrate: 19200,
     timeout: 300ms}}
devices:
  - {{id: meter-1, template: energy_meter, modbus: {{bus: rs485, unit: 1}}, poll: 200ms}}
  - {{id: pump-1, template: booster_pump, modbus: {{bus: rs485, unit: 2}}, poll: 200ms,
     depends_on: [meter-1]}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: rs485, unit: 3}}, poll: 200ms}}
"""


async def test_a_silent_converter_is_one_bus_alarm_and_the_fire_panel_stays_active(
    broker: Broker, tmp_path: Path
) -> None:
    port = free_port()
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(uid=uuid.uuid4().hex[:6], mqtt=broker.port, port=port))
    site = load_site(path)
    units = {
        d.spec.modbus.unit: simulator_for(d.id, d.spec.template, d.points, seed=1)
        for d in site.devices.values()
        if d.spec.modbus is not None
    }
    bus = site.buses["rs485"]
    converter = ConverterServer(bus, line_for(bus, units), "rtu")
    await converter.start()
    gateway = Gateway(site)
    driver = gateway.drivers["modbus:rs485"]
    stop = asyncio.Event()
    run = asyncio.create_task(gateway.run(stop), name="test.gateway")
    try:
        await until(lambda: all(s.online for s in driver.stats().values()), 20, "all online")
        await converter.stop()  # the converter loses power
        alarms = lambda: {a.id: a for a in gateway.book.non_normal()}  # noqa: E731
        await until(lambda: "modbus:rs485.comm_loss" in alarms(), 30, "the bus alarm")
        await until(
            lambda: {"meter-1.comm_loss", "pump-1.comm_loss", "fire-1.comm_loss"} <= set(alarms()),
            30,
            "every device's comm_loss",
        )
        now = alarms()
        bus_alarm = now["modbus:rs485.comm_loss"]
        assert bus_alarm.state is AlarmState.ACTIVE_UNACK
        assert f"127.0.0.1:{port}" in bus_alarm.message_en
        for consequence in ("meter-1.comm_loss", "pump-1.comm_loss"):
            assert now[consequence].state is AlarmState.SUPPRESSED
            assert now[consequence].suppressed_by == "modbus:rs485.comm_loss"
        assert now["fire-1.comm_loss"].state is AlarmState.ACTIVE_UNACK  # never suppressed
        assert now["fire-1.comm_loss"].during == "modbus:rs485.comm_loss"  # but linked
        await converter.start()  # power back
        await until(
            lambda: not alarms()["modbus:rs485.comm_loss"].condition_active, 30, "bus answers"
        )
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
        await converter.stop()
