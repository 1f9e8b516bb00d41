"""The compiled block decoder gives exactly the readings of the reference decoder, point by point.

`BlockDecoder` is the poller's fast path; `decode_point` is the readable definition of what a point's
registers mean. Hypothesis draws devices of arbitrary points — every register type, every byte order
the site file allows (and the default), picked bits, strings, scale, offset and range, overlapping
points and gaps — plans them into blocks as the poller does, and feeds each block arbitrary words
(NaN and infinity patterns included), short and long responses and out-of-range words. Values are
compared by `repr` and type, so 1 vs 1.0, True vs 1 and -0.0 vs 0.0 would all show.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.models import ORDERS, REGISTER_COUNT, ModbusPoint, Workarounds
from drivers.modbus.blockdecode import READING_FIELDS, BlockDecoder, Undecodable
from drivers.modbus.decode import decode_point
from drivers.modbus.plan import ReadBlock, plan_reads
from ground.model import Quality, Reading
from tests.support import examples

NUMERIC = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
SPECIAL_WORDS = [
    0x0000,
    0x0001,
    0xFFFF,
    0x8000,
    0x7FFF,
    0x7FC0,
    0x7F80,
    0xFF80,
    0x7FF0,
    0xFFF0,
    0x3F80,
]
"""Words that make NaN, ±infinity, the extremes of the integers and 1.0, drawn often."""

_finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
_scale = st.one_of(
    st.sampled_from([1.0, 0.1, 0.01, 2.0, -1.0, 0.0, 1e308]), _finite, st.floats(width=64)
)
_offset = st.one_of(st.sampled_from([0.0, -0.0, -40.0, 273.15, 1.0]), _finite)
_bound = st.one_of(
    st.integers(-2, 2).map(float),  # often exactly a decoded value: the limits are inclusive
    st.integers(-70000, 70000).map(float),
    _finite,
    st.sampled_from([-math.inf, math.inf]),
)
_word = st.one_of(st.integers(0, 0xFFFF), st.sampled_from(SPECIAL_WORDS))


@st.composite
def register_points(draw: st.DrawFn, table: str) -> dict[str, Any]:
    """The fields of one register point of any shape the site file accepts."""
    kind = draw(st.sampled_from([*NUMERIC, "string", "bit"]))
    fields: dict[str, Any] = {"register": table, "address": draw(st.integers(0, 40))}
    if kind == "string":
        fields.update(type="string", length=draw(st.integers(1, 4)))
        order = draw(st.sampled_from([None, *ORDERS[1]]))
    elif kind == "bit":
        fields.update(type=draw(st.sampled_from(["uint16", "int16"])), bit=draw(st.integers(0, 15)))
        order = draw(st.sampled_from([None, *ORDERS[1]]))
    else:
        fields["type"] = kind
        order = draw(st.sampled_from([None, *ORDERS[REGISTER_COUNT[kind]]]))
        if draw(st.booleans()):
            fields.update(scale=draw(_scale), offset=draw(_offset))
        if draw(st.booleans()):
            low, high = sorted([draw(_bound), draw(_bound)])
            fields["range"] = (low, high)
    if order is not None:
        fields["order"] = order
    return fields


@st.composite
def devices(draw: st.DrawFn) -> dict[str, ModbusPoint]:
    """A device's points: registers of one table, and a few coils."""
    table = draw(st.sampled_from(["holding", "input"]))
    fields = draw(st.lists(register_points(table), min_size=1, max_size=12))
    bits = draw(st.lists(st.integers(0, 30), max_size=5))
    points = {f"p{i}": ModbusPoint(**f) for i, f in enumerate(fields)}
    for i, address in enumerate(bits):
        points[f"c{i}"] = ModbusPoint(register="coil", address=address, type="bool")
    return points


def reference(block: ReadBlock, data: Sequence[Any]) -> tuple[list[Reading], list[Undecodable]]:
    """What the poller did before the decoder was compiled: `decode_point` on each slice."""
    readings, failed = [], []
    for name, point, raw in block.slice(data):
        value, quality = decode_point(point, raw)
        readings.append(Reading("dev", name, value, quality, 1.5))
        if value is None and quality is Quality.BAD:
            failed.append((name, list(raw)))
    return readings, failed


def compiled(block: ReadBlock, data: Sequence[Any]) -> tuple[list[Reading], list[Undecodable]]:
    readings: list[Reading] = []
    failed = BlockDecoder(block).decode(data, "dev", 1.5, readings)
    return readings, list(failed)


def exact(readings: list[Reading]) -> list[tuple[Any, ...]]:
    """Readings with each value's repr and type: equal only if bit for bit the same."""
    return [(r.device, r.point, repr(r.value), type(r.value), r.quality, r.ts) for r in readings]


def responses(draw: st.DrawFn, block: ReadBlock) -> list[Any]:
    """A response to `block`: usually the right length, sometimes short, long or out of range."""
    if block.is_bits:
        padded = block.count + draw(st.integers(0, 7))
        length = draw(st.sampled_from([padded, padded, max(0, block.count - 1)]))
        return draw(st.lists(st.booleans(), min_size=length, max_size=length))
    length = draw(
        st.sampled_from([block.count] * 4 + [max(0, block.count - 1), block.count + 1, 0])
    )
    words = draw(st.lists(_word, min_size=length, max_size=length))
    if words and draw(st.integers(0, 9)) == 0:
        words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from([-1, 0x10000, 0x12345]))
    return words


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(points=devices(), data=st.data(), no_merge=st.booleans(), gap=st.integers(0, 10))
def test_compiled_decoder_equals_reference(
    points: dict[str, ModbusPoint], data: st.DataObject, no_merge: bool, gap: int
) -> None:
    for block in plan_reads(points, Workarounds(no_merge=no_merge), gap):
        words = responses(data.draw, block)
        want, want_failed = reference(block, words)
        got, got_failed = compiled(block, words)
        assert exact(got) == exact(want)
        assert got_failed == want_failed


@given(data=st.data())
def test_every_numeric_type_and_order_on_clean_words(data: st.DataObject) -> None:
    """Each type in each allowed order, alone at a random place in a block of random words."""
    kind = data.draw(st.sampled_from(NUMERIC))
    order = data.draw(st.sampled_from(ORDERS[REGISTER_COUNT[kind]]))
    at = data.draw(st.integers(0, 5))
    point = ModbusPoint(register="input", address=10 + at, type=kind, order=order)
    block = ReadBlock("input", 10, at + point.register_count + 3, (("v", point),))
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count))
    assert exact(compiled(block, words)[0]) == exact(reference(block, words)[0])


def test_readings_keep_the_block_order_and_report_undecodable_points() -> None:
    points = (
        ("temp", ModbusPoint(register="holding", address=0, type="float32")),
        ("word", ModbusPoint(register="holding", address=2, type="uint16")),
        ("alarm", ModbusPoint(register="holding", address=2, type="uint16", bit=3)),
        ("name", ModbusPoint(register="holding", address=3, type="string", length=1)),
        ("level", ModbusPoint(register="holding", address=4, type="int16", range=(0, 100))),
    )
    block = ReadBlock("holding", 0, 5, points)
    readings, failed = compiled(block, [0x7FC0, 0, 0x0008, 0xFFFE, 101])  # NaN, -, -, bad UTF-8
    assert [(r.point, r.value, r.quality) for r in readings] == [
        ("temp", None, Quality.BAD),
        ("word", 8, Quality.GOOD),
        ("alarm", True, Quality.GOOD),
        ("name", None, Quality.BAD),
        ("level", 101, Quality.BAD),  # decoded, out of range: not an undecodable point
    ]
    assert failed == [("temp", [0x7FC0, 0]), ("name", [0xFFFE])]


def test_points_sharing_registers_in_different_shapes() -> None:
    """Fields that overlap (a float and a word at one address, a word inside a 64-bit value) are
    read by separate unpackers; bits of one word share its field."""
    points = {
        "f": ModbusPoint(register="holding", address=0, type="float32"),
        "w": ModbusPoint(register="holding", address=0, type="uint16"),
        "low": ModbusPoint(register="holding", address=1, type="int16", order="BA"),
        "q": ModbusPoint(register="holding", address=1, type="uint64", order="GHEFCDAB"),
        "b0": ModbusPoint(register="holding", address=4, type="uint16", bit=0),
        "b9": ModbusPoint(register="holding", address=4, type="uint16", bit=9),
    }
    (block,) = plan_reads(points, Workarounds(), 10)
    words = [0x3F80, 0x1234, 0xFFFE, 0x0102, 0x0201, 7]
    assert exact(compiled(block, words)[0]) == exact(reference(block, words)[0])


@pytest.mark.parametrize("words", [[1, 2], [1, 2, 3, 4, 5, 6], [], [1, -5, 3, 4, 5]])
def test_wrong_length_or_out_of_range_words_go_the_reference_way(words: list[int]) -> None:
    points = (
        ("a", ModbusPoint(register="input", address=0, type="uint32")),
        ("b", ModbusPoint(register="input", address=2, type="float32", order="CDAB")),
        ("c", ModbusPoint(register="input", address=4, type="int16", scale=0.1)),
    )
    block = ReadBlock("input", 0, 5, points)
    assert exact(compiled(block, words)[0]) == exact(reference(block, words)[0])


def test_readings_built_field_by_field_set_every_field() -> None:
    """The decoder fills readings slot by slot (faster than `Reading(...)`): a field added to
    `Reading` must be added there too, and this is where that shows."""
    assert tuple(f.name for f in dataclasses.fields(Reading)) == READING_FIELDS
    point = ModbusPoint(register="input", address=0, type="uint16")
    for block in (
        ReadBlock("input", 0, 1, (("v", point),)),
        ReadBlock("coil", 0, 1, (("c", ModbusPoint(register="coil", address=0, type="bool")),)),
    ):
        (reading,) = compiled(block, [1])[0]
        assert reading == Reading("dev", block.points[0][0], reading.value, Quality.GOOD, 1.5)
        assert hash(reading) == hash(
            Reading("dev", block.points[0][0], reading.value, Quality.GOOD, 1.5)
        )
