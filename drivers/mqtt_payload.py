"""MQTT payloads into point values: pure, total, and suspicious of every byte.

An MQTT device publishes whatever its firmware (or a Node-RED flow) decided: JSON objects, bare
numbers, `ON`/`OFF`, sometimes garbage. This module turns one payload into one point's value and
quality, or a `PayloadError` whose `kind` is stable, so the driver can count each malformed message
and log each distinct problem once. No other exception ever leaves it: bad input must not crash the
driver (see the hypothesis test).

The payload is decoded once per message (`decode_payload`) and shared by every point on the topic;
`point_value` then picks and converts one point's value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from config.models import MqttPoint
from ground.model import Quality, Value

MAX_PAYLOAD = 64 * 1024
"""Bytes. A bigger payload is refused before it is decoded: no point needs more, and a flood of
megabyte messages must not cost the gateway its CPU."""

MAX_DEPTH = 32
"""Nesting of JSON objects/arrays. Deeper documents are refused: no device needs them, and Python's
parser recurses."""

MAX_TS_AGE = 7 * 86400.0
"""A payload's own `ts` older than this is not believed (a device clock reset to 1970 or 2000); a
persistent session can legitimately deliver messages from a long weekend's outage."""

MAX_TS_AHEAD = 60.0
"""A payload's own `ts` further in the future than this is not believed (a wrong device clock)."""

_INT_RANGES: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})


class Problem(StrEnum):
    """What was wrong with a payload; the key under which the driver counts and logs it once."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    TOO_DEEP = "too_deep"
    NOT_FINITE = "not_finite"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"


class PayloadError(Exception):
    """A payload that gives no value for a point.

    Args:
        kind: the class of problem (stable; used for counting and log-once).
        reason: a human sentence naming what was found.
    """

    def __init__(self, kind: Problem, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Payload:
    """A payload decoded once, shared by every point subscribed to its topic.

    Attributes:
        text: the payload as text.
        doc: the parsed JSON document, or None when `error` says why the text is not JSON.
        error: why the text did not parse as JSON. Plain text (`21.5`, `ON`) is still a valid
            whole-payload value, so this is only fatal for points with a `field`.
    """

    text: str
    doc: Any
    error: PayloadError | None = None


def decode_payload(raw: bytes) -> Payload:
    """Check size and encoding, then parse JSON if the payload is JSON.

    Raises:
        PayloadError: the payload is empty, too large or not UTF-8 (no point can be read from it).
    """
    if not raw:
        raise PayloadError(Problem.EMPTY, "empty payload")
    if len(raw) > MAX_PAYLOAD:
        raise PayloadError(Problem.TOO_LARGE, f"{len(raw)} bytes (at most {MAX_PAYLOAD})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(Problem.NOT_UTF8, f"not UTF-8 at byte {exc.start}") from None
    try:
        return Payload(text, _loads(text))
    except PayloadError as exc:
        return Payload(text, None, exc)


def point_value(point: MqttPoint, payload: Payload) -> tuple[Value | None, Quality]:
    """The value and quality of `point` in `payload`.

    A JSON `null` is an explicit "no value" from the device: `(None, bad)`. A value outside the
    point's `range` keeps its value with quality `bad` (as for Modbus).

    Raises:
        PayloadError: the payload holds no usable value for this point.
    """
    if point.field is None:
        if payload.error is None:
            raw: Any = payload.doc
        elif payload.error.kind is Problem.NOT_JSON:
            raw = payload.text.strip()  # plain text: `21.5` is JSON anyway; `ON`, `granted` are not
        else:
            raise payload.error
    else:
        if payload.error is not None:
            raise payload.error
        raw = _lookup(payload.doc, point.field)
    if raw is None:
        return None, Quality.BAD
    value = _convert(raw, point.type)
    if isinstance(value, bool | str):
        return value, Quality.GOOD
    if point.scale != 1.0 or point.offset != 0.0:
        value = value * point.scale + point.offset
        if not math.isfinite(value):
            raise PayloadError(Problem.NOT_FINITE, "the scaled value is not finite")
    if point.range is not None and not point.range[0] <= value <= point.range[1]:
        return value, Quality.BAD
    return value, Quality.GOOD


def parse_point(point: MqttPoint, raw: bytes) -> tuple[Value | None, Quality]:
    """`point_value` of a raw payload: the one-call form for a single point.

    Raises:
        PayloadError: the only exception this raises, whatever the bytes.
    """
    return point_value(point, decode_payload(raw))


def payload_time(payload: Payload, now: float) -> float | None:
    """The message's own time from a top-level `ts` field, if present and believable.

    `ts` may be epoch seconds, epoch milliseconds, or ISO 8601 with a zone (`Z` or `+08:00`). A
    time without a zone is ambiguous (device local time?) and ignored, as is one outside
    [now - MAX_TS_AGE, now + MAX_TS_AHEAD]. None means: use the arrival time.
    """
    doc = payload.doc
    if not isinstance(doc, dict):
        return None
    ts = doc.get("ts")
    seconds: float | None = None
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        seconds = float(ts) / 1000.0 if ts > 1e11 else float(ts)
    elif isinstance(ts, str) and len(ts) <= 64:
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        seconds = parsed.timestamp()
    if seconds is None or not math.isfinite(seconds):
        return None
    if not now - MAX_TS_AGE <= seconds <= now + MAX_TS_AHEAD:
        return None
    return seconds


# ---------------------------------------------------------------------------------------- helpers


def _loads(text: str) -> Any:
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise PayloadError(Problem.TOO_DEEP, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return _DECODER.decode(text)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, over-long int literal, depth
        raise PayloadError(Problem.NOT_JSON, _first_line(exc)) from None


def _refuse_constant(name: str) -> Any:
    raise PayloadError(Problem.NOT_FINITE, f"{name} is not a number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise PayloadError(Problem.NOT_FINITE, f"{literal[:20]} overflows a float")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
"""One decoder for every payload: `json.loads` with hooks builds a new one per call."""


def _depth(text: str) -> int:
    """Deepest nesting of brackets outside strings (stops counting once past MAX_DEPTH)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return depth
        elif ch in "]}":
            depth -= 1
    return depth


def _lookup(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PayloadError(Problem.MISSING_FIELD, f"no field {path!r}")
    return node


def _convert(raw: Any, type_: str) -> Value:
    if type_ == "bool":
        return _to_bool(raw)
    if type_ == "string":
        if isinstance(raw, str):
            return raw
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, int | float):
            return json.dumps(raw)
        raise PayloadError(Problem.WRONG_TYPE, f"a JSON {_kind(raw)} where a string is wanted")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PayloadError(Problem.WRONG_TYPE, f"a {_kind(raw)} where a number is wanted")
    if type_ in _INT_RANGES:
        if isinstance(raw, float):
            if not raw.is_integer():
                raise PayloadError(Problem.WRONG_TYPE, f"{raw!r} is not an integer ({type_})")
            raw = int(raw)
        low, high = _INT_RANGES[type_]
        if not low <= raw <= high:
            raise PayloadError(Problem.WRONG_TYPE, f"{_short(raw)} does not fit {type_}")
        return int(raw)
    try:
        return float(raw)
    except OverflowError:
        raise PayloadError(Problem.NOT_FINITE, f"{_short(raw)} overflows a float") from None


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise PayloadError(Problem.WRONG_TYPE, f"{_short(raw)} is not a boolean")


def _kind(raw: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(raw), "number")


def _short(raw: Any) -> str:
    text = repr(raw) if not isinstance(raw, int) or abs(raw) < 10**30 else "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or ["invalid"])[0][:120]
