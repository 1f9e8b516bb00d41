"""The wire under the poller: one `Endpoint` per bus, its connections shared by the bus's devices.

A bus is an endpoint — `host:port` (Modbus TCP, or RTU frames over TCP to a transparent converter)
or a serial port — and its devices share `max_connections` connections to it (default 1: most
serial-to-Ethernet converters accept one connection and run one request at a time on their line).
A device's poll takes a free connection, holds it for its requests (and the device's `pause_after`
after each), and gives it back: polls are serialised per connection, in the order they asked, each
request with its device's own timeout, and a device's readings are one snapshot. A poll held with
`first` goes ahead of the others waiting (the poller does not use it yet).
A dead unit costs its neighbours one timeout per attempt; the poller's back-off keeps those
attempts rare (`drivers.modbus.poller`).

`Endpoint.hold(first)` gives a `Held` connection whose `read(block, unit, answer_within, pause)` —
like `Endpoint.read`, which holds a connection for one request — returns words or bits, or raises:
- `NoAnswer` — silence, refused or lost connection, garbled answer; also exception 0A/0B from a
  converter (the path to that unit is down: the unit is silent, not the converter);
- `ErrorAnswer` — a Modbus exception answer: the device is alive but refused this request.

Retries (the bus's `retries`) are made here, at once, for silent requests only: an answer, even an
exception, is never asked again (busy, 06, is the device poller's: once, after a pause).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from config.models import ModbusBus
from drivers.modbus.connection import (
    CannotConnect,
    Connection,
    Framing,
    NoAnswer,
    Opener,
    serial_opener,
    tcp_opener,
)
from drivers.modbus.frames import (
    FUNCTION_OF_TABLE,
    PATH_UNAVAILABLE,
    TARGET_SILENT,
    ExceptionAnswer,
    frame_gap,
)
from drivers.modbus.plan import ReadBlock

RawData = list[int] | list[bool]

SILENT_CODES = frozenset({PATH_UNAVAILABLE, TARGET_SILENT})
"""Exception codes that mean "the unit behind the converter did not answer"."""

UNREACHABLE_AFTER = 3
"""Failed connection attempts in a row (whichever devices made them) after which the endpoint
itself counts as unreachable: the bus is silent, not its units."""


class ErrorAnswer(Exception):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, block: ReadBlock) -> None:
        super().__init__(
            f"exception code {code:02X} reading {block.count} {block.table} at {block.address}"
        )
        self.code = code


class Held:
    """A connection held by one device for its poll (`Endpoint.hold`)."""

    __slots__ = ("connection", "endpoint")

    def __init__(self, endpoint: Endpoint, connection: Connection) -> None:
        self.endpoint = endpoint
        self.connection = connection

    async def read(
        self, block: ReadBlock, unit: int, answer_within: float, pause: float = 0.0
    ) -> RawData:
        return await self.endpoint._request(self.connection, block, unit, answer_within, pause)


class Link(Protocol):
    """One path to one or more devices."""

    where: str

    async def read(
        self,
        block: ReadBlock,
        unit: int,
        answer_within: float,
        pause: float = 0.0,
        first: bool = False,
    ) -> RawData:
        """Read one block from device `unit`, within `answer_within` seconds (plus `pause` of
        quiet after); `first`: ahead of the other waiting requests (a life-safety device)."""
        ...

    def hold(self, first: bool = False) -> contextlib.AbstractAsyncContextManager[Held]:
        """A connection for one device's whole poll (its requests back to back)."""
        ...

    def close(self) -> None: ...


def opener_for(bus: ModbusBus) -> Opener:
    if bus.transport == "rtu":
        return serial_opener(str(bus.port), bus.baudrate, bus.bytesize, bus.parity, bus.stopbits)
    return tcp_opener(str(bus.host), int(bus.port or 502))


class Endpoint:
    """The connections to one bus's endpoint, shared by its devices.

    Args:
        bus: the bus (transport, where, `max_connections`, `retries`, serial settings).
    """

    def __init__(self, bus: ModbusBus) -> None:
        self.where = bus.endpoint
        self.retries = bus.retries
        framing: Framing = "mbap" if bus.transport == "tcp" else "rtu"
        gap = frame_gap(bus.baudrate) if bus.transport == "rtu" else 0.0
        opener = opener_for(bus)
        self.connections = [
            Connection(opener, framing, self.where, gap) for _ in range(bus.max_connections)
        ]
        self.cannot_connect = 0  # failed connection attempts in a row
        self._free: deque[Connection] = deque(self.connections)
        self._waiting: deque[asyncio.Future[Connection]] = deque()
        self._urgent: deque[asyncio.Future[Connection]] = deque()  # life-safety devices' requests

    async def _acquire(self, first: bool) -> Connection:
        if self._free:
            return self._free.popleft()
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        queue = self._urgent if first else self._waiting
        queue.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(waiter.result())  # handed over as we were cancelled: pass it on
            elif waiter in queue:  # not yet passed over by `_release`
                queue.remove(waiter)
            raise

    def _release(self, connection: Connection) -> None:
        for queue in (self._urgent, self._waiting):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(connection)
                    return
        self._free.append(connection)

    async def read(
        self,
        block: ReadBlock,
        unit: int,
        answer_within: float,
        pause: float = 0.0,
        first: bool = False,
    ) -> RawData:
        connection = await self._acquire(first)
        try:
            return await self._request(connection, block, unit, answer_within, pause)
        finally:
            self._release(connection)

    @contextlib.asynccontextmanager
    async def hold(self, first: bool = False) -> AsyncIterator[Held]:
        """One connection for a device's whole poll: its requests go out back to back, so that its
        readings are one snapshot (a fire panel's fire flag and its zones) and no other device's
        request comes between them."""
        connection = await self._acquire(first)
        try:
            yield Held(self, connection)
        finally:
            self._release(connection)

    async def _request(
        self,
        connection: Connection,
        block: ReadBlock,
        unit: int,
        answer_within: float,
        pause: float,
    ) -> RawData:
        fc = FUNCTION_OF_TABLE[block.table]
        try:
            for attempt in range(self.retries + 1):
                try:
                    data = await connection.read(
                        unit, fc, block.address, block.count, answer_within
                    )
                    self.cannot_connect = 0
                    return data
                except CannotConnect:
                    self.cannot_connect += 1
                    if attempt == self.retries:
                        raise
                except NoAnswer:
                    if attempt == self.retries:
                        raise
                except ExceptionAnswer as exc:
                    self.cannot_connect = 0
                    if exc.code in SILENT_CODES:
                        raise NoAnswer(
                            f"{self.where} answers for unit {unit}: exception {exc.code:02X}"
                            " (no answer from the unit behind it)"
                        ) from None
                    raise ErrorAnswer(exc.code, block) from None
            raise AssertionError("unreachable")
        finally:
            if pause:
                await asyncio.sleep(pause)

    @property
    def unreachable(self) -> bool:
        """The endpoint itself does not take connections (`UNREACHABLE_AFTER` failures in a row)."""
        return self.cannot_connect >= UNREACHABLE_AFTER

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
