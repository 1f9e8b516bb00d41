"""Values to Modbus register words: the inverse of the gateway's decoder, written independently.

The simulators serve what real equipment would put on the wire, and the decoder's tests check
themselves against this module. It is written from PRODUCT §2 with `struct` and shares no code with the
decoder, so that one misreading of a byte order cannot hide in both.

Conventions:
- integer types: ``raw = round((value - offset) / scale)``; a raw value outside the type's range is
  **clamped** (saturated) to the nearest end, never wrapped: a simulator asked for ``-1`` on a uint16
  shows ``0``, not ``65535``. ``overflow="wrap"`` wraps modulo 2**bits instead (a counter rolling over).
- float types: ``(value - offset) / scale``, not rounded (float32 loses precision as IEEE-754 does).
- byte order letters name the bytes in wire order, ``A`` being the most significant byte of the
  big-endian value: ``CDAB`` puts the low word first. Each register is two wire bytes, the first one
  its high byte (Modbus sends registers big-endian).
- strings: UTF-8, NUL-padded (or truncated) to ``2 * length`` bytes; order ``BA`` swaps each register.
- coils and discrete inputs: ``[1]`` or ``[0]``.
- a point with ``bit``: the word with only that bit set (or ``0``); use `set_bit` to combine several
  flags that share one status word.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import Any, Literal

from config.models import ModbusPoint

Overflow = Literal["clamp", "wrap"]

_INT_FORMATS: dict[str, tuple[str, int, int]] = {
    "int16": (">h", -(2**15), 2**15 - 1),
    "uint16": (">H", 0, 2**16 - 1),
    "int32": (">i", -(2**31), 2**31 - 1),
    "uint32": (">I", 0, 2**32 - 1),
    "int64": (">q", -(2**63), 2**63 - 1),
    "uint64": (">Q", 0, 2**64 - 1),
}
"""struct format (big-endian) and the inclusive range of each integer type."""

_FLOAT_FORMATS = {"float32": ">f", "float64": ">d"}


def set_bit(word: int, bit: int, on: bool) -> int:
    """`word` with bit number `bit` (0 = least significant) set or cleared.

    Several boolean points can share one status word (e.g. a lift's moving/door_open/in_service);
    the simulator builds the word from each flag with this.
    """
    if not 0 <= bit <= 15:
        raise ValueError(f"bit must be 0..15, not {bit}")
    mask = 1 << bit
    return (word | mask) if on else (word & ~mask & 0xFFFF)


def reorder(big_endian: bytes, order: str) -> bytes:
    """The big-endian bytes of a value put in the wire order `order` names (see module docstring)."""
    if len(order) != len(big_endian) or sorted(order) != [
        chr(ord("A") + i) for i in range(len(order))
    ]:
        raise ValueError(f"order {order!r} does not fit a {len(big_endian)}-byte value")
    return bytes(big_endian[ord(letter) - ord("A")] for letter in order)


def words(wire: bytes) -> list[int]:
    """Wire bytes as 16-bit registers, the first byte of each pair its high byte."""
    if len(wire) % 2:
        raise ValueError("an odd number of bytes does not fill whole registers")
    return [(wire[i] << 8) | wire[i + 1] for i in range(0, len(wire), 2)]


def raw_integer(point: ModbusPoint, value: float, overflow: Overflow = "clamp") -> int:
    """The raw integer a device would hold for the engineering `value` (scale/offset undone)."""
    _, low, high = _INT_FORMATS[point.type]
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"cannot encode NaN as {point.type}")
        if math.isinf(value):
            return high if (value > 0) == (point.scale > 0) else low
    # Exact arithmetic: a 64-bit counter must not lose its last digits through a float.
    raw = round((Fraction(value) - Fraction(point.offset)) / Fraction(point.scale))
    if low <= raw <= high:
        return raw
    if overflow == "wrap":
        span = high - low + 1
        return (raw - low) % span + low
    return max(low, min(high, raw))


def encode_point(point: ModbusPoint, value: Any, overflow: Overflow = "clamp") -> list[int]:
    """The register words (or one bit, 0/1, for coils and discrete inputs) that encode `value`.

    Args:
        point: the point as the template declares it (table, type, order, scale, offset, bit).
        value: the engineering value: a number, a bool (bits and bit points), or a str (strings).
        overflow: what to do with an integer outside its type's range: "clamp" or "wrap".

    Returns:
        `point.register_count` words, each 0..65535; for coils and discrete inputs `[0]` or `[1]`.
    """
    if point.table in ("coil", "discrete"):
        return [1 if value else 0]
    if point.bit is not None:
        return [set_bit(0, point.bit, bool(value))]
    if point.type == "string":
        return _encode_string(point, value)
    if point.type in _FLOAT_FORMATS:
        scaled = (float(value) - point.offset) / point.scale
        big = struct.pack(_FLOAT_FORMATS[point.type], scaled)
    elif point.type in _INT_FORMATS:
        big = struct.pack(_INT_FORMATS[point.type][0], raw_integer(point, value, overflow))
    else:
        raise ValueError(f"type {point.type} cannot be held in registers")
    return words(reorder(big, point.byte_order))


def _encode_string(point: ModbusPoint, value: Any) -> list[int]:
    size = 2 * point.register_count
    data = str(value).encode("utf-8")[:size].ljust(size, b"\0")
    if point.byte_order == "BA":
        data = b"".join(reorder(data[i : i + 2], "BA") for i in range(0, size, 2))
    return words(data)
