"""The binary layout of the history's stored samples and minute aggregates, grouped by series.

A *section* holds the records of many series: a directory (count, sorted series ids, offsets) and
the records of each series one after the other, compressed with zlib as a whole. A reader finds
its series by bisection and decodes only its records.

    sample  <dB then the value      time, quality * 16 + kind; the value by kind (below)
    minute  <IBI f then the values  minute // 60, kind, count, last's offset in the minute;
                                    flat (min = max = last): the value, else min, max, sum, last

Value kinds: 0 float (`d`), 1 integer (`q`), 2 None (NaN, None), 3 text (JSON, `H` length).
Decoding raises `ValueError` on bytes that are not such a section.
"""

from __future__ import annotations

import bisect
import json
import struct
import zlib
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

Sample = tuple[float, int, Any]
"""`(ts, quality code, value)`."""
Minute = tuple[int, float, float, float, int, float, float]
"""`(minute start, min, max, sum, count, last, last_ts)`."""

_SAMPLE = struct.Struct("<dB")
_MINUTE = struct.Struct("<IBIf")
_D = struct.Struct("<d")
_Q = struct.Struct("<q")
_H = struct.Struct("<H")
_FLAT = struct.Struct("<d")
_SPREAD = struct.Struct("<dddd")
_FLOAT, _INT, _NONE, _TEXT = 0, 1, 2, 3
_I64 = 2**63


def _encode_value(value: Any) -> tuple[int, bytes]:
    cls = value.__class__
    if cls is float:
        return (_NONE, b"") if value != value else (_FLOAT, _D.pack(value))
    if (cls is int or cls is bool) and -_I64 <= value < _I64:
        return _INT, _Q.pack(int(value))
    if value is None:
        return _NONE, b""
    text = json.dumps(value, separators=(",", ":"), default=str).encode()[:65535]
    return _TEXT, _H.pack(len(text)) + text


def encode_samples(samples: Iterable[Sample]) -> bytes:
    """One series' samples as records (see the module's docstring)."""
    out = bytearray()
    for ts, quality, value in samples:
        kind, packed = _encode_value(value)
        out += _SAMPLE.pack(ts, quality * 16 + kind)
        out += packed
    return bytes(out)


def decode_samples(data: bytes) -> list[Sample]:
    """The samples of `encode_samples`."""
    out: list[Sample] = []
    pos, end = 0, len(data)
    try:
        while pos < end:
            ts, code = _SAMPLE.unpack_from(data, pos)
            pos += _SAMPLE.size
            kind = code & 15
            value: Any
            if kind == _FLOAT:
                (value,) = _D.unpack_from(data, pos)
                pos += 8
            elif kind == _INT:
                (value,) = _Q.unpack_from(data, pos)
                pos += 8
            elif kind == _NONE:
                value = None
            elif kind == _TEXT:
                (length,) = _H.unpack_from(data, pos)
                value = json.loads(data[pos + 2 : pos + 2 + length])
                pos += 2 + length
            else:
                raise ValueError(f"unknown value kind {kind}")
            out.append((ts, code >> 4, value))
    except struct.error as exc:
        raise ValueError(f"truncated samples: {exc}") from exc
    return out


def encode_minutes(minutes: Iterable[Minute]) -> bytes:
    """One series' minute aggregates as records; a flat minute takes 8 bytes of value, not 32."""
    out = bytearray()
    for minute, lo, hi, total, n, last, last_ts in minutes:
        offset = last_ts - minute
        if lo == hi == last and total == lo * n:
            out += _MINUTE.pack(minute // 60, 0, n, offset) + _FLAT.pack(lo)
        else:
            out += _MINUTE.pack(minute // 60, 1, n, offset) + _SPREAD.pack(lo, hi, total, last)
    return bytes(out)


def decode_minutes(data: bytes) -> list[Minute]:
    """The minutes of `encode_minutes`."""
    out: list[Minute] = []
    pos, end = 0, len(data)
    try:
        while pos < end:
            index, kind, n, offset = _MINUTE.unpack_from(data, pos)
            pos += _MINUTE.size
            minute = index * 60
            if kind == 0:
                (v,) = _FLAT.unpack_from(data, pos)
                pos += _FLAT.size
                out.append((minute, v, v, v * n, n, v, minute + offset))
            elif kind == 1:
                lo, hi, total, last = _SPREAD.unpack_from(data, pos)
                pos += _SPREAD.size
                out.append((minute, lo, hi, total, n, last, minute + offset))
            else:
                raise ValueError(f"unknown minute kind {kind}")
    except struct.error as exc:
        raise ValueError(f"truncated minutes: {exc}") from exc
    return out


def pack_section(records: Mapping[int, bytes | bytearray]) -> bytes:
    """Many series' records (series id -> bytes) as one compressed section."""
    sids = sorted(records)
    ids = array("I", sids)
    offsets = array("I", [0])
    body = bytearray()
    for sid in sids:
        body += records[sid]
        offsets.append(len(body))
    head = struct.pack("<I", len(sids)) + ids.tobytes() + offsets.tobytes()
    return zlib.compress(head + bytes(body), 6)


class Section:
    """A section read back: `records(sid)` gives one series' bytes (empty when absent)."""

    __slots__ = ("_body", "_ids", "_offsets")

    def __init__(self, blob: bytes) -> None:
        try:
            raw = zlib.decompress(blob)
            (count,) = struct.unpack_from("<I", raw)
        except (zlib.error, struct.error) as exc:
            raise ValueError(f"not a history section: {exc}") from exc
        start = 4 + 4 * count
        body = start + 4 * (count + 1)
        if len(raw) < body:
            raise ValueError("not a history section: truncated directory")
        self._ids = array("I", raw[4:start])
        self._offsets = array("I", raw[start:body])
        self._body = memoryview(raw)[body:]

    def series(self) -> list[int]:
        return list(self._ids)

    def records(self, sid: int) -> bytes:
        i = bisect.bisect_left(self._ids, sid)
        if i == len(self._ids) or self._ids[i] != sid:
            return b""
        return bytes(self._body[self._offsets[i] : self._offsets[i + 1]])
