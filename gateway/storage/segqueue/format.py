"""The queue's files: segment files of checked records, and a state file of two slots.

The folder (mode 0700, files 0600) holds:

- `<first seq>.seg`: segment files, in seq order. Each starts with `SEGMENT_MAGIC`, then records:
  a `RECORD` header (crc32, body length, seq, ts, items, flags) and the body. The crc covers the
  header after it and the body, so a torn or garbled record is recognised (`scan`). A segment takes
  appends until it holds `segment_bytes`, then the next one starts; a new process starts a new one.
- `state`: two `STATE` slots written alternately in place (a generation counter picks the newer
  valid one, so a torn write of one slot leaves the other): `acked` (every entry up to it was
  delivered), `drop_mark` (every *droppable* entry up to it was dropped for the bound) and `dropped`
  (the items dropped, ever). An entry is queued when its seq is above `acked` and it is not a
  droppable entry at or below `drop_mark`.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

SEGMENT_MAGIC = b"FGWSEG1\n"
"""The first bytes of every segment file (a format check, and room for a later version)."""

RECORD = struct.Struct("<IIQdIB3x")
"""A record's header: crc32 (of the rest of the header and the body), body length, seq, ts, items,
flags (bit 0: droppable): the queue's per-entry overhead for the bound."""

RECORD_OVERHEAD = RECORD.size
"""Bytes an entry costs beyond its body: the bound counts bodies plus this."""

STATE = struct.Struct("<8sQqqqI")
"""A state slot: magic, generation, acked, drop_mark, dropped, crc32 of the rest."""
STATE_MAGIC = b"FGWQST1\n"
STATE_SLOT = 64

DROPPABLE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued entry: `seq` orders entries and is what `ack` takes; `items` is what it counts."""

    seq: int
    ts: float
    body: bytes
    droppable: bool
    items: int = 1


class Segment:
    """One segment file and the index of its records, in parallel arrays: a few machine words a
    record, not a Python object per entry, so a full queue of small entries stays small."""

    __slots__ = (
        "compacted",
        "end",
        "fd",
        "flags",
        "head",
        "items",
        "offsets",
        "path",
        "seqs",
        "sizes",
        "ts",
    )

    def __init__(self, path: Path, fd: int | None, end: int) -> None:
        self.path = path
        self.fd = fd  # opened on demand for reading; the active segment's stays open
        self.end = end  # where the next record goes (the file's valid length)
        self.seqs = array("q")
        self.offsets = array("q")
        self.sizes = array("q")  # header + body
        self.items = array("q")
        self.ts = array("d")
        self.flags = bytearray()
        self.head = 0  # every record before this index is no longer queued
        self.compacted = False  # rewritten with its events only

    def add(self, seq: int, offset: int, size: int, items: int, ts: float, flags: int) -> None:
        self.seqs.append(seq)
        self.offsets.append(offset)
        self.sizes.append(size)
        self.items.append(items)
        self.ts.append(ts)
        self.flags.append(flags)

    def truncate_index(self, n: int) -> None:
        """Forget the records from index `n` on (a failed append)."""
        for column in (self.seqs, self.offsets, self.sizes, self.items, self.ts, self.flags):
            del column[n:]

    def reader(self) -> int:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self.fd

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def read_state(raw: bytes) -> tuple[int, int, int, int] | None:
    """The newer valid slot of a state file's bytes as `(generation, acked, drop_mark, dropped)`,
    or None when neither slot is valid."""
    best: tuple[int, int, int, int] | None = None
    for slot in (raw[:STATE_SLOT], raw[STATE_SLOT:]):
        if len(slot) < STATE.size:
            continue
        magic, gen, acked, mark, dropped, crc = STATE.unpack_from(slot)
        if magic != STATE_MAGIC or crc != zlib.crc32(slot[: STATE.size - 4]):
            continue
        if best is None or gen > best[0]:
            best = (gen, acked, mark, dropped)
    return best


def pack_state(gen: int, acked: int, mark: int, dropped: int) -> bytes:
    """A state slot's bytes, its crc included."""
    head = STATE.pack(STATE_MAGIC, gen, acked, mark, dropped, 0)[: STATE.size - 4]
    return head + zlib.crc32(head).to_bytes(4, "little")


def scan(data: bytes, segment: Segment, newest: int) -> tuple[int, str | None]:
    """Index the records of a segment's bytes into `segment`; returns where the valid records end
    and what is wrong after them (None when the file ends cleanly)."""
    if len(data) < len(SEGMENT_MAGIC):
        return 0, "torn file header" if data else None
    if data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
        return 0, "not a queue segment"
    view = memoryview(data)
    offset, end = len(SEGMENT_MAGIC), len(data)
    unpack, size = RECORD.unpack_from, RECORD.size
    while offset < end:
        if end - offset < size:
            return offset, "torn record header"
        crc, length, seq, ts, items, flags = unpack(data, offset)
        if length > end - offset - size:
            return offset, "torn record"
        if crc != zlib.crc32(view[offset + 4 : offset + size + length]):
            return offset, "corrupt record (crc)"
        if seq > newest:  # else a copy left by an interrupted merge: already indexed
            segment.add(seq, offset, size + length, items, ts, flags & DROPPABLE)
            newest = seq
        offset += size + length
    return offset, None


def read_queue(path: str | Path) -> list[Entry]:
    """What a queue folder holds, read only (for tests and inspection): tolerates a writer
    appending meanwhile (a record still being written is not shown) and changes nothing."""
    folder = Path(path)
    acked = mark = 0
    try:
        raw = (folder / "state").read_bytes()
    except FileNotFoundError:
        raw = b""
    state = read_state(raw)
    if state is not None:
        _, acked, mark, _ = state
    entries: list[Entry] = []
    newest = 0
    try:
        paths = sorted(folder.glob("*.seg"), key=segment_number)
    except FileNotFoundError:
        return []
    for file in paths:
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue  # deleted meanwhile: delivered
        segment = Segment(file, None, len(data))
        scan(data, segment, newest)
        for i, seq in enumerate(segment.seqs):
            newest = seq
            droppable = bool(segment.flags[i])
            if seq > acked and not (droppable and seq <= mark):
                start = segment.offsets[i] + RECORD_OVERHEAD
                body = data[start : segment.offsets[i] + segment.sizes[i]]
                entries.append(Entry(seq, segment.ts[i], body, droppable, segment.items[i]))
    return entries


def segment_number(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return -1  # not one of ours: sorts first, and is cut off as "not a queue segment"
