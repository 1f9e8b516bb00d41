"""One Modbus connection: a byte stream (TCP socket or serial port) and its framing, one request at a time.

`Connection.read(unit, fc, address, count, timeout)` sends one read request and returns the answer's
words or bits, or raises:
- `NoAnswer` — nothing usable within `timeout` (silence, refused or lost connection, a garbled frame);
- `ExceptionAnswer` — the device (or a converter in front of it) answered with an exception code.

Framings: `mbap` (Modbus TCP: a transaction id pairs an answer with its request, so a late answer to
an earlier request is recognised and dropped) and `rtu` (unit + PDU + CRC: over a serial port, or over
TCP to a transparent converter). On an RTU stream an answer is delimited by its length (known from
its first bytes), bytes left over from an earlier, timed-out request are dropped before sending, and
a silence of 3.5 characters (`frame_gap`) is kept between the end of one exchange and the next
request. Each request has its own timeout, so devices of different timeouts can share a connection;
the caller serialises requests (`drivers.modbus.link.Endpoint`). A connection that fails is closed
and opened again by the next request, within that request's timeout.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from drivers.modbus.frames import (
    MBAP,
    ExceptionAnswer,
    FrameError,
    parse_answer,
    read_pdu,
    rtu_answer_length,
    rtu_check,
    rtu_frame,
)

Framing = Literal["mbap", "rtu"]


class NoAnswer(Exception):
    """The device did not answer: timeout, connection refused or lost, garbled answer."""


class CannotConnect(NoAnswer):
    """The endpoint itself cannot be reached: connecting failed or did not finish in time."""


class _Stream(asyncio.Protocol):
    """Bytes received, and a waiter woken when enough of them are there."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.want = 0
        self.waiter: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and len(self.buffer) >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the peer")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def take(self, n: int) -> bytes:
        """The next `n` bytes (the caller bounds the wait with its timeout)."""
        while len(self.buffer) < n:
            if self.lost is not None:
                raise NoAnswer(f"connection lost: {self.lost}")
            self.want = n
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data


class _SerialTransport:
    """A serial port's file descriptor as a minimal transport: writes, and reads into a `_Stream`."""

    def __init__(self, port: Any, stream: _Stream) -> None:
        self.port = port  # a pyserial `Serial`, kept for its settings and closed with us
        self.fd: int = port.fileno()
        os.set_blocking(self.fd, False)
        self.stream = stream
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.fd, self._readable)
        stream.connection_made(self)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close()
            self.stream.connection_lost(exc)
            return
        if not data:  # the port is gone (a USB adapter unplugged, the pty's peer closed)
            self.close()
            self.stream.connection_lost(ConnectionResetError(f"{self.port.port}: end of file"))
            return
        self.stream.data_received(data)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # request frames are a few bytes: a tty takes them at once
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                written = 0
            view = view[written:]

    def is_closing(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.fd = -1
            self.port.close()


Opener = Callable[[_Stream], Awaitable[Any]]
"""Opens the byte stream for a `_Stream` and returns its transport (`write`, `close`)."""


def tcp_opener(host: str, port: int) -> Opener:
    async def open_tcp(stream: _Stream) -> Any:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: stream, host, port)
        return transport

    return open_tcp


def serial_opener(device: str, baudrate: int, bytesize: int, parity: str, stopbits: int) -> Opener:
    async def open_serial(stream: _Stream) -> Any:
        import serial  # pyserial: only sites with a serial bus need it

        try:
            port = serial.Serial(
                device,
                baudrate=baudrate,
                bytesize=bytesize,
                parity=parity,
                stopbits=stopbits,
                timeout=0,
                exclusive=True,
            )
        except (serial.SerialException, ValueError) as exc:
            raise OSError(str(exc)) from None
        return _SerialTransport(port, stream)

    return open_serial


class Connection:
    """One connection to an endpoint; one request at a time (the caller makes sure of it).

    Args:
        opener: opens the byte stream (`tcp_opener`, `serial_opener`).
        framing: `mbap` or `rtu`.
        where: the endpoint for messages (`host:port`, or the serial port).
        gap: silence kept between exchanges (RTU: 3.5 characters at the line's baud rate).
    """

    def __init__(self, opener: Opener, framing: Framing, where: str, gap: float = 0.0) -> None:
        self.opener = opener
        self.framing = framing
        self.where = where
        self.gap = gap
        self._stream: _Stream | None = None
        self._transport: Any = None
        self._tid = 0
        self._quiet_until = 0.0
        self._connecting = False

    @property
    def connected(self) -> bool:
        return self._stream is not None and self._stream.lost is None

    async def read(
        self, unit: int, fc: int, address: int, count: int, timeout: float
    ) -> list[int] | list[bool]:
        """One read request, answered within `timeout` seconds (connecting included)."""
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(unit, fc, address, count)
        except TimeoutError:
            if self._connecting:
                self._connecting = False
                raise CannotConnect(f"cannot connect to {self.where} within {timeout:g}s") from None
            raise NoAnswer(f"no answer within {timeout:g}s from {self.where}") from None
        except FrameError as exc:
            self._drop_stale()
            raise NoAnswer(f"garbled answer from {self.where}: {exc}") from None
        except OSError as exc:
            self.close()
            raise NoAnswer(f"{self.where}: {type(exc).__name__}: {exc}") from None
        finally:
            if self.gap:
                self._quiet_until = asyncio.get_running_loop().time() + self.gap

    async def _exchange(
        self, unit: int, fc: int, address: int, count: int
    ) -> list[int] | list[bool]:
        stream = self._stream
        if stream is None or stream.lost is not None:
            self.close()
            stream = _Stream()
            self._connecting = True
            try:
                self._transport = await self.opener(stream)
            except OSError as exc:
                raise CannotConnect(f"cannot connect to {self.where}: {exc}") from None
            self._connecting = False
            self._stream = stream
        pdu = read_pdu(fc, address, count)
        if self.framing == "mbap":
            return await self._mbap(stream, unit, fc, count, pdu)
        return await self._rtu(stream, unit, fc, count, pdu)

    async def _mbap(
        self, stream: _Stream, unit: int, fc: int, count: int, pdu: bytes
    ) -> list[int] | list[bool]:
        self._tid = self._tid % 0xFFFF + 1
        tid = self._tid
        self._transport.write(MBAP.pack(tid, 0, len(pdu) + 1, unit) + pdu)
        while True:
            head = await stream.take(MBAP.size)
            got_tid, protocol, length, got_unit = MBAP.unpack(head)
            if protocol != 0 or not 2 <= length <= 254:
                self.close()  # out of step with the stream: start afresh
                raise FrameError(f"not an MBAP header: {head.hex()}")
            body = await stream.take(length - 1)
            if got_tid == tid and got_unit == unit:
                return parse_answer(fc, count, body)
            # an answer to an earlier request that timed out: dropped

    async def _rtu(
        self, stream: _Stream, unit: int, fc: int, count: int, pdu: bytes
    ) -> list[int] | list[bool]:
        wait = self._quiet_until - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
        stream.buffer.clear()  # leftovers of an earlier exchange
        self._transport.write(rtu_frame(bytes((unit,)) + pdu))
        while True:
            head = await stream.take(3)
            length = rtu_answer_length(head)
            assert length is not None
            rest = await stream.take(length - 3)
            frame = head + rest
            if not rtu_check(frame):
                raise FrameError(f"bad CRC: {frame.hex()}")
            if frame[0] == unit:
                return parse_answer(fc, count, frame[1:-2])
            # another unit's (late) answer: dropped

    def _drop_stale(self) -> None:
        if self._stream is not None:
            self._stream.buffer.clear()

    def close(self) -> None:
        transport, self._transport, self._stream = self._transport, None, None
        if transport is not None and not transport.is_closing():
            transport.close()


__all__ = [
    "CannotConnect",
    "Connection",
    "ExceptionAnswer",
    "NoAnswer",
    "serial_opener",
    "tcp_opener",
]
