"""The export queue's chunk format: line protocol compressed behind a version byte.

A queue entry holds a chunk of line protocol (`gateway.export.influx.chunks`); on a flash card
every byte of it is written once, and as text a chunk took more than the whole gateway's budget of
bytes a value. zlib shrinks it several times (docs/performance.md, "The export queue").

Format of a body: one version byte, then the payload.

- `ZLIB` (0x01): a zlib stream (RFC 1950, with its Adler-32 of the text) of the chunk's text.
- a first byte of 0x20 or above: a chunk of earlier releases, the line-protocol text itself (a line
  starts with its measurement's name, never with a control byte).
- any other first byte: a format this release does not know (written by a later one): refused.

`decode` returns the text or raises `CorruptChunk`, never anything else: a body cut short, with a
byte changed, trailing bytes after its stream, or that would inflate beyond `MAX_TEXT`. The queue's
own crc (`gateway.storage.segqueue`) already finds a torn or garbled record on disk; this check
covers what passes it (a bug, memory, a chunk from another version) so the sender can skip the
chunk and count it instead of sending garbage or stopping.
"""

from __future__ import annotations

import zlib

ZLIB = 0x01
"""Version byte of a zlib-compressed chunk."""

LEVEL = 6
"""zlib's level for new chunks, chosen by measurement on the lines a gateway exports (docs/
performance.md, "The export queue"): the bytes are the scarce resource on a card; the compression
runs on the event loop once a spool, and higher levels cost more CPU for little more."""

MAX_TEXT = 64 * 1024 * 1024
"""Text a chunk may inflate to at most (chunks hold at most 256 KiB of lines; a line may be long)."""


class CorruptChunk(ValueError):
    """A queue body that is not a chunk this release can read."""


def encode(text: bytes, level: int = LEVEL) -> bytes:
    """A chunk's line-protocol text -> the body to queue."""
    return bytes((ZLIB,)) + zlib.compress(text, level)


def decode(body: bytes) -> bytes:
    """A queued body -> its line-protocol text.

    Raises:
        CorruptChunk: the body is damaged, cut short, or of an unknown format.
    """
    if not body:
        raise CorruptChunk("empty chunk")
    version = body[0]
    if version >= 0x20:
        return bytes(body)  # a chunk of earlier releases: the text itself
    if version != ZLIB:
        raise CorruptChunk(f"unknown chunk format {version:#04x}")
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(memoryview(body)[1:], MAX_TEXT)
    except zlib.error as exc:
        raise CorruptChunk(f"damaged chunk: {exc}") from None
    if inflater.unconsumed_tail:
        raise CorruptChunk(f"chunk inflates beyond {MAX_TEXT} bytes")
    if not inflater.eof:
        raise CorruptChunk("chunk cut short")
    if inflater.unused_data:
        raise CorruptChunk("bytes after the chunk's end")
    return text
