"""The export queue's chunk format (`gateway.export.spoolcodec`): round trips, the chunks of earlier
releases, and damage always refused as `CorruptChunk` — never another exception, never wrong text."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.export import spoolcodec
from gateway.export.spoolcodec import ZLIB, CorruptChunk, decode, encode

NAME = st.text("abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=12)
LINE = st.builds(
    lambda m, d, f, v, t: f"{m},device={d},site=s {f}={v!r} {t}",
    NAME.filter(lambda n: n[0].isalpha()),
    NAME,
    NAME,
    st.floats(allow_nan=False, allow_infinity=False) | st.booleans(),
    st.integers(min_value=10**12, max_value=10**13 - 1),
)
CHUNK_TEXT = st.lists(LINE, min_size=1, max_size=60).map(lambda ls: "\n".join(ls).encode())


@given(st.binary(max_size=4096), st.integers(min_value=0, max_value=9))
def test_any_bytes_round_trip_at_any_level(text: bytes, level: int) -> None:
    body = encode(text, level)
    assert body[0] == ZLIB
    assert decode(body) == text


@given(CHUNK_TEXT)
def test_line_protocol_round_trips_and_shrinks(text: bytes) -> None:
    body = encode(text)
    assert decode(body) == text
    if len(text) > 2000:  # repeated heads and keys: compression pays beyond the 7 bytes it adds
        assert len(body) < len(text) / 2


@given(CHUNK_TEXT)
def test_a_chunk_of_earlier_releases_is_its_own_text(text: bytes) -> None:
    assert text[0] >= 0x20
    assert decode(text) == text


@given(CHUNK_TEXT, st.data())
def test_a_body_cut_short_is_refused(text: bytes, data: st.DataObject) -> None:
    body = encode(text)
    cut = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    with pytest.raises(CorruptChunk):
        decode(body[:cut])


@given(CHUNK_TEXT, st.data())
def test_a_changed_byte_is_refused_or_changes_nothing(text: bytes, data: st.DataObject) -> None:
    """After the version byte: zlib's structure and its Adler-32 of the text find the change
    (a flipped padding bit of the last byte may change nothing: then the text is the same)."""
    body = bytearray(encode(text))
    at = data.draw(st.integers(min_value=1, max_value=len(body) - 1))
    body[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        decoded = decode(bytes(body))
    except CorruptChunk:
        return
    assert decoded == text


@given(CHUNK_TEXT, st.binary(min_size=1, max_size=16))
def test_bytes_after_the_stream_are_refused(text: bytes, tail: bytes) -> None:
    with pytest.raises(CorruptChunk, match="after the chunk"):
        decode(encode(text) + tail)


@pytest.mark.parametrize("version", [0x00, 0x02, 0x1F])
def test_an_unknown_format_is_refused_by_its_version_byte(version: int) -> None:
    body = bytes((version,)) + encode(b"pump,device=p-1 flow=1.0 1")[1:]
    with pytest.raises(CorruptChunk, match="unknown chunk format"):
        decode(body)


def test_empty_and_oversized_bodies_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CorruptChunk, match="empty"):
        decode(b"")
    monkeypatch.setattr(spoolcodec, "MAX_TEXT", 1 << 20)
    assert decode(encode(b"\0" * (1 << 20))) == b"\0" * (1 << 20)  # the limit itself is fine
    bomb = bytes((ZLIB,)) + zlib.compress(b"\0" * ((1 << 20) + 1), 9)
    with pytest.raises(CorruptChunk, match="inflates beyond"):
        decode(bomb)


def test_a_second_of_polls_shrinks_several_times() -> None:
    """A spool's chunk as the exporter makes it: a line per device poll, heads and keys repeated."""
    lines = [
        f"booster_pump,device=pump-{n},site=riverside running=true,fault=false,"
        f"outlet_pressure={4 + (n * 37 % 100) / 100!r},flow={12 + (n * 53 % 100) / 10!r},"
        f"starts={float(n % 7)!r} {1_800_000_000_000 + n * 7}"
        for n in range(100)
    ]
    text = "\n".join(lines).encode()
    body = encode(text)
    assert decode(body) == text
    assert len(body) * 4 < len(text)
