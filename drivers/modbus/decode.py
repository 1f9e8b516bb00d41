"""Raw Modbus words and bits -> a point's value and quality (PRODUCT §2, *Modbus points*).

Pure code, no I/O: the poller hands each point the registers (or bits) it occupies and gets back
`(value, Quality)`. Nothing here raises on device data: a device that sends garbage yields a `bad`
reading, never a crashed poller.

Byte orders: the letters name the bytes of the big-endian value (A the most significant) in the order
they travel on the wire. `ABCD` is plain Modbus (high word first, high byte first); `CDAB` swaps words,
`BADC` swaps bytes within words, `DCBA` reverses all. A float32 1.0 (0x3F800000) in `CDAB` arrives as the
registers `[0x0000, 0x3F80]`.

Quality convention: `bad` with `value=None` means the data could not be decoded (wrong length, NaN,
infinity, bytes that are no text); `bad` with a value means it decoded but lies outside `range`. The
poller counts only the first kind as a device error.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from config.models import ModbusPoint
from ground.model import Quality, Value

_STRUCT: dict[str, str] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
    "float32": ">f", "float64": ">d",
}  # fmt: skip
"""Big-endian struct formats: wire bytes are first put back into big-endian order, then unpacked."""

Decoded = tuple[Value | None, Quality]


def words_to_bytes(words: Sequence[int]) -> bytes:
    """Registers as they travel on the wire: each one high byte first."""
    return b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in words)


def to_big_endian(wire: bytes, order: str) -> bytes:
    """Reorder wire bytes into big-endian (`ABCD…`) order.

    `order[i]` names the big-endian byte found at wire position i, so that byte goes to
    `ord(order[i]) - ord("A")`.
    """
    if len(order) != len(wire):
        raise ValueError(f"byte order {order!r} does not fit {len(wire)} bytes")
    out = bytearray(len(wire))
    for position, letter in enumerate(order):
        out[ord(letter) - ord("A")] = wire[position]
    return bytes(out)


def decode_point(point: ModbusPoint, raw: Sequence[int] | Sequence[bool]) -> Decoded:
    """Decode one point from the registers (or the one bit) it occupies.

    Args:
        point: the point's definition.
        raw: `point.register_count` register words (0..65535) for holding/input registers, or one
            bit for coils and discrete inputs.

    Returns:
        `(value, quality)`; see the module docstring for what `bad` means.
    """
    if point.table in ("coil", "discrete"):
        if len(raw) != 1:
            return None, Quality.BAD
        return bool(raw[0]), Quality.GOOD
    if len(raw) != point.register_count:
        return None, Quality.BAD
    wire = words_to_bytes([int(w) for w in raw])
    if point.type == "string":
        return decode_string(wire, point.byte_order)
    big = to_big_endian(wire, point.byte_order)
    if point.bit is not None:
        return bool((int.from_bytes(big, "big") >> point.bit) & 1), Quality.GOOD
    (number,) = struct.unpack(_STRUCT[point.type], big)
    if isinstance(number, float) and not math.isfinite(number):
        return None, Quality.BAD
    value = _scaled(number, point.scale, point.offset)
    if not math.isfinite(value):
        return None, Quality.BAD
    if point.range is not None and not point.range[0] <= value <= point.range[1]:
        return value, Quality.BAD
    return value, Quality.GOOD


def _scaled(number: int | float, scale: float, offset: float) -> int | float:
    """`raw × scale + offset`; an integer stays an integer when nothing is applied."""
    if scale == 1 and offset == 0:
        return number
    return number * scale + offset


def decode_string(wire: bytes, order: str) -> Decoded:
    """Text in registers, two bytes each, `AB` (high byte first) or `BA`; UTF-8 (ASCII in practice).

    Devices pad with NULs or spaces and often leave garbage after a terminating NUL, so the text ends
    at the first NUL and trailing spaces are dropped.
    """
    if order == "BA":
        wire = b"".join(wire[i + 1 : i + 2] + wire[i : i + 1] for i in range(0, len(wire), 2))
    text_bytes = wire.split(b"\x00", 1)[0]
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return None, Quality.BAD
    return text.rstrip(" "), Quality.GOOD
