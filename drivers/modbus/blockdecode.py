"""One read request's response -> its points' `Reading`s, with the decoding worked out once.

`decode_point` (in `drivers.modbus.decode`) is the reference: clear, one point at a time, and about
4 µs a point — it rebuilds bytes from the words, re-orders them by letters and reads several
properties of the pydantic point model on every poll. A poll decodes the same points the same way
every time, so `BlockDecoder` does that work when the plan is made and keeps, per point, only plain
values: where its bytes start, one precompiled `struct.Struct`, the bit mask, scale, offset and
range limits as floats.

Why one `struct.Struct` is enough for every byte order: the block's words are packed once into two
byte strings — each word high byte first (as on the wire), and each word low byte first. Every
order the site file allows is then a big- or little-endian read of one of the two:

    ABCD… (plain Modbus)       big-endian read of the wire bytes
    DCBA…, BA (all reversed)   little-endian read of the wire bytes
    BADC… (bytes swapped)      big-endian read of the swapped bytes
    CDAB…, GHEF… (words swapped)  little-endian read of the swapped bytes

Anything the fast path does not cover (a response of the wrong length, words outside 0..65535, an
order that fits none of the four patterns) goes through `decode_point` itself, so the two can only
agree; the property test in `tests/test_modbus_blockdecode.py` checks that they do on arbitrary words
for every type, order, bit, scale, offset and range.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from drivers.modbus.decode import Decoded, decode_point, decode_string
from drivers.modbus.plan import ReadBlock
from gateway.config.models import ModbusPoint
from gateway.model import Quality, Reading

_CODE: dict[str, str] = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q",
    "float32": "f", "float64": "d",
}  # fmt: skip
"""`struct` codes of the numeric types (the byte order prefix is chosen per point)."""

WIRE, SWAPPED = 0, 1
"""The two byte strings of a block: words high byte first (as on the wire), or low byte first."""

PLAIN, NUMBER, BIT, OTHER = 0, 1, 2, 3
"""What a register point needs after its struct read.

PLAIN: an integer with no scale, offset or range — always `good` as read.
NUMBER: a float, or a scaled or ranged number — finite check, `raw × scale + offset`, range.
BIT: one bit of a register.
OTHER: a string, or anything the fast path does not cover — decoded by a function of its own.
"""

Op = tuple[str, int, Callable[..., Any], int, int, int, float, float, float, float, bool]
"""A compiled register point: `(name, mode, reader, layout, byte offset, mask, scale, offset, low,
high, scaled)`; one flat tuple, unpacked in the decoding loop without attribute lookups."""

Undecodable = tuple[str, list[int] | list[bool]]
"""A point that could not be decoded, and the words (or bit) it got: what the poller logs."""

_INF = math.inf


def _layout(order: str) -> tuple[int, str] | None:
    """Which byte string, read in which endianness, gives the big-endian value; None if none does.

    `order` names, for each byte on the wire, the big-endian byte it is (`A` the most significant).
    """
    straight = "".join(chr(ord("A") + i) for i in range(len(order)))
    if len(order) % 2 or sorted(order) != list(straight):
        return None
    swapped = "".join(order[i + 1] + order[i] for i in range(0, len(order), 2))
    for layout, text in ((WIRE, order), (SWAPPED, swapped)):
        if text == straight:
            return layout, ">"
        if text == straight[::-1]:
            return layout, "<"
    return None


def _other(name: str, reader: Callable[[bytes], Decoded]) -> Op:
    """An `OTHER` op: `reader` gets the wire bytes and returns `(value, quality)`."""
    return (name, OTHER, reader, WIRE, 0, 0, 1.0, 0.0, -_INF, _INF, False)


def _string_reader(start: int, length: int, order: str) -> Callable[[bytes], Decoded]:
    """A text point: its bytes out of the wire byte string, decoded as `decode_point` does."""
    end = start + 2 * length

    def read(wire: bytes) -> Decoded:
        return decode_string(wire[start:end], order)

    return read


class BlockDecoder:
    """Decodes every response to one `ReadBlock` into `Reading`s, in the block's point order.

    Args:
        block: the read request and the points it serves.
    """

    __slots__ = ("_bits", "_count", "_ops", "_pack_swapped", "_pack_wire", "block", "names")

    def __init__(self, block: ReadBlock) -> None:
        self.block = block
        self._count = block.count
        self.names: tuple[str, ...] = tuple(name for name, _ in block.points)
        self._bits: tuple[tuple[str, int], ...] | None = None
        self._pack_wire: Callable[..., bytes] | None = None
        self._pack_swapped: Callable[..., bytes] | None = None
        self._ops: tuple[Op, ...] = ()
        if block.is_bits:
            self._bits = tuple((name, p.address - block.address) for name, p in block.points)
            return
        ops = [self._compile(name, p) for name, p in block.points]
        layouts = {op[3] for op in ops if op[1] != OTHER}
        if WIRE in layouts or any(op[1] == OTHER for op in ops):
            self._pack_wire = struct.Struct(f">{block.count}H").pack
        if SWAPPED in layouts:
            self._pack_swapped = struct.Struct(f"<{block.count}H").pack
        self._ops = tuple(ops)

    def _compile(self, name: str, point: ModbusPoint) -> Op:
        """The point's `Op`: everything its decoding needs, worked out once."""
        words = point.address - self.block.address
        order = point.byte_order
        if point.type == "string":
            return _other(name, _string_reader(2 * words, point.register_count, order))
        layout = _layout(order)
        if layout is None or point.type not in _CODE:
            return _other(name, self._reference(point, words))
        source, endian = layout
        if point.bit is not None:
            unpack = struct.Struct(endian + "H").unpack_from
            return (
                name,
                BIT,
                unpack,
                source,
                2 * words,
                1 << point.bit,
                1.0,
                0.0,
                -_INF,
                _INF,
                False,
            )
        unpack = struct.Struct(endian + _CODE[point.type]).unpack_from
        scaled = not (point.scale == 1 and point.offset == 0)
        is_float = point.type.startswith("float")
        low, high = point.range if point.range is not None else (-_INF, _INF)
        mode = NUMBER if scaled or is_float or point.range is not None else PLAIN
        scale, offset = float(point.scale), float(point.offset)
        return (name, mode, unpack, source, 2 * words, 0, scale, offset, low, high, scaled)

    def _reference(self, point: ModbusPoint, words: int) -> Callable[[bytes], Decoded]:
        """A point outside the fast path: `decode_point` on its words, out of the wire bytes."""
        count = point.register_count

        def read(wire: bytes) -> Decoded:
            raw = struct.unpack_from(f">{count}H", wire, 2 * words)
            return decode_point(point, list(raw))

        return read

    def decode(
        self,
        data: Sequence[int] | Sequence[bool],
        device: str,
        ts: float,
        out: list[Reading],
    ) -> list[Undecodable]:
        """Append one `Reading` per point of the block to `out`.

        Args:
            data: the response's registers (or bits: possibly padded to whole bytes).
            device: the device id the readings carry.
            ts: their timestamp.
            out: where the readings go, in the block's point order.

        Returns:
            The points that could not be decoded (their readings are `bad` without a value) and
            the words they got, for the poller to count and log. Out-of-range values are not
            among them: they decoded, and are `bad` with their value.
        """
        if self._bits is not None:
            return self._decode_bits(data, device, ts, out)
        if len(data) != self._count:
            return self._decode_reference(data, device, ts, out)
        try:
            wire = self._pack_wire(*data) if self._pack_wire is not None else b""
            swapped = self._pack_swapped(*data) if self._pack_swapped is not None else b""
        except struct.error:  # words outside 0..65535: the reference masks them
            return self._decode_reference(data, device, ts, out)
        sources = (wire, swapped)
        append = out.append
        good, bad = Quality.GOOD, Quality.BAD
        failed: list[Undecodable] = []
        isfinite = math.isfinite
        for name, mode, reader, source, at, mask, scale, offset, low, high, scaled in self._ops:
            if mode == PLAIN:
                append(Reading(device, name, reader(sources[source], at)[0], good, ts))
            elif mode == NUMBER:
                value = reader(sources[source], at)[0]
                if scaled:
                    value = value * scale + offset
                if not isfinite(value):
                    append(Reading(device, name, None, bad, ts))
                    failed.append((name, self._raw(name, data)))
                elif low <= value <= high:
                    append(Reading(device, name, value, good, ts))
                else:
                    append(Reading(device, name, value, bad, ts))
            elif mode == BIT:
                word = reader(sources[source], at)[0]
                append(Reading(device, name, word & mask != 0, good, ts))
            else:
                value, quality = reader(wire)
                append(Reading(device, name, value, quality, ts))
                if value is None and quality is bad:
                    failed.append((name, self._raw(name, data)))
        return failed

    def _decode_bits(
        self, data: Sequence[int] | Sequence[bool], device: str, ts: float, out: list[Reading]
    ) -> list[Undecodable]:
        """Coils and discrete inputs: one bit each; a short response goes the reference way."""
        if len(data) < self._count:
            return self._decode_reference(data, device, ts, out)
        good, append = Quality.GOOD, out.append
        for name, at in self._bits or ():
            append(Reading(device, name, bool(data[at]), good, ts))
        return []

    def _decode_reference(
        self, data: Sequence[int] | Sequence[bool], device: str, ts: float, out: list[Reading]
    ) -> list[Undecodable]:
        """`decode_point` for each point, on the slice `ReadBlock.slice` gives it."""
        failed: list[Undecodable] = []
        for name, point, raw in self.block.slice(data):
            value, quality = decode_point(point, raw)
            out.append(Reading(device, name, value, quality, ts))
            if value is None and quality is Quality.BAD:
                failed.append((name, list(raw)))
        return failed

    def _raw(self, name: str, data: Sequence[int] | Sequence[bool]) -> list[int] | list[bool]:
        """The words a point got, for the log (only when it failed: not worth precomputing)."""
        for other, point in self.block.points:
            if other == name:
                start = point.address - self.block.address
                return list(data[start : start + point.register_count])
        return []
