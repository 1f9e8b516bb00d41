"""Modbus frames (`drivers.modbus.frames`): codecs against pymodbus, an independent implementation,
and round trips for any registers, bits and exception codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from drivers.modbus.frames import (
    ExceptionAnswer,
    FrameError,
    answer_pdu,
    crc16,
    exception_pdu,
    parse_answer,
    parse_read_pdu,
    read_pdu,
    rtu_answer_length,
    rtu_check,
    rtu_frame,
    rtu_request_length,
)


@given(st.binary(min_size=1, max_size=256))
def test_crc_is_pymodbus_crc(data: bytes) -> None:
    assert rtu_frame(data)[-2:] == FramerRTU.compute_CRC(data).to_bytes(2, "big")
    assert crc16(data) == int.from_bytes(rtu_frame(data)[-2:], "little")


@given(st.binary(min_size=2, max_size=64), st.integers(0, 63), st.integers(1, 255))
def test_a_frame_checks_and_any_flipped_bit_fails(adu: bytes, where: int, flip: int) -> None:
    frame = rtu_frame(adu)
    assert rtu_check(frame)
    broken = bytearray(frame)
    broken[where % len(frame)] ^= flip
    assert not rtu_check(bytes(broken))


@given(st.sampled_from([3, 4]), st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
def test_registers_round_trip(fc: int, words: list[int]) -> None:
    pdu = answer_pdu(fc, words)
    assert parse_answer(fc, len(words), pdu) == words
    frame = rtu_frame(bytes((7,)) + pdu)
    assert rtu_answer_length(frame[:3]) == len(frame)


@given(st.sampled_from([1, 2]), st.lists(st.booleans(), min_size=1, max_size=2000))
def test_bits_round_trip(fc: int, bits: list[bool]) -> None:
    assert parse_answer(fc, len(bits), answer_pdu(fc, bits)) == bits


@given(st.sampled_from([1, 2, 3, 4]), st.integers(0, 0xFFFF), st.integers(1, 2000))
def test_read_requests_round_trip(fc: int, address: int, count: int) -> None:
    pdu = read_pdu(fc, address, count)
    assert parse_read_pdu(pdu) == (fc, address, count)
    assert rtu_request_length(rtu_frame(bytes((1,)) + pdu)[:2]) == 8


@given(st.sampled_from([1, 2, 3, 4]), st.integers(1, 0x0B))
def test_exception_answers(fc: int, code: int) -> None:
    pdu = exception_pdu(fc, code)
    with pytest.raises(ExceptionAnswer) as raised:
        parse_answer(fc, 1, pdu)
    assert raised.value.code == code
    assert rtu_answer_length(rtu_frame(bytes((1,)) + pdu)[:3]) == 5


@given(st.binary(max_size=40), st.sampled_from([1, 2, 3, 4]), st.integers(1, 125))
def test_any_bytes_are_an_answer_or_a_clear_error(data: bytes, fc: int, count: int) -> None:
    try:
        values = parse_answer(fc, count, data)
    except (ExceptionAnswer, FrameError):
        return
    assert len(values) == count
