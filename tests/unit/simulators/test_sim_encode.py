"""The encoder against known wire vectors: each byte order of PRODUCT §2, scale, clamping, strings."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.models import ModbusPoint
from simulators.encode import encode_point, raw_integer, set_bit


def point(**kw: object) -> ModbusPoint:
    kw.setdefault("register", "holding")
    kw.setdefault("address", 0)
    return ModbusPoint.model_validate(kw)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("ABCD", [0x1234, 0x5678]),
        ("CDAB", [0x5678, 0x1234]),
        ("BADC", [0x3412, 0x7856]),
        ("DCBA", [0x7856, 0x3412]),
    ],
)
def test_32_bit_orders(order: str, expected: list[int]) -> None:
    assert encode_point(point(type="uint32", order=order), 0x12345678) == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("ABCDEFGH", [0x0102, 0x0304, 0x0506, 0x0708]),
        ("GHEFCDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
        ("BADCFEHG", [0x0201, 0x0403, 0x0605, 0x0807]),
        ("HGFEDCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
    ],
)
def test_64_bit_orders(order: str, expected: list[int]) -> None:
    assert encode_point(point(type="uint64", order=order), 0x0102030405060708) == expected


def test_16_bit_orders_and_signed() -> None:
    assert encode_point(point(type="uint16"), 0x1234) == [0x1234]
    assert encode_point(point(type="uint16", order="BA"), 0x1234) == [0x3412]
    assert encode_point(point(type="int16"), -2) == [0xFFFE]
    assert encode_point(point(type="int32"), -2) == [0xFFFF, 0xFFFE]


def test_scale_offset_and_rounding() -> None:
    p = point(type="uint32", order="CDAB", scale=0.1)
    assert encode_point(p, 1234.5) == [12345, 0]
    assert encode_point(point(type="int16", scale=0.001), 0.6) == [600]
    assert encode_point(point(type="uint16", scale=0.5, offset=-40), 10) == [100]


def test_clamp_and_wrap() -> None:
    p = point(type="uint16")
    assert encode_point(p, -1) == [0]
    assert encode_point(p, 70000) == [0xFFFF]
    assert encode_point(p, 65536, overflow="wrap") == [0]
    assert raw_integer(point(type="int16"), -40000) == -32768


def test_floats() -> None:
    big = struct.pack(">f", 230.5)
    a, b = (big[0] << 8) | big[1], (big[2] << 8) | big[3]
    assert encode_point(point(type="float32"), 230.5) == [a, b]
    assert encode_point(point(type="float32", order="CDAB"), 230.5) == [b, a]
    assert encode_point(point(type="float32", scale=0.1), 23.05) == encode_point(
        point(type="float32"), 230.5
    )
    d = struct.unpack(">4H", struct.pack(">d", -1.25))
    assert encode_point(point(type="float64"), -1.25) == list(d)


def test_strings() -> None:
    p = point(type="string", length=3)
    assert encode_point(p, "ABC") == [0x4142, 0x4300, 0]
    assert encode_point(point(type="string", length=1, order="BA"), "AB") == [0x4241]
    assert encode_point(point(type="string", length=1), "toolong") == [0x746F]


def test_bits() -> None:
    assert encode_point(point(register="coil", type="bool"), True) == [1]
    assert encode_point(point(register="discrete", type="bool"), 0) == [0]
    assert encode_point(point(type="uint16", bit=3), True) == [8]
    word = set_bit(set_bit(0, 0, True), 4, True)
    assert word == 0b10001
    assert set_bit(word, 0, False) == 0b10000


@given(st.integers(0, 2**32 - 1), st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]))
def test_uint32_round_trip_through_struct(value: int, order: str) -> None:
    regs = encode_point(point(type="uint32", order=order), value)
    wire = b"".join(r.to_bytes(2, "big") for r in regs)
    big = bytes(wire[order.index(letter)] for letter in "ABCD")
    assert struct.unpack(">I", big)[0] == value
