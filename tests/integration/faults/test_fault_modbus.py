"""Fault injection on a shared Modbus bus (issue 6): one device dead (never answers), one slow (every
answer takes 3 s, server side), one answering every request with an exception — and a healthy one
that must keep its 200 ms poll rate through all of it, with the whole gateway running.

The server is a real pymodbus TCP server on loopback (one address, four units, like a plant-room
Modbus gateway that accepts several connections: `max_connections: 4`, so a unit that takes 3 s to
answer holds one of them, not the healthy unit's); the faults live in its data context and its
request trace hook, never in the client. Behind a one-connection converter the line itself is the
limit (tests/integration/modbus/test_modbus_converter.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer

from config.site import load_site
from gateway.service import Gateway
from tests.reliability_support import until
from tests.support import Broker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HEALTHY, DEAD, SLOW, FAULTY = 1, 2, 3, 4
SLOW_ANSWER = 3.0


class FaultyCore:
    """Wraps the server's data store (pymodbus turns any context into its own `SimCore`, asked at
    each request): unit SLOW answers after 3 s without blocking the server; unit FAULTY answers
    every read with an exception (illegal data address)."""

    def __init__(self, core: Any) -> None:
        self.core = core

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):  # type: ignore[no-untyped-def]
        if device_id == SLOW:
            await asyncio.sleep(SLOW_ANSWER)
        if device_id == FAULTY:
            return ExcCodes.ILLEGAL_ADDRESS
        return await self.core.async_getValues(device_id, func_code, address, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)


def drop_dead(sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
    """The dead unit: its requests are dropped, so the client times out."""
    return None if not sending and pdu.dev_id == DEAD else pdu


SITE = """
site: {{id: mb-{uid}, timezone: UTC, locale: en}}
storage: {{path: ./state}}
console: {{enabled: false}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
modbus:
  - {{id: shared, transport: tcp, host: 127.0.0.1, port: {port}, timeout: 1s, retries: 0,
     max_connections: 4}}
devices:
  - {{id: healthy, modbus: {{bus: shared, unit: 1}}, poll: 200ms, points: {point}}}
  - {{id: dead, modbus: {{bus: shared, unit: 2}}, poll: 200ms, points: {point}}}
  - {{id: slow, modbus: {{bus: shared, unit: 3}}, poll: 200ms, timeout: 5s, comm_loss_after: 20s,
     points: {point}}}
  - {{id: faulty, modbus: {{bus: shared, unit: 4}}, poll: 200ms, points: {point}}}
"""
POINT = "{v: {register: holding, address: 0, type: uint16}}"


async def test_dead_slow_and_faulty_neighbours_do_not_slow_a_healthy_device(
    broker: Broker, tmp_path: Path
) -> None:
    port = free_port()
    block = lambda: ModbusSequentialDataBlock(1, [7] * 10)  # noqa: E731
    context = ModbusServerContext(
        devices={
            unit: ModbusDeviceContext(di=block(), co=block(), hr=block(), ir=block())
            for unit in (HEALTHY, DEAD, SLOW, FAULTY)
        },
        single=False,
    )
    server = ModbusTcpServer(context, address=("127.0.0.1", port), trace_pdu=drop_dead)
    server.context = FaultyCore(server.context)  # type: ignore[assignment]
    await server.serve_forever(background=True)
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(uid=uuid.uuid4().hex[:6], mqtt=broker.port, port=port, point=POINT))
    site = load_site(path)
    gateway = Gateway(site)
    driver = gateway.drivers["modbus:shared"]
    stop = asyncio.Event()
    run = asyncio.create_task(gateway.run(stop), name="test.gateway")
    try:
        await until(lambda: driver.stats()["dead"].online is False, 15, "dead device offline")
        await until(lambda: driver.stats()["slow"].online is True, 15, "slow device answered")
        before, started = driver.stats()["healthy"].polls, time.monotonic()
        await asyncio.sleep(2 * SLOW_ANSWER)  # a window of several slow answers and dead timeouts
        rate = (driver.stats()["healthy"].polls - before) / (time.monotonic() - started)
        assert rate >= 0.5 * 5, f"healthy device polled at {rate:.1f}/s instead of 5/s"
        stats = driver.stats()
        assert stats["healthy"].online and stats["healthy"].errors == 0
        assert stats["slow"].online and stats["slow"].last_poll_seconds >= SLOW_ANSWER - 0.1
        assert stats["faulty"].online and stats["faulty"].errors > 0  # alive, refusing requests
        assert gateway.history.flush(timeout=10)
        now = time.time()
        healthy = gateway.history.query("healthy", "v", now - 60, now + 1, max_points=10_000)
        faulty = gateway.history.query("faulty", "v", now - 60, now + 1, max_points=10_000)
        assert healthy and {r["quality"] for r in healthy} == {"good"}
        assert faulty and {r["quality"] for r in faulty} == {"bad"}
        health = gateway.health()["checks"]
        assert health["devices"]["offline"] == ["dead"]
        assert health["polling"]["status"] == "ok"
        alarms = {a.id: a.state for a in gateway.book.non_normal()}
        assert "dead.comm_loss" in alarms and "slow.comm_loss" not in alarms
        assert "healthy.comm_loss" not in alarms and "faulty.comm_loss" not in alarms
    finally:
        stop.set()
        await asyncio.wait_for(run, 30)
        await server.shutdown()
    print(
        f"\nFIGURE shared bus: healthy device {rate:.1f} polls/s (nominal 5) beside a dead, "
        f"a 3 s slow and an exception-answering device"
    )
