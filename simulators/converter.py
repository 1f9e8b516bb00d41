"""A simulated serial-to-Ethernet converter and RS-485 line, in front of a bus's simulated units.

What a plant room's converter does, and what tests must see:
- it accepts at most `connections` TCP connections; more are closed as soon as they are accepted;
- its line carries **one request at a time**, at the bus's baud rate: a request holds the line for
  its frame, the unit's turnaround, the answer's frame and two 3.5-character gaps
  (`drivers.modbus.budget.transaction_time`);
- a dead unit (offline, or not on the line) holds the line for the converter's `dead_timeout` and
  then gets silence or exception 0B (`dead_answer`);
- a unit answers exception 02 for a read past its map or into one of its declared `holes`, 03 for a
  count out of range, 01 for a function it does not have, and 06 while `busy` says so; `drop`
  makes it miss its next requests (noise on the line).

Framings: `mbap` (a Modbus TCP converter, like an MGate in gateway mode) and `rtu` (a transparent
converter: RTU frames with CRC over TCP). `serve_pty` serves RTU frames on a pseudo-terminal, the
server end of a socat pair, for an `rtu` bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from config.models import ModbusBus
from drivers.modbus.budget import transaction_time
from drivers.modbus.frames import (
    BUSY,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    MBAP,
    TARGET_SILENT,
    FrameError,
    answer_pdu,
    exception_pdu,
    parse_read_pdu,
    rtu_check,
    rtu_frame,
    rtu_request_length,
)
from simulators.base import DeviceSimulator
from simulators.modbus_server import table_sizes

log = logging.getLogger(__name__)

TABLE_OF_FUNCTION = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
LIMIT = {1: 2000, 2: 2000, 3: 125, 4: 125}


class Line:
    """The RS-485 line behind a converter: the units on it, answered one request at a time.

    Args:
        units: unit id -> its simulator.
        baudrate: the line's speed (11 bits a character).
        turnaround: how long a unit takes to start answering.
        dead_timeout: how long the converter waits for a unit that does not answer.
        dead_answer: what it then says: `silent`, or `0B` (gateway target failed to respond).
    """

    def __init__(
        self,
        units: dict[int, DeviceSimulator],
        baudrate: int,
        turnaround: float = 0.005,
        dead_timeout: float = 0.2,
        dead_answer: Literal["silent", "0B"] = "silent",
    ) -> None:
        self.units = units
        self.baudrate = baudrate
        self.turnaround = turnaround
        self.dead_timeout = dead_timeout
        self.dead_answer = dead_answer
        self.sizes = {unit: table_sizes(sim) for unit, sim in units.items()}
        self.images = {unit: sim.register_image() for unit, sim in units.items()}
        self.busy: dict[int, int] = {}  # unit -> how many next requests get exception 06
        self.drop: dict[int, int] = {}  # unit -> how many next requests it does not hear
        self.requests = 0
        self._lock = asyncio.Lock()
        self._free_at = 0.0  # loop time the line is next quiet

    def refresh(self) -> None:
        """Copy every simulator's register image (after a physics step)."""
        for unit, sim in self.units.items():
            self.images[unit] = sim.register_image()

    def answer(self, unit: int, pdu: bytes) -> bytes | None:
        """A live unit's answer PDU to a request PDU; None when the unit is dead or absent."""
        sim = self.units.get(unit)
        if sim is None or sim.offline:
            return None
        fc = pdu[0] if pdu else 0
        if fc not in TABLE_OF_FUNCTION:
            return exception_pdu(fc, ILLEGAL_FUNCTION)
        try:
            fc, address, count = parse_read_pdu(pdu)
        except FrameError:
            return exception_pdu(fc, ILLEGAL_VALUE)
        if not 1 <= count <= LIMIT[fc]:
            return exception_pdu(fc, ILLEGAL_VALUE)
        if self.busy.get(unit):
            self.busy[unit] -= 1
            return exception_pdu(fc, BUSY)
        table = TABLE_OF_FUNCTION[fc]
        holes = sim.holes.get(table, ())
        if address + count > self.sizes[unit][table] or any(
            address <= hole < address + count for hole in holes
        ):
            return exception_pdu(fc, ILLEGAL_ADDRESS)
        words = self.images[unit].get(table, {})
        values = [words.get(a, 0) for a in range(address, address + count)]
        if fc in (1, 2):
            return answer_pdu(fc, [bool(v) for v in values])
        return answer_pdu(fc, [v & 0xFFFF for v in values])

    async def transact(self, unit: int, pdu: bytes) -> bytes | None:
        """Carry one request over the line: the answer PDU after the line's time, or None (silence).

        The answer is delivered as its last byte leaves the line; the line stays busy for the
        3.5-character silence after it, which a request arriving meanwhile waits out.
        """
        async with self._lock:
            self.requests += 1
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self._free_at)
            trailing_gap = 3.5 * 11 / self.baudrate
            answer = self.answer(unit, pdu)
            if self.drop.get(unit):  # a request lost on the line (noise): silence this once
                self.drop[unit] -= 1
                answer = None
            if answer is None:
                held = transaction_time(len(pdu) + 3, 0, self.baudrate, 0.0) + self.dead_timeout
                if self.dead_answer == "0B" and pdu:
                    answer = exception_pdu(pdu[0], TARGET_SILENT)
            else:
                held = transaction_time(
                    len(pdu) + 3, len(answer) + 3, self.baudrate, self.turnaround
                )
            self._free_at = start + held
            await asyncio.sleep(self._free_at - trailing_gap - loop.time())
            return answer


class ConverterServer:
    """A converter on TCP (`mbap` or `rtu` framing) in front of one `Line`.

    Args:
        bus: the site's bus (its host and port are where it listens).
        line: the line and its units.
        framing: `mbap` for a Modbus TCP converter, `rtu` for a transparent one.
        connections: how many TCP connections it accepts at once.
    """

    def __init__(
        self, bus: ModbusBus, line: Line, framing: Literal["mbap", "rtu"], connections: int = 1
    ) -> None:
        if not bus.host or not isinstance(bus.port, int):
            raise ValueError(f"bus {bus.id} has no host and port to listen on")
        self.bus = bus
        self.line = line
        self.framing = framing
        self.connections = connections
        self.units = line.units
        self.open = 0
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self.bus.host is not None and isinstance(self.bus.port, int)
        return self.bus.host, self.bus.port

    async def start(self) -> None:
        host, port = self.address
        self._server = await asyncio.start_server(self._connection, host, port)
        log.info(
            "modbus bus %s: converter (%s, %d connection(s), %d baud) on %s:%d, units %s",
            self.bus.id,
            self.framing,
            self.connections,
            self.line.baudrate,
            host,
            port,
            ",".join(map(str, sorted(self.units))),
        )

    async def refresh(self) -> None:
        self.line.refresh()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.open >= self.connections:
            self.refused += 1
            writer.close()
            return
        self.open += 1
        if task is not None:
            self._handlers.add(task)
        try:
            if self.framing == "mbap":
                await self._serve_mbap(reader, writer)
            else:
                await serve_rtu(self.line, reader.readexactly, writer.write)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    async def _serve_mbap(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            tid, protocol, length, unit = MBAP.unpack(await reader.readexactly(MBAP.size))
            pdu = await reader.readexactly(max(length - 1, 0))
            if protocol != 0:
                continue
            answer = await self.line.transact(unit, pdu)
            if answer is not None:
                writer.write(MBAP.pack(tid, 0, len(answer) + 1, unit) + answer)


async def serve_rtu(
    line: Line,
    read_exactly: Callable[[int], Any],
    write: Callable[[bytes], Any],
) -> None:
    """Answer RTU frames from a byte stream until it ends; a frame with a bad CRC is ignored."""
    while True:
        frame = await read_exactly(2)
        length = rtu_request_length(frame)
        if length is None:  # functions 15/16: the byte count is at offset 6
            frame += await read_exactly(5)
            length = rtu_request_length(frame)
        if length is None or length < 0:
            continue  # not a frame we can delimit: wait for the next one
        frame += await read_exactly(length - len(frame))
        if not rtu_check(frame):
            continue
        answer = await line.transact(frame[0], frame[1:-2])
        if answer is not None:
            write(rtu_frame(bytes((frame[0],)) + answer))


class PtyLine:
    """An `rtu` bus served on a pseudo-terminal pair made by socat: the client end is `bus.port`.

    Args:
        bus: the rtu bus; `port` must be a path that does not exist yet (socat makes it a link).
        line: the line and its units.
    """

    def __init__(self, bus: ModbusBus, line: Line) -> None:
        if bus.transport != "rtu" or not isinstance(bus.port, str):
            raise ValueError(f"bus {bus.id} is not an rtu bus")
        self.bus = bus
        self.line = line
        self.units = line.units
        self.client_end = Path(bus.port)
        self.server_end = Path(f"{bus.port}.sim")
        self._socat: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._fd = -1

    async def start(self) -> None:
        socat = shutil.which("socat")
        if socat is None:
            raise RuntimeError("socat is not installed (apt-get install socat): no serial pair")
        if self.client_end.exists() and not self.client_end.is_symlink():
            raise RuntimeError(f"{self.client_end} exists: an rtu bus is simulated on a new path")
        self._socat = await asyncio.create_subprocess_exec(
            socat,
            f"pty,raw,echo=0,link={self.server_end}",
            f"pty,raw,echo=0,link={self.client_end}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (self.server_end.exists() and self.client_end.exists()):
            if time.monotonic() > deadline or self._socat.returncode is not None:
                await self.stop()
                raise RuntimeError("socat did not make the serial pair")
            await asyncio.sleep(0.01)
        self._fd = os.open(self.server_end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._fd, self._readable, reader)
        self._task = asyncio.create_task(
            serve_rtu(self.line, reader.readexactly, self._write),
            name=f"fgw-sim[modbus:{self.bus.id}].pty",
        )
        log.info(
            "modbus bus %s: RTU on %s, units %s", self.bus.id, self.client_end, sorted(self.units)
        )

    def _readable(self, reader: asyncio.StreamReader) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the other end is gone: stop reading
            asyncio.get_running_loop().remove_reader(self._fd)
            reader.feed_eof()
            return
        reader.feed_data(data)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._fd, data)

    async def refresh(self) -> None:
        self.line.refresh()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError):
                await self._task
            self._task = None
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._socat is not None:
            if self._socat.returncode is None:
                self._socat.terminate()
            await self._socat.wait()
            self._socat = None


def line_for(bus: ModbusBus, units: dict[int, DeviceSimulator]) -> Line:
    """The simulated line of a bus, with its `sim` settings."""
    sim = bus.sim
    return Line(units, bus.baudrate, sim.turnaround, sim.dead_timeout, sim.dead_answer)
