"""One read request's response -> its points' `Reading`s, with the decoding worked out once.

`decode_point` (in `drivers.modbus.decode`) is the reference: clear, one point at a time, and slow
for a poll — it rebuilds bytes from the words, re-orders them by letters and reads several
properties of the pydantic point model on every poll. A poll decodes the same points the same way
every time, so `BlockDecoder` does that work when the plan is made and keeps, per point, only plain
values in one flat tuple: where its number sits among the block's unpacked values, the bit mask,
scale, offset and range limits as floats.

Why `struct` serves every byte order: the block's words are packed once into two byte strings —
each word high byte first (as on the wire), and each word low byte first. Every order the site
file allows is then a big- or little-endian read of one of the two:

    ABCD… (plain Modbus)       big-endian read of the wire bytes
    DCBA…, BA (all reversed)   little-endian read of the wire bytes
    BADC… (bytes swapped)      big-endian read of the swapped bytes
    CDAB…, GHEF… (words swapped)  little-endian read of the swapped bytes

so the numbers of a block that share a byte string and an endianness, and do not overlap, are read
by one precompiled `struct.Struct` with pad bytes for the gaps: usually one `unpack_from` a request.

Anything the fast path does not cover (a response of the wrong length, words outside 0..65535, an
order that fits none of the four patterns) goes through `decode_point` itself, so the two can only
agree; the property test in `tests/unit/drivers/modbus/test_modbus_blockdecode.py` checks that they
do on arbitrary words for every type, order, bit, scale, offset and range.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from config.models import ModbusPoint
from drivers.modbus.decode import Decoded, decode_point, decode_string
from drivers.modbus.plan import ReadBlock
from ground.model import Quality, Reading

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
OTHER: a string, or anything the fast path does not cover — decoded by a reader of its own.
"""

Reader = Callable[[bytes], Decoded]
"""An `OTHER` point's decoding: the block's wire bytes in, `(value, quality)` out."""

Op = tuple[str, int, int, int, float, float, float, float, bool, Reader | None]
"""A compiled register point: `(name, mode, index, mask, scale, offset, low, high, scaled,
reader)` — `index` into the block's unpacked values; one flat tuple, unpacked in the decoding loop
without attribute lookups."""

Undecodable = tuple[str, list[int] | list[bool]]
"""A point that could not be decoded, and the words (or bit) it got: what the poller logs."""

_INF = math.inf
_GOOD, _BAD = Quality.GOOD, Quality.BAD  # an enum member lookup costs more than a global
_new = object.__new__
_isfinite = math.isfinite
READING_FIELDS = ("device", "point", "value", "quality", "ts")
"""What `BlockDecoder.decode` sets on each reading; a test checks they are all of `Reading`'s."""


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


def _string_reader(start: int, length: int, order: str) -> Reader:
    """A text point: its bytes out of the wire byte string, decoded as `decode_point` does."""
    end = start + 2 * length

    def read(wire: bytes) -> Decoded:
        return decode_string(wire[start:end], order)

    return read


def _reference_reader(point: ModbusPoint, words: int) -> Reader:
    """A point outside the fast path: `decode_point` on its words, out of the wire bytes."""
    unpack = struct.Struct(f">{point.register_count}H").unpack_from

    def read(wire: bytes) -> Decoded:
        return decode_point(point, list(unpack(wire, 2 * words)))

    return read


class _Fields:
    """Numbers of one block that one `struct.Struct` reads at once: one byte string, one
    endianness, no two overlapping (points on the same register share its field)."""

    def __init__(self, source: int, endian: str) -> None:
        self.source = source
        self.endian = endian
        self.spans: dict[tuple[int, str], int] = {}  # (byte offset, code) -> size

    def take(self, at: int, code: str) -> bool:
        """Add the field unless it overlaps another; True if it is (now) among this group's."""
        if (at, code) in self.spans:
            return True
        size = struct.calcsize(code)
        if any(at < a + n and a < at + size for (a, _), n in self.spans.items()):
            return False
        self.spans[at, code] = size
        return True

    def compile(self) -> tuple[Callable[[bytes], tuple[Any, ...]], list[tuple[int, str]]]:
        """The group's unpacker (gaps as pad bytes) and its fields in the order it returns them."""
        fields = sorted(self.spans)
        fmt, position = self.endian, 0
        for at, code in fields:
            fmt += f"{at - position}x{code}" if at > position else code
            position = at + self.spans[at, code]
        return struct.Struct(fmt).unpack_from, fields


class BlockDecoder:
    """Decodes every response to one `ReadBlock` into `Reading`s, in the block's point order.

    Per response: the words are packed into one or two byte strings (which also checks they are
    0..65535), one `unpack_from` per group of non-overlapping fields reads every number of the
    block, and a loop over flat tuples turns them into readings.

    Args:
        block: the read request and the points it serves.
    """

    __slots__ = (
        "_bits",
        "_count",
        "_ops",
        "_pack_swapped",
        "_pack_wire",
        "_reads",
        "block",
        "names",
    )

    def __init__(self, block: ReadBlock) -> None:
        self.block = block
        self._count = block.count
        self.names: tuple[str, ...] = tuple(name for name, _ in block.points)
        self._bits: tuple[tuple[str, int], ...] | None = None
        self._pack_wire: Callable[..., bytes] | None = None
        self._pack_swapped: Callable[..., bytes] | None = None
        self._reads: tuple[tuple[Callable[[bytes], tuple[Any, ...]], int], ...] = ()
        self._ops: tuple[Op, ...] = ()
        if block.is_bits:
            self._bits = tuple((name, p.address - block.address) for name, p in block.points)
        else:
            self._compile_registers()

    def _compile_registers(self) -> None:
        groups: list[_Fields] = []
        placed: list[tuple[str, int, int, tuple[int, str], int, ModbusPoint]] = []
        others: dict[str, Reader] = {}
        for name, point in self.block.points:
            words = point.address - self.block.address
            layout = _layout(point.byte_order)
            if point.type == "string":
                others[name] = _string_reader(2 * words, point.register_count, point.byte_order)
                continue
            if layout is None or point.type not in _CODE:
                others[name] = _reference_reader(point, words)
                continue
            source, endian = layout
            field = (2 * words, "H" if point.bit is not None else _CODE[point.type])
            group = next(
                (g for g in groups if (g.source, g.endian) == layout and g.take(*field)), None
            )
            if group is None:
                group = _Fields(source, endian)
                group.take(*field)
                groups.append(group)
            mode = BIT if point.bit is not None else self._number_mode(point)
            placed.append((name, mode, groups.index(group), field, source, point))
        index: dict[tuple[int, tuple[int, str]], int] = {}
        reads = []
        for g, group in enumerate(groups):
            unpack, fields = group.compile()
            index.update(((g, field), len(index)) for field in fields)
            reads.append((unpack, group.source))
        by_name = {entry[0]: entry for entry in placed}
        ops: list[Op] = []
        for name, _ in self.block.points:
            if name in others:
                ops.append((name, OTHER, 0, 0, 1.0, 0.0, -_INF, _INF, False, others[name]))
                continue
            _, mode, g, field, _, point = by_name[name]
            low, high = point.range if point.range is not None else (-_INF, _INF)
            scaled = not (point.scale == 1 and point.offset == 0)
            mask = 1 << point.bit if point.bit is not None else 0
            scale, offset = float(point.scale), float(point.offset)
            ops.append((name, mode, index[g, field], mask, scale, offset, low, high, scaled, None))
        sources = {source for _, source in reads}
        if WIRE in sources or others:
            self._pack_wire = struct.Struct(f">{self._count}H").pack
        if SWAPPED in sources:
            self._pack_swapped = struct.Struct(f"<{self._count}H").pack
        self._reads = tuple(reads)
        self._ops = tuple(ops)

    @staticmethod
    def _number_mode(point: ModbusPoint) -> int:
        scaled = not (point.scale == 1 and point.offset == 0)
        if scaled or point.type.startswith("float") or point.range is not None:
            return NUMBER
        return PLAIN

    def decode(
        self,
        data: Sequence[int] | Sequence[bool],
        device: str,
        ts: float,
        out: list[Reading],
    ) -> Sequence[Undecodable]:
        """Append one `Reading` per point of the block to `out`.

        Readings are built field by field (`object.__new__` and five slot stores) rather than
        through `Reading(...)`: the dataclass `__init__` is a Python call of its own, the largest
        single cost of a reading. `READING_FIELDS` and its test keep the two in step.

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
        reads = self._reads
        if len(reads) == 1:  # the usual block: one unpack reads every number
            unpack, source = reads[0]
            values = unpack(swapped if source else wire)
        else:
            values = ()
            for unpack, source in reads:
                values += unpack(swapped if source else wire)
        append, new, reading_type, isfinite = out.append, _new, Reading, _isfinite
        good, bad, plain, number, bit = _GOOD, _BAD, PLAIN, NUMBER, BIT
        failed: list[Undecodable] | None = None
        for name, mode, i, mask, scale, offset, low, high, scaled, reader in self._ops:
            if mode == plain:
                value, quality = values[i], good
            elif mode == number:
                value = values[i]
                if scaled:
                    value = value * scale + offset
                if not isfinite(value):
                    value, quality = None, bad
                    failed = failed or []
                    failed.append((name, self._raw(name, data)))
                else:
                    quality = good if low <= value <= high else bad
            elif mode == bit:
                value, quality = values[i] & mask != 0, good
            else:
                assert reader is not None  # every OTHER op carries its reader
                value, quality = reader(wire)
                if value is None and quality is bad:
                    failed = failed or []
                    failed.append((name, self._raw(name, data)))
            reading = new(reading_type)
            reading.device, reading.point, reading.value = device, name, value
            reading.quality, reading.ts = quality, ts
            append(reading)
        return failed or ()

    def _decode_bits(
        self, data: Sequence[int] | Sequence[bool], device: str, ts: float, out: list[Reading]
    ) -> Sequence[Undecodable]:
        """Coils and discrete inputs: one bit each; a short response goes the reference way."""
        if len(data) < self._count:
            return self._decode_reference(data, device, ts, out)
        append, new, reading_type, good = out.append, _new, Reading, _GOOD
        for name, at in self._bits or ():
            reading = new(reading_type)
            reading.device, reading.point, reading.value = device, name, bool(data[at])
            reading.quality, reading.ts = good, ts
            append(reading)
        return ()

    def _decode_reference(
        self, data: Sequence[int] | Sequence[bool], device: str, ts: float, out: list[Reading]
    ) -> Sequence[Undecodable]:
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
