"""The register decoder: known wire vectors, and round trips against the independent encoder.

`simulators.encode.encode_point` was written separately from `drivers.modbus.decode`, so a byte
order misread in one shows up as a failed round trip instead of hiding in both.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.models import ORDERS, ModbusPoint
from drivers.modbus.decode import decode_point
from ground.model import Quality
from simulators.encode import encode_point

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4}


def point(**fields: Any) -> ModbusPoint:
    fields.setdefault("register", "holding")
    fields.setdefault("address", 0)
    return ModbusPoint(**fields)


# ------------------------------------------------------------------------- known answers

KNOWN: list[tuple[dict[str, Any], list[int], Any]] = [
    ({"type": "float32"}, [0x3F80, 0x0000], 1.0),
    ({"type": "float32", "order": "CDAB"}, [0x0000, 0x3F80], 1.0),
    ({"type": "float32", "order": "BADC"}, [0x803F, 0x0000], 1.0),
    ({"type": "float32", "order": "DCBA"}, [0x0000, 0x803F], 1.0),
    ({"type": "int16"}, [0xFFFE], -2),
    ({"type": "int16", "order": "BA"}, [0xFEFF], -2),
    ({"type": "uint16", "order": "BA"}, [0x3412], 0x1234),
    ({"type": "uint32"}, [0x0102, 0x0304], 0x01020304),
    ({"type": "uint32", "order": "CDAB"}, [0x0304, 0x0102], 0x01020304),
    ({"type": "uint32", "order": "BADC"}, [0x0201, 0x0403], 0x01020304),
    ({"type": "uint32", "order": "DCBA"}, [0x0403, 0x0201], 0x01020304),
    ({"type": "int32"}, [0xFFFF, 0xFFFF], -1),
    ({"type": "uint64"}, [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    ({"type": "uint64", "order": "GHEFCDAB"}, [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    ({"type": "uint64", "order": "BADCFEHG"}, [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
    ({"type": "uint64", "order": "HGFEDCBA"}, [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
    ({"type": "int64"}, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], -2),
    ({"type": "float64"}, [0x3FF0, 0, 0, 0], 1.0),
    ({"type": "float64", "order": "GHEFCDAB"}, [0, 0, 0, 0x3FF0], 1.0),
    ({"type": "float64", "order": "HGFEDCBA"}, [0, 0, 0, 0xF03F], 1.0),
    ({"type": "float64", "order": "BADCFEHG"}, [0xF03F, 0, 0, 0], 1.0),
    ({"type": "string", "length": 3}, [0x4142, 0x4300, 0x5A5A], "ABC"),  # ends at the NUL
    ({"type": "string", "length": 2, "order": "BA"}, [0x4241, 0x2020], "AB"),  # spaces dropped
    ({"type": "string", "length": 2}, [0xE6B0, 0xB400], "水"),
    ({"type": "uint16", "bit": 3}, [0x0008], True),
    ({"type": "uint16", "bit": 15}, [0x7FFF], False),
    ({"type": "uint16", "bit": 0, "order": "BA"}, [0x0100], True),
    ({"type": "int16", "scale": 0.1}, [0xFFF6], -1.0),
    ({"type": "uint16", "scale": 0.5, "offset": -10}, [100], 40.0),
    ({"register": "coil", "type": "bool"}, [1], True),
    ({"register": "discrete", "type": "bool"}, [False], False),
]


@pytest.mark.parametrize(("fields", "words", "expected"), KNOWN)
def test_known_wire_vectors(fields: dict[str, Any], words: list[int], expected: Any) -> None:
    value, quality = decode_point(point(**fields), words)
    assert quality is Quality.GOOD
    assert value == expected
    assert type(value) is type(expected)


def test_integers_stay_integers_without_scale() -> None:
    value, _ = decode_point(point(type="uint32"), [0, 7])
    assert value == 7 and isinstance(value, int)
    value, _ = decode_point(point(type="uint32", scale=2), [0, 7])
    assert value == 14.0 and isinstance(value, float)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"type": "float32"}, [0x7FC0, 0x0000]),  # NaN
        ({"type": "float32"}, [0x7F80, 0x0000]),  # +inf
        ({"type": "float64"}, [0xFFF0, 0, 0, 0]),  # -inf
        ({"type": "string", "length": 1}, [0xFFFE]),  # not UTF-8
        ({"type": "uint32"}, [1]),  # short response
        ({"type": "uint16"}, []),
        ({"register": "coil", "type": "bool"}, []),
    ],
)
def test_undecodable_is_bad_without_value(fields: dict[str, Any], words: list[int]) -> None:
    assert decode_point(point(**fields), words) == (None, Quality.BAD)


def test_out_of_range_is_bad_with_value() -> None:
    p = point(type="int16", scale=0.1, range=(0, 100))
    assert decode_point(p, [1001]) == (pytest.approx(100.1), Quality.BAD)
    assert decode_point(p, [1000]) == (pytest.approx(100.0), Quality.GOOD)
    assert decode_point(p, [0xFFFF])[1] is Quality.BAD


# ------------------------------------------------------------------------- round trips


@given(data=st.data(), kind=st.sampled_from(sorted(INT_RANGES)))
def test_integer_round_trip_every_order(data: st.DataObject, kind: str) -> None:
    order = data.draw(st.sampled_from(ORDERS[WIDTH[kind]]))
    p = point(type=kind, order=order, address=data.draw(st.integers(0, 1000)))
    value = data.draw(st.integers(*INT_RANGES[kind]))
    words = encode_point(p, value)
    assert len(words) == p.register_count
    assert decode_point(p, words) == (value, Quality.GOOD)


@given(data=st.data(), kind=st.sampled_from(sorted(INT_RANGES)))
def test_integer_words_round_trip(data: st.DataObject, kind: str) -> None:
    """Any words decode to a value that encodes back to the same words."""
    p = point(type=kind, order=data.draw(st.sampled_from(ORDERS[WIDTH[kind]])))
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=WIDTH[kind], max_size=WIDTH[kind]))
    value, quality = decode_point(p, words)
    assert quality is Quality.GOOD
    assert encode_point(p, value) == words


@given(data=st.data(), width=st.sampled_from([32, 64]))
def test_float_round_trip_every_order(data: st.DataObject, width: int) -> None:
    kind = f"float{width}"
    p = point(type=kind, order=data.draw(st.sampled_from(ORDERS[width // 16])))
    value = data.draw(st.floats(width=width, allow_nan=False, allow_infinity=False))
    decoded, quality = decode_point(p, encode_point(p, value))
    assert quality is Quality.GOOD
    assert decoded == value
    assert math.copysign(1, decoded) == math.copysign(1, value)


@given(raw=st.integers(-(2**15), 2**15 - 1), scale=st.sampled_from([0.1, 0.01, 2.0, 0.5]))
def test_scaled_round_trip(raw: int, scale: float) -> None:
    p = point(type="int16", scale=scale, offset=-40.0)
    value, quality = decode_point(p, [struct.unpack(">H", struct.pack(">h", raw))[0]])
    assert quality is Quality.GOOD
    assert value == pytest.approx(raw * scale - 40.0)
    assert decode_point(p, encode_point(p, value)) == (value, Quality.GOOD)


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


@given(data=st.data(), length=st.integers(1, 10), order=st.sampled_from(["AB", "BA"]))
def test_string_round_trip(data: st.DataObject, length: int, order: str) -> None:
    p = point(type="string", length=length, order=order)
    text = data.draw(_TEXT.filter(lambda s: len(s.encode()) <= 2 * length and s == s.rstrip(" ")))
    assert decode_point(p, encode_point(p, text)) == (text, Quality.GOOD)


@given(bit=st.integers(0, 15), on=st.booleans(), kind=st.sampled_from(["uint16", "int16"]))
def test_bit_round_trip(bit: int, on: bool, kind: str) -> None:
    # Only the default order: the encoder ignores `order` for bit points, while the decoder applies
    # it first (`BA` swaps the register's bytes, then `bit` picks from the value; see KNOWN).
    p = point(type=kind, bit=bit)
    assert decode_point(p, encode_point(p, on)) == (on, Quality.GOOD)


@given(on=st.booleans(), table=st.sampled_from(["coil", "discrete"]))
def test_bits_round_trip(on: bool, table: str) -> None:
    p = point(register=table, type="bool")
    assert decode_point(p, encode_point(p, on)) == (on, Quality.GOOD)


@given(words=st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=6), data=st.data())
def test_never_raises_on_device_garbage(words: list[int], data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["float32", "float64", "int64", "uint16", "string"]))
    p = point(type=kind, length=3) if kind == "string" else point(type=kind)
    value, quality = decode_point(p, words)
    assert quality in (Quality.GOOD, Quality.BAD)
    if quality is Quality.GOOD:
        assert value is not None
