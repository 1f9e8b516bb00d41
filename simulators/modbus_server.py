"""One Modbus TCP server per `tcp` bus of a site, answering every unit id on that bus.

Like the plant room's real Modbus gateway: one address, many units behind it. The register images
are copied from the simulators after each physics step. A simulator that is `offline` is made silent
with a server-side `trace_pdu` hook that drops requests to its unit (TESTBED.md): the client times
out, and the next request to another unit on the same connection still works.

Writes by a client (e.g. to a holding register) are accepted but overwritten at the next refresh:
the simulator's state is the truth; change it with `set` on the inject channel.
"""

from __future__ import annotations

import logging
from typing import Any

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from config.models import ModbusBus, ModbusPoint
from simulators.base import DeviceSimulator

log = logging.getLogger(__name__)

TABLES = ("coil", "discrete", "holding", "input")
"""The order of SimDevice's non-shared blocks, and of Modbus function codes 1, 2, 3, 4."""
FUNCTION_CODE = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def table_sizes(sim: DeviceSimulator) -> dict[str, int]:
    """Registers (or bits) each table needs: from address 0 to the end of its last point; at least 1."""
    sizes = dict.fromkeys(TABLES, 1)
    for point in sim.points.values():
        if isinstance(point, ModbusPoint):
            end = point.address + point.register_count
            sizes[point.table] = max(sizes[point.table], end)
    return sizes


def _sim_device(unit: int, sizes: dict[str, int]) -> SimDevice:
    blocks: list[list[SimData]] = []
    for table in TABLES:
        bits = table in ("coil", "discrete")
        kind = DataType.BITS if bits else DataType.REGISTERS
        blocks.append([SimData(0, count=sizes[table], values=False if bits else 0, datatype=kind)])
    return SimDevice(id=unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]))


class BusServer:
    """The Modbus TCP server of one bus, serving the simulators of the devices on it.

    Args:
        bus: the site's bus (its `host` and `port` are where the server listens).
        units: unit id -> the simulator answering on it.
    """

    def __init__(self, bus: ModbusBus, units: dict[int, DeviceSimulator]) -> None:
        if bus.transport != "tcp" or not isinstance(bus.port, int) or not bus.host:
            raise ValueError(f"bus {bus.id} is not a tcp bus with host and port")
        self.bus = bus
        self.units = units
        self.sizes = {unit: table_sizes(sim) for unit, sim in units.items()}
        self.dropped = 0
        self._server: ModbusTcpServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.bus.host is not None and isinstance(self.bus.port, int)
        return self.bus.host, self.bus.port

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> Any:
        """Drop requests to an offline unit: returning None makes the server not answer at all."""
        if not sending:
            sim = self.units.get(pdu.dev_id)
            if sim is not None and sim.offline:
                self.dropped += 1
                return None
        return pdu

    async def start(self) -> None:
        devices = [_sim_device(unit, self.sizes[unit]) for unit in sorted(self.units)]
        self._server = ModbusTcpServer(devices, address=self.address, trace_pdu=self._trace_pdu)
        await self.refresh()
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError:  # pymodbus says only "Could not start listen"
            host, port = self.address
            raise OSError(
                f"bus {self.bus.id}: cannot listen on {host}:{port} (the port is in use, or the "
                "address is not this machine's): stop the other process or change the bus's port"
            ) from None
        log.info(
            "modbus bus %s: serving units %s on %s:%d",
            self.bus.id,
            ",".join(map(str, sorted(self.units))),
            *self.address,
        )

    async def refresh(self) -> None:
        """Copy every simulator's register image into the server's data store."""
        if self._server is None:
            return
        for unit, sim in self.units.items():
            image = sim.register_image()
            for table in TABLES:
                size = self.sizes[unit][table]
                words = image[table]
                values: list[Any] = [words.get(a, 0) for a in range(size)]
                if table in ("coil", "discrete"):
                    values = [bool(v) for v in values]
                await self._server.context.async_setValues(unit, FUNCTION_CODE[table], 0, values)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
