"""The wire under the poller: one pymodbus client per TCP device, one shared client per RTU line.

A `Link` turns a `ReadBlock` into register words or bits, or raises:
- `NoAnswer` — timeout, connection refused or lost: the device (or the path to it) is silent;
- `ErrorAnswer` — a Modbus exception response: the device is alive but refused this request.

Retries are ours, not pymodbus': its clients are built with `retries=0` and no automatic reconnect
(`reconnect_delay=0`, which would otherwise run untracked background tasks). The poller decides when
to try again, with back-off. Timeouts: a TCP client serves one device, so it is built with that
device's timeout and a request on an open connection relies on pymodbus' own wait for the answer —
wrapping every request in an `asyncio.timeout` of ours as well cost more than the rest of the
request path together. Connecting (and any request on the shared RTU client, whose devices may have
different timeouts) runs under `asyncio.timeout`, so that connect and request together stay within
the device's timeout. Either way a silent device gives the same `NoAnswer("no answer within …")`.

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
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from drivers.modbus.plan import BIT_TABLES, ReadBlock
from gateway.config.models import ModbusBus


def _slack(timeout: float) -> float:
    """pymodbus' own timeout on a shared RTU line: longer than ours, so that ours always wins."""
    return 2 * timeout + 1.0


_NO_RESPONSE = "No response received"
"""How pymodbus (3.16) words the `ModbusIOException` it raises when its own timeout expires."""


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


Reader = Callable[..., Any]
"""A pymodbus client's read method for one table: `(address, *, count, device_id) -> response`."""


def _readers(client: Any) -> dict[str, Reader]:
    """The client's read method per table, looked up once per client rather than per request."""
    return {
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
    }


async def _request(
    client: Any, read: Reader, block: ReadBlock, unit: int, answer_within: float
) -> RawData:
    """One request on an open connection, within the client's own timeout."""
    try:
        response = await read(block.address, count=block.count, device_id=unit)
    except (ModbusException, OSError) as exc:
        raise _no_answer(client, exc, answer_within) from None
    if response.isError():
        raise ErrorAnswer(int(getattr(response, "exception_code", 0)), block)
    return response.bits if block.is_bits else response.registers


async def _transact(
    client: Any, read: Reader, block: ReadBlock, unit: int, answer_within: float, where: str
) -> RawData:
    """Connect if needed and make one request, all within `answer_within` seconds."""
    try:
        async with asyncio.timeout(answer_within):
            if not client.connected and not await client.connect():
                raise NoAnswer(f"cannot connect to {where}")
            return await _request(client, read, block, unit, answer_within)
    except TimeoutError:
        raise NoAnswer(f"no answer within {answer_within:g}s") from None
    except (ModbusException, OSError) as exc:  # from connecting
        raise _no_answer(client, exc, answer_within) from None


def _no_answer(client: Any, exc: BaseException, answer_within: float) -> NoAnswer:
    """The `NoAnswer` for a failed request; a broken connection is closed, to be rebuilt next time.

    pymodbus' own timeout reads as our timeout did: the connection stays up (pymodbus closes it
    itself after a few silent requests in a row).
    """
    if isinstance(exc, ModbusIOException) and _NO_RESPONSE in str(exc):
        return NoAnswer(f"no answer within {answer_within:g}s")
    client.close()
    return NoAnswer(f"{type(exc).__name__}: {exc}")


class TcpLink:
    """A connection of its own to a Modbus TCP server or gateway, for one device.

    Args:
        bus: the bus (host and port).
        timeout: the device's timeout: pymodbus waits this long for each answer.
    """

    def __init__(self, bus: ModbusBus, timeout: float) -> None:
        self.where = f"{bus.host}:{bus.port}"
        self.timeout = timeout
        self.client = AsyncModbusTcpClient(
            str(bus.host),
            port=int(bus.port or 502),
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )
        self._readers = _readers(self.client)

    async def read(
        self, block: ReadBlock, unit: int, answer_within: float, pause: float = 0.0
    ) -> RawData:
        client, read = self.client, self._readers[block.table]
        if answer_within != self.timeout:  # a timeout the client was not built with: ours
            data = await _transact(client, read, block, unit, answer_within, self.where)
        else:  # the hot path: `_request` written out, one coroutine fewer per request
            try:
                response = await read(block.address, count=block.count, device_id=unit)
            except ConnectionException as exc:
                # Not connected (yet, or any more): pymodbus says so before sending anything,
                # which spares every request a `connected` check. Connect and ask, within ours.
                if client.connected:
                    raise _no_answer(client, exc, answer_within) from None
                response = None
            except (ModbusException, OSError) as exc:
                raise _no_answer(client, exc, answer_within) from None
            if response is None:
                data = await _transact(client, read, block, unit, answer_within, self.where)
            elif response.isError():
                raise ErrorAnswer(int(getattr(response, "exception_code", 0)), block)
            else:
                data = response.bits if block.table in BIT_TABLES else response.registers
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
        self._readers = _readers(self.client)

    async def read(
        self, block: ReadBlock, unit: int, answer_within: float, pause: float = 0.0
    ) -> RawData:
        read = self._readers[block.table]
        async with self.lock:
            try:
                return await _transact(self.client, read, block, unit, answer_within, self.where)
            finally:
                if pause:
                    await asyncio.sleep(pause)

    def close(self) -> None:
        self.client.close()
