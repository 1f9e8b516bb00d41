"""The converter scenario's building: units behind one serial-to-Ethernet converter, one dead.

A Modbus TCP converter (an MGate in gateway mode: MBAP on its Ethernet side; or a transparent one,
RTU frames over TCP) that accepts a single TCP connection and carries one request at a time on its
RS-485 line (`simulators.converter`, served by `fgw sim` from the bus's `sim:` settings), with
`live + 1` units on it; the one in the middle is the one the scenario makes go silent (the
converter then holds the line for its `dead_timeout` and answers nothing). `line_demand` says how
much line time each gateway's requests need, so that a baud rate can be chosen at which both fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.sites import MODBUS_TEMPLATES
from config.models import ModbusPoint
from config.site import Site
from drivers.modbus.budget import REQUEST_BYTES, line_load, transaction_time
from drivers.modbus.frames import FUNCTION_OF_TABLE, answer_bytes

BUS = "converter"
DEAD_TIMEOUT = "200ms"
"""How long the simulated converter waits for the dead unit before it is silent (its default)."""


def template(unit: int) -> str:
    """The templates in turn, as in `bench.sites`."""
    return MODBUS_TEMPLATES[(unit - 1) % len(MODBUS_TEMPLATES)]


def device_id(unit: int) -> str:
    return f"{template(unit).replace('_', '-')}-{unit}"


def converter_site(
    live: int, *, mqtt_port: int, modbus_port: int, baudrate: int, timeout: str = "500ms",
    poll: str = "1s", transport: Literal["tcp", "rtu-over-tcp"] = "tcp",
) -> tuple[str, str]:  # fmt: skip
    """A site with `live + 1` units (1..live+1) behind one converter, and the id of the unit in
    the middle (the one to make silent).

    The gateways publish every poll (`publish_readings`) and open one connection to the bus
    (`max_connections: 1`); `sim:` tells `fgw sim` to serve the bus as a converter that accepts one
    connection, its line at `baudrate`: a Modbus TCP converter (`tcp`), or a transparent one
    (`rtu-over-tcp`: RTU frames over TCP).
    """
    if live < 1:
        raise ValueError("a converter scenario needs at least one live unit")
    converter = "converter: true, " if transport == "tcp" else ""
    lines = [
        "site: {id: bench, timezone: Asia/Shanghai}",
        "storage: {path: ./state}",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}, publish_readings: true}}",
        "modbus:",
        f"  - {{id: {BUS}, transport: {transport}, host: 127.0.0.1, port: {modbus_port},"
        f" baudrate: {baudrate}, timeout: {timeout}, max_connections: 1,",
        f"     sim: {{{converter}connections: 1, dead_timeout: {DEAD_TIMEOUT}}}}}",
        "devices:",
    ]
    lines += [
        f"  - {{id: {device_id(unit)}, template: {template(unit)}, "
        f"modbus: {{bus: {BUS}, unit: {unit}}}, poll: {poll}}}"
        for unit in range(1, live + 2)
    ]
    return "\n".join(lines) + "\n", device_id(live // 2 + 1)


@dataclass(frozen=True)
class LineDemand:
    """Seconds of line time a second each gateway's polls of the live units need, and requests/s."""

    baudrate: int
    fgw_s: float
    fgw_requests: float
    peer_s: float
    peer_requests: float


def line_demand(site: Site, live: list[str]) -> LineDemand:
    """What polling `live` every poll period asks of the bus's line: Facility Gateway's merged
    reads (`drivers.modbus.budget.line_load`) and the peer's one request per point."""
    (bus,) = site.buses.values()
    baud = bus.line_baudrate
    ours = line_load(bus, [site.devices[d] for d in live])
    if baud is None or ours is None:
        raise ValueError(f"bus {bus.id} states no baudrate: no line behind it")
    peer_s = peer_requests = 0.0
    for name in live:
        device = site.devices[name]
        for point in device.points.values():
            if isinstance(point, ModbusPoint):
                answer = 3 + answer_bytes(FUNCTION_OF_TABLE[point.table], point.register_count)
                peer_s += transaction_time(REQUEST_BYTES, answer, baud) / device.spec.poll
                peer_requests += 1 / device.spec.poll
    return LineDemand(baud, ours.live, ours.requests_per_second, peer_s, peer_requests)
