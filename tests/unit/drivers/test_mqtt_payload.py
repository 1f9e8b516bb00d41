"""MQTT payload decoding: every shape a device may publish, and garbage that must not crash us."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import MqttPoint
from drivers.mqtt_payload import (
    MAX_DEPTH,
    MAX_PAYLOAD,
    PayloadError,
    Problem,
    decode_payload,
    parse_point,
    payload_time,
    point_value,
)
from ground.model import Quality
from tests.support import examples


def point(**kw: object) -> MqttPoint:
    return MqttPoint.model_validate({"topic": "t", **kw})


GOOD = [
    # (point options, payload, expected value)
    ({"type": "float32"}, b"21.5", 21.5),
    ({"type": "float64"}, b" 21.5\n", 21.5),
    ({"type": "float32"}, b"7", 7.0),
    ({"type": "int16"}, b"-5", -5),
    ({"type": "uint16"}, b"5.0", 5),
    ({"type": "uint64"}, str(2**64 - 1).encode(), 2**64 - 1),
    ({"type": "bool"}, b"true", True),
    ({"type": "bool"}, b"ON", True),
    ({"type": "bool"}, b"off", False),
    ({"type": "bool"}, b"0", False),
    ({"type": "string"}, b"granted", "granted"),
    ({"type": "string"}, b'"granted"', "granted"),
    ({"type": "string"}, "门禁".encode(), "门禁"),
    ({"type": "string"}, b"42", "42"),
    ({"type": "bool", "field": "open"}, b'{"open": true}', True),
    ({"type": "bool", "field": "open"}, b'{"open": 1}', True),
    ({"type": "bool", "field": "open"}, b'{"open": "OFF"}', False),
    ({"type": "string", "field": "event"}, b'{"event": "forced", "card": "7"}', "forced"),
    ({"type": "float32", "field": "a.b.c"}, b'{"a": {"b": {"c": 3.25}}}', 3.25),
    ({"type": "int32", "field": "zones.1"}, b'{"zones": [4, 5]}', 5),
    ({"type": "float32", "field": "t", "scale": 0.1, "offset": -40}, b'{"t": 650}', 25.0),
    ({"type": "uint16", "scale": 2}, b"21", 42.0),  # scaled: a float
]


@pytest.mark.parametrize(("options", "raw", "expected"), GOOD)
def test_good_payloads(options: dict[str, object], raw: bytes, expected: object) -> None:
    value, quality = parse_point(point(**options), raw)
    assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected
    assert type(value) is type(expected)
    assert quality is Quality.GOOD


BAD = [
    ({"type": "float32"}, b"", Problem.EMPTY),
    ({"type": "float32"}, b"1" * (MAX_PAYLOAD + 1), Problem.TOO_LARGE),
    ({"type": "string"}, b"\xff\xfe", Problem.NOT_UTF8),
    ({"type": "float32", "field": "t"}, b"{t: 1}", Problem.NOT_JSON),
    ({"type": "float32", "field": "t"}, b"21.5", Problem.MISSING_FIELD),
    ({"type": "float32", "field": "t"}, b'{"u": 1}', Problem.MISSING_FIELD),
    ({"type": "float32", "field": "a.b"}, b'{"a": 1}', Problem.MISSING_FIELD),
    ({"type": "float32", "field": "a.5"}, b'{"a": [1]}', Problem.MISSING_FIELD),
    ({"type": "float32", "field": "t"}, b'{"t": "21.5"}', Problem.WRONG_TYPE),
    ({"type": "float32"}, b"21,5", Problem.WRONG_TYPE),
    ({"type": "float32"}, b'{"t": 1}', Problem.WRONG_TYPE),
    ({"type": "float32"}, b"true", Problem.WRONG_TYPE),
    ({"type": "int16"}, b"1.5", Problem.WRONG_TYPE),
    ({"type": "int16"}, b"40000", Problem.WRONG_TYPE),
    ({"type": "uint16"}, b"-1", Problem.WRONG_TYPE),
    ({"type": "bool"}, b"2", Problem.WRONG_TYPE),
    ({"type": "bool"}, b"maybe", Problem.WRONG_TYPE),
    ({"type": "string", "field": "e"}, b'{"e": {"x": 1}}', Problem.WRONG_TYPE),
    ({"type": "float32", "field": "t"}, b'{"t": NaN}', Problem.NOT_FINITE),
    ({"type": "float32", "field": "t"}, b'{"t": Infinity}', Problem.NOT_FINITE),
    ({"type": "float32"}, b"-Infinity", Problem.NOT_FINITE),
    ({"type": "float32"}, b"1e999", Problem.NOT_FINITE),
    ({"type": "float64"}, b"1" * 400, Problem.NOT_FINITE),
    (
        {"type": "float64", "field": "t"},
        b'{"t": ' + b"1" * 5000 + b"}",
        Problem.NOT_JSON,
    ),  # > int digit limit
    ({"type": "float64", "scale": 1e300}, b"1e300", Problem.NOT_FINITE),
    ({"type": "float32", "field": "t"}, b"[" * 100 + b"]" * 100, Problem.TOO_DEEP),
    ({"type": "float32", "field": "t"}, b'{"a":' * 40 + b"1" + b"}" * 40, Problem.TOO_DEEP),
]


@pytest.mark.parametrize(("options", "raw", "kind"), BAD)
def test_malformed_payloads(options: dict[str, object], raw: bytes, kind: Problem) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_point(point(**options), raw)
    assert caught.value.kind is kind
    assert caught.value.reason


def test_nesting_at_the_limit_is_accepted_and_brackets_in_strings_do_not_count() -> None:
    nested = b'{"a":' * (MAX_DEPTH - 1) + b'{"t": 1}' + b"}" * (MAX_DEPTH - 1)
    assert parse_point(point(field="a." * (MAX_DEPTH - 1) + "t"), nested)[0] == 1.0
    text = json.dumps({"t": 2, "note": "[" * 500}).encode()
    assert parse_point(point(field="t"), text)[0] == 2.0


def test_out_of_range_keeps_the_value_with_bad_quality() -> None:
    p = point(type="float32", field="p", range=[0, 16])
    assert parse_point(p, b'{"p": 16}') == (16.0, Quality.GOOD)
    assert parse_point(p, b'{"p": 16.5}') == (16.5, Quality.BAD)
    assert parse_point(p, b'{"p": -0.1}') == (-0.1, Quality.BAD)


def test_null_is_an_explicit_no_value() -> None:
    assert parse_point(point(field="t"), b'{"t": null}') == (None, Quality.BAD)


def test_one_decode_serves_several_points() -> None:
    payload = decode_payload(b'{"open": false, "event": "denied"}')

    assert point_value(point(type="bool", field="open"), payload) == (False, Quality.GOOD)
    assert point_value(point(type="string", field="event"), payload) == ("denied", Quality.GOOD)


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"ts": NOW - 5}, NOW - 5),
        ({"ts": (NOW - 5) * 1000}, NOW - 5),
        ({"ts": "2026-11-26T11:59:00Z"}, NOW - 60),
        ({"ts": "2026-11-26T19:59:00+08:00"}, NOW - 60),
        ({"ts": "2026-11-26T11:59:00"}, None),  # no zone: whose local time?
        ({"ts": NOW + 3600}, None),  # a device clock an hour fast
        ({"ts": 946684800}, None),  # a device clock reset to 2000
        ({"ts": "soon"}, None),
        ({"ts": True}, None),
        ({"t": NOW}, None),
        ([1, 2], None),
    ],
)
def test_payload_time(doc: object, expected: float | None) -> None:
    got = payload_time(decode_payload(json.dumps(doc).encode()), NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


POINTS = [
    point(type=t, field=f, scale=s, range=r)
    for t in ("bool", "int16", "uint64", "float32", "string")
    for f in (None, "a", "a.b.0")
    for s in (1.0, 1e-300, 1e300)
    for r in (None, (0, 1))
]


@settings(max_examples=examples(300), deadline=None)
@given(raw=st.binary(max_size=300), index=st.integers(0, len(POINTS) - 1))
def test_arbitrary_bytes_never_raise_anything_but_payload_error(raw: bytes, index: int) -> None:
    try:
        parse_point(POINTS[index], raw)
        payload_time(decode_payload(raw), NOW)
    except PayloadError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=examples(300), deadline=None)
@given(
    doc=st.dictionaries(st.sampled_from(["a", "b", "ts"]), json_values, max_size=3),
    index=st.integers(0, len(POINTS) - 1),
)
def test_arbitrary_json_never_raises_anything_but_payload_error(doc: dict, index: int) -> None:
    raw = json.dumps(doc).encode()  # allow_nan: json.dumps writes NaN/Infinity, which we refuse
    try:
        value, quality = parse_point(POINTS[index], raw)
        payload_time(decode_payload(raw), NOW)
    except PayloadError:
        return
    assert quality in (Quality.GOOD, Quality.BAD)
    assert value is None or isinstance(value, bool | int | float | str)
