"""The wire under the poller: one pymodbus client per TCP device, one shared client per RTU line.

A `Link` turns a `ReadBlock` into register words or bits, or raises:
- `NoAnswer` — timeout, connection refused or lost: the device (or the path to it) is silent;
- `ErrorAnswer` — a Modbus exception response: the device is alive but refused this request.

Timeouts and retries are ours, not pymodbus': its clients are built with `retries=0` and no automatic
reconnect (`reconnect_delay=0`, which would otherwise run untracked background tasks), and every
request runs under `asyncio.timeout`. The poller decides when to try again, with back-off.

Why a connection per TCP device: a Modbus TCP server or gateway accepts several connections, and
pymodbus serialises requests on a connection, so a silent unit sharing a connection would make its
neighbours wait out its timeouts. An RS-485 line cannot do that — one request at a time on the wire —
so RTU devices share one client behind a lock and the poller keeps a dead one's attempts rare and short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from drivers.modbus.plan import ReadBlock
from gateway.config.models import ModbusBus


def _slack(timeout: float) -> float:
    """pymodbus' own timeout: longer than ours, so that ours (and our error handling) always wins."""
    return 2 * timeout + 1.0


RawData = list[int] | list[bool]


class NoAnswer(Exception):
    """The device did not answer: timeout, connection refused, connection lost."""


class ErrorAnswer(Exception):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, block: ReadBlock) -> None:
        super().__init__(
            f"exception code {code} reading {block.count} {block.table} at {block.address}"
        )
        self.code = code


class Link(Protocol):
    """One path to one or more devices."""

    async def read(
        self, block: ReadBlock, unit: int, answer_within: float, pause: float = 0.0
    ) -> RawData:
        """Read one block from device `unit`, within `answer_within` seconds (plus `pause` of quiet after)."""
        ...

    def close(self) -> None: ...


def _reader(client: Any, table: str) -> Callable[..., Any]:
    return {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }[table]


async def _transact(
    client: Any, block: ReadBlock, unit: int, answer_within: float, where: str
) -> RawData:
    """Connect if needed and make one request, all within `answer_within` seconds."""
    try:
        async with asyncio.timeout(answer_within):
            if not client.connected and not await client.connect():
                raise NoAnswer(f"cannot connect to {where}")
            response = await _reader(client, block.table)(
                block.address, count=block.count, device_id=unit
            )
    except TimeoutError:
        raise NoAnswer(f"no answer within {answer_within:g}s") from None
    except (ModbusException, OSError) as exc:
        client.close()  # a broken connection is rebuilt on the next attempt
        raise NoAnswer(f"{type(exc).__name__}: {exc}") from None
    if response.isError():
        raise ErrorAnswer(int(getattr(response, "exception_code", 0)), block)
    return list(response.bits) if block.is_bits else list(response.registers)


class TcpLink:
    """A connection of its own to a Modbus TCP server or gateway, for one device."""

    def __init__(self, bus: ModbusBus, timeout: float) -> None:
        self.where = f"{bus.host}:{bus.port}"
        self.client = AsyncModbusTcpClient(
            str(bus.host),
            port=int(bus.port or 502),
            timeout=_slack(timeout),
            retries=0,
            reconnect_delay=0,
        )

    async def read(
        self, block: ReadBlock, unit: int, answer_within: float, pause: float = 0.0
    ) -> RawData:
        data = await _transact(self.client, block, unit, answer_within, self.where)
        if pause:
            await asyncio.sleep(pause)
        return data

    def close(self) -> None:
        self.client.close()


class RtuLink:
    """A serial line shared by its devices: one request on the wire at a time.

    The lock is held for one request (and the device's `pause_after`), not a whole poll, so devices
    interleave fairly; waiting for the lock is not part of a device's timeout.
    """

    def __init__(self, bus: ModbusBus, longest_timeout: float) -> None:
        self.where = str(bus.port)
        self.lock = asyncio.Lock()
        self.client = AsyncModbusSerialClient(
            str(bus.port),
            framer=FramerType.RTU,
            baudrate=bus.baudrate,
            bytesize=bus.bytesize,
            parity=bus.parity,
            stopbits=bus.stopbits,
            timeout=_slack(longest_timeout),
            retries=0,
            reconnect_delay=0,
        )

    async def read(
        self, block: ReadBlock, unit: int, answer_within: float, pause: float = 0.0
    ) -> RawData:
        async with self.lock:
            try:
                return await _transact(self.client, block, unit, answer_within, self.where)
            finally:
                if pause:
                    await asyncio.sleep(pause)

    def close(self) -> None:
        self.client.close()
