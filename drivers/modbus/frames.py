"""Modbus frames as bytes: read requests, their answers, MBAP (TCP) and RTU (CRC) framing. Pure.

Only what a poller needs: function codes 1-4 (read coils, discrete inputs, holding and input
registers) and exception answers. The simulated converter (`simulators.converter`) uses the same
codecs from the server side; tests check both against pymodbus, an independent implementation.

Contracts:
- `rtu_frame(adu)` appends the CRC (low byte first); `rtu_check(frame)` is True only for a frame
  whose CRC matches.
- `rtu_answer_length(head)` tells from the first three bytes of an RTU answer how long it is, so a
  reader knows when a frame ends without timing gaps on a TCP stream.
- `parse_answer(fc, count, pdu)` gives the words or bits, or raises `ExceptionAnswer` (the device
  refused) or `FrameError` (not an answer to that request).
"""

from __future__ import annotations

import struct

FUNCTION_OF_TABLE = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
"""The read function code of each table."""

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 0x01, 0x02, 0x03
DEVICE_FAILURE, BUSY = 0x04, 0x06
PATH_UNAVAILABLE, TARGET_SILENT = 0x0A, 0x0B
"""Exception codes: 02/03 refuse part of a request, 06 asks to come back, 0A/0B come from a
converter whose unit behind it is unreachable."""

MBAP = struct.Struct(">HHHB")
"""Transaction id, protocol id (0), length of what follows (unit + PDU), unit."""


class FrameError(ValueError):
    """Bytes that are not a well-formed answer to the request made."""


class ExceptionAnswer(Exception):
    """The device answered with a Modbus exception (function code | 0x80, then a code)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exception code {code:#04x}")
        self.code = code


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """The Modbus RTU CRC (poly 0xA001 reflected, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def rtu_frame(adu: bytes) -> bytes:
    """Unit + PDU -> an RTU frame (the CRC appended low byte first)."""
    crc = crc16(adu)
    return adu + bytes((crc & 0xFF, crc >> 8))


def rtu_check(frame: bytes) -> bool:
    """True if the frame is at least 4 bytes and its last two are the CRC of the rest."""
    if len(frame) < 4:
        return False
    crc = crc16(frame[:-2])
    return frame[-2] == crc & 0xFF and frame[-1] == crc >> 8


def read_pdu(fc: int, address: int, count: int) -> bytes:
    """The PDU of a read request."""
    if fc not in (1, 2, 3, 4):
        raise ValueError(f"not a read function: {fc}")
    return struct.pack(">BHH", fc, address, count)


def parse_read_pdu(pdu: bytes) -> tuple[int, int, int]:
    """A read request's PDU -> (function code, address, count); FrameError otherwise."""
    if len(pdu) != 5:
        raise FrameError(f"a read request is 5 bytes, not {len(pdu)}")
    fc, address, count = struct.unpack(">BHH", pdu)
    return fc, address, count


def answer_pdu(fc: int, values: list[int] | list[bool]) -> bytes:
    """The PDU answering a read: registers high byte first, bits packed low bit first."""
    if fc in (3, 4):
        return struct.pack(f">BB{len(values)}H", fc, 2 * len(values), *values)
    packed = bytearray((len(values) + 7) // 8)
    for i, bit in enumerate(values):
        if bit:
            packed[i // 8] |= 1 << (i % 8)
    return bytes((fc, len(packed))) + bytes(packed)


def exception_pdu(fc: int, code: int) -> bytes:
    return bytes((fc | 0x80, code))


def answer_bytes(fc: int, count: int) -> int:
    """Bytes of the PDU answering a read of `count` registers or bits."""
    return 2 + (2 * count if fc in (3, 4) else (count + 7) // 8)


def parse_answer(fc: int, count: int, pdu: bytes) -> list[int] | list[bool]:
    """An answer's PDU -> `count` words or bits. Raises ExceptionAnswer or FrameError."""
    if not pdu:
        raise FrameError("empty answer")
    if pdu[0] == fc | 0x80:
        if len(pdu) != 2:
            raise FrameError("an exception answer is 2 bytes")
        raise ExceptionAnswer(pdu[1])
    if pdu[0] != fc:
        raise FrameError(f"answer to function {pdu[0]}, asked {fc}")
    if len(pdu) != answer_bytes(fc, count) or pdu[1] != len(pdu) - 2:
        raise FrameError(f"answer of {len(pdu)} bytes to a read of {count}")
    if fc in (3, 4):
        return list(struct.unpack(f">{count}H", pdu[2:]))
    data = pdu[2:]
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def rtu_answer_length(head: bytes) -> int | None:
    """The whole length of an RTU answer frame from its first 3 bytes; None if not yet known.

    Exception frames are 5 bytes (unit, fc|0x80, code, CRC); read answers are 3 + byte count + 2.
    """
    if len(head) < 2:
        return None
    if head[1] & 0x80:
        return 5
    if len(head) < 3:
        return None
    return 5 + head[2]


def rtu_request_length(head: bytes) -> int | None:
    """The whole length of an RTU request frame (server side) from its first bytes.

    Functions 1-6 are 8 bytes; 15 and 16 carry a byte count at offset 6; others are unknown (None
    once the function is known means: not a frame this server can delimit).
    """
    if len(head) < 2:
        return None
    fc = head[1]
    if 1 <= fc <= 6:
        return 8
    if fc in (15, 16):
        return 9 + head[6] if len(head) >= 7 else None
    return -1


def char_time(baudrate: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes on the line (start, 8 data, parity or second stop, stop)."""
    return bits_per_char / baudrate


def frame_gap(baudrate: int) -> float:
    """The RTU inter-frame silence: 3.5 characters, at least 1.75 ms above 19200 baud."""
    return 1.75e-3 if baudrate > 19200 else 3.5 * char_time(baudrate)
