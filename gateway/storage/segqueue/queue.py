"""The queue: a bounded, ordered queue on disk for store-and-forward, the InfluxDB export's buffer.

Entries are opaque bytes with a timestamp (the entry's own time, reported as the oldest entry's age),
a `droppable` flag and an item count (the exporter stores a *chunk* of lines per entry; the queue
counts lines queued and dropped, not entries). Writes come in batches (`put_many`), the consumer
`peek`s the oldest entries up to a number of items and `ack`s them after the remote side accepted
them: at least once, never lost. The queue is owned by one thread at a time (the exporter has a
lock). When the bound is reached the oldest *droppable* entries (readings) go first, counted;
entries that are not droppable (alarm events) are never dropped, whatever the bound.

Every byte of a body is written once, appended with one `pwritev` per `put_many`, and `peek`
serves it from a bounded in-memory copy of what was recently appended (`cache_bytes`); the files
(`gateway.storage.segqueue.format`) are read only after a restart, or for what a long outage pushed
out of that copy.

Durability: `put_many` hands its bytes to the kernel before it returns (a SIGKILL loses nothing),
without an fsync (as SQLite's `synchronous=NORMAL`); `durable=True` fsyncs segments and state, and
the folder when a file is created. On open, each segment is read and checked: a torn or corrupt
record and what follows it in that file are cut off (logged with the file and the offset), never an
earlier record. Space: a segment is deleted once nothing in it is queued; a segment the drop
watermark has passed keeps only its events, so it is rewritten with just them (write a temporary
file, fsync, rename), merged into the segment before it when that one is such a rewrite too. On
disk the queue therefore takes its bound plus at most the dead part of two segments (the one being
acknowledged and the one the watermark is in) and the events.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import os
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from gateway.storage.segqueue.files import sync_folder, truncate, write_all
from gateway.storage.segqueue.format import (
    DROPPABLE,
    RECORD,
    RECORD_OVERHEAD,
    SEGMENT_MAGIC,
    STATE_SLOT,
    Entry,
    Segment,
    pack_state,
    read_state,
    scan,
    segment_number,
)

log = logging.getLogger("fgw.queue")

SEGMENT_BYTES = 16 * 1024 * 1024
"""A segment's size at most (and at least 64 KiB, at most a sixteenth of the bound): big enough
that files are few, small enough that a wholly delivered one is deleted soon."""

CACHE_BYTES = 16 * 1024 * 1024
"""Bodies kept in memory for `peek` (at most the bound): a few batches ahead of the sender."""

COMPACT_MERGE_BYTES = 1024 * 1024
"""A rewritten (events only) segment takes the next one's events while it is smaller than this."""


class SegmentQueue:
    """An ordered queue of append-only segment files with a size bound that only ever drops
    droppable entries.

    Args:
        path: the queue's folder (created 0700).
        max_bytes: the bound on queued bytes (bodies plus `RECORD_OVERHEAD` each).
        durable: fsync every write (survives a power cut) rather than hand it to the kernel
            (survives a crash).
        cache_bytes: bodies kept in memory for `peek` (default `CACHE_BYTES`, at most the bound).
        segment_bytes: when a segment is full (default: `SEGMENT_BYTES`, at least 64 KiB and at
            most a sixteenth of the bound).

    Raises:
        OSError: the folder cannot be created or read.
    """

    def __init__(
        self,
        path: str | Path,
        max_bytes: int,
        *,
        durable: bool = False,
        cache_bytes: int | None = None,
        segment_bytes: int | None = None,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.durable = durable
        if segment_bytes is None:
            segment_bytes = min(SEGMENT_BYTES, max(64 * 1024, max_bytes // 16))
        self.segment_bytes = segment_bytes
        self._cache_limit = min(max_bytes, CACHE_BYTES if cache_bytes is None else cache_bytes)
        self._cache: dict[int, bytes] = {}
        self._cache_order: deque[int] = deque()
        self._cache_bytes = 0
        self._segments: deque[Segment] = deque()
        self._active: Segment | None = None  # the segment appends go to (none until the first)
        self._oldest: float | None = None
        self._state_fd = -1
        self._closed = False
        self.cut = 0  # torn or corrupt records cut off the segments' ends at this open
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._open_state()
        self._load()

    # ------------------------------------------------------------------------------ opening

    def _open_state(self) -> None:
        path = self.path / "state"
        self._state_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        raw = os.pread(self._state_fd, 2 * STATE_SLOT, 0)
        best = read_state(raw)
        if best is None and raw:
            log.error("queue %s: state unreadable: everything on disk is queued again", path)
        self._gen, self._acked, self._drop_mark, self._dropped = best or (0, 0, 0, 0)

    def _load(self) -> None:
        """Read every segment (checking each record), rebuild the index, cut torn tails."""
        for stale in self.path.glob("*.tmp"):  # a rewrite interrupted before its rename
            stale.unlink()
        last = max(self._acked, self._drop_mark)
        newest = 0
        self._count = self._bytes = 0
        for path in sorted(self.path.glob("*.seg"), key=segment_number):
            segment, newest = self._load_segment(path, newest)
            if self._live_records(segment):
                self._segments.append(segment)
            else:
                path.unlink()
        self._next_seq = max(last, newest) + 1
        if self._bytes > self.max_bytes:  # a crash between an append and its trim
            self._trim(0)
        self._find_oldest()

    def _load_segment(self, path: Path, newest: int) -> tuple[Segment, int]:
        """One segment file -> its index; `newest` is the highest seq before it (a record at or
        below it is a copy left by an interrupted merge, and skipped)."""
        data = path.read_bytes()
        segment = Segment(path, None, len(data))
        good, problem = scan(data, segment, newest)
        if problem is not None:
            log.warning("queue %s: %s at offset %d: cut off there", path, problem, good)
            self.cut += 1
            with open(path, "r+b") as f:
                f.truncate(good)
            segment.end = good
        if segment.seqs:
            newest = max(newest, segment.seqs[-1])
        mark, acked = self._drop_mark, self._acked
        segment.head = bisect.bisect_right(segment.seqs, acked)
        for i in range(segment.head, len(segment.seqs)):
            seq = segment.seqs[i]
            if not (segment.flags[i] and seq <= mark):
                self._count += segment.items[i]
                self._bytes += segment.sizes[i]
        segment.compacted = bool(segment.seqs) and not any(segment.flags)
        return segment, newest

    # ------------------------------------------------------------------------------ writing

    def put_many(
        self, entries: Iterable[tuple[bytes, float, bool] | tuple[bytes, float, bool, int]]
    ) -> int:
        """Append `(body, ts, droppable[, items])` entries with one write; return the number of
        items dropped to keep the bound (an entry without `items` counts as one).

        Raises:
            OSError: the write failed (e.g. the disk is full); nothing of this batch is queued and
                the queue stays usable.
        """
        buffers: list[bytes] = []
        records: list[tuple[int, int, int, float, int, bytes]] = []
        seq = self._next_seq
        pack, crc32 = RECORD.pack, zlib.crc32
        for e in entries:
            body, ts, droppable = e[0], e[1], e[2]
            items = e[3] if len(e) > 3 else 1  # type: ignore[misc]
            flags = DROPPABLE if droppable else 0
            header = pack(0, len(body), seq, ts, items, flags)
            crc = crc32(body, crc32(memoryview(header)[4:]))
            buffers.append(crc.to_bytes(4, "little") + header[4:])
            buffers.append(body)
            records.append((seq, len(body) + RECORD_OVERHEAD, items, ts, flags, body))
            seq += 1
        if not records:
            return 0
        segment = self._writable()
        start, count_before = segment.end, len(segment.seqs)
        self._append(segment, buffers, start)
        offset = start
        added_items = added_bytes = 0
        for rseq, size, items, ts, flags, _ in records:
            segment.add(rseq, offset, size, items, ts, flags)
            offset += size
            added_items += items
            added_bytes += size
        segment.end = offset
        self._next_seq = seq
        self._count += added_items
        self._bytes += added_bytes
        try:
            dropped = self._trim(0)
        except OSError:  # the drop could not be persisted: take the batch back out
            segment.truncate_index(count_before)
            segment.end = start
            self._next_seq = records[0][0]
            self._count -= added_items
            self._bytes -= added_bytes
            truncate(segment, start)
            raise
        for rseq, _, _, _, flags, body in records:
            if not (flags and rseq <= self._drop_mark):
                self._cache[rseq] = body
                self._cache_order.append(rseq)
                self._cache_bytes += len(body)
        self._evict()
        if dropped or self._oldest is None:
            self._find_oldest()
        return dropped

    def _writable(self) -> Segment:
        """The active segment, or a new one when there is none or it is full."""
        active = self._active
        if active is not None and active.end < self.segment_bytes:
            return active
        path = self.path / f"{self._next_seq:020d}.seg"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, [SEGMENT_MAGIC], 0)
            if self.durable:
                os.fsync(fd)
                sync_folder(self.path)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        segment = Segment(path, fd, len(SEGMENT_MAGIC))
        self._segments.append(segment)
        self._active = segment
        if active is not None:
            active.close()
            self._tidy(active)
        return segment

    def _append(self, segment: Segment, buffers: list[bytes], offset: int) -> None:
        """Write the buffers at `offset` (the segment's end) or, on any failure, cut the file back
        there and raise: a batch is queued whole or not at all."""
        assert segment.fd is not None
        try:
            write_all(segment.fd, buffers, offset)
            if self.durable:
                os.fdatasync(segment.fd)
        except OSError:
            truncate(segment, offset)
            raise

    def _trim(self, extra: int) -> int:
        """Drop the oldest droppable entries until the queue fits the bound; persist the new
        watermark before anything changes in memory. Returns the items dropped.

        Raises:
            OSError: the state could not be written (nothing was dropped).
        """
        need = self._bytes + extra - self.max_bytes
        if need <= 0:
            return 0
        mark, acked = self._drop_mark, self._acked
        freed = dropped = 0
        touched: list[Segment] = []
        for segment in self._segments:
            seqs = segment.seqs
            if not seqs or seqs[-1] <= mark:
                continue
            flags, n = segment.flags, len(seqs)
            i = max(segment.head, bisect.bisect_right(seqs, mark))
            touched.append(segment)
            while i < n and freed < need:
                if flags[i] and seqs[i] > acked:
                    freed += segment.sizes[i]
                    dropped += segment.items[i]
                    mark = seqs[i]
                i += 1
            if freed >= need:
                break
        if not dropped:
            return 0  # only events left: they are kept beyond the bound
        old_mark = self._drop_mark
        self._write_state(self._acked, mark, self._dropped + dropped)
        self._drop_mark, self._dropped = mark, self._dropped + dropped
        self._count -= dropped
        self._bytes -= freed
        for segment in touched:
            lo = bisect.bisect_right(segment.seqs, old_mark)
            hi = bisect.bisect_right(segment.seqs, mark)
            for i in range(lo, hi):
                if segment.flags[i]:
                    body = self._cache.pop(segment.seqs[i], None)
                    if body is not None:
                        self._cache_bytes -= len(body)
        for segment in touched:
            if segment is not self._active and segment.seqs[-1] <= mark:
                self._tidy(segment)
        return dropped

    # ------------------------------------------------------------------------------ space

    def _tidy(self, segment: Segment) -> None:
        """A segment appends no longer go to: delete it when nothing in it is queued; rewrite it
        with its events only once the watermark has passed it (merged into the segment before it
        when that one is such a rewrite too and still small). A failed rewrite is logged and left
        for later: it only costs space, so this never raises."""
        if segment not in self._segments:
            return
        live = self._live_records(segment)
        if not live:
            self._delete(segment)
            return
        if segment.seqs[-1] > self._drop_mark:
            return  # readings still queued in it
        if len(live) == len(segment.seqs):
            segment.compacted = True
            return  # nothing dead in it
        position = self._segments.index(segment)
        group = [segment]
        if position > 0:
            before = self._segments[position - 1]
            if before.compacted and before.end < COMPACT_MERGE_BYTES:
                group.insert(0, before)
        try:
            self._rewrite(group)
        except OSError as exc:
            log.warning("queue %s: cannot rewrite %s: %s", self.path, segment.path.name, exc)

    def _rewrite(self, group: list[Segment]) -> None:
        """Write the queued records of `group` (consecutive segments) into one file named as the
        first, atomically (temporary file, fsync, rename), then delete the others."""
        target = group[0].path
        tmp = target.with_suffix(".tmp")
        merged = Segment(target, None, len(SEGMENT_MAGIC))
        buffers: list[bytes] = [SEGMENT_MAGIC]
        for segment in group:
            fd = segment.reader()
            for i in self._live_records(segment):
                size, offset = segment.sizes[i], segment.offsets[i]
                raw = os.pread(fd, size, offset)
                if len(raw) != size:
                    raise OSError(errno.EIO, f"{segment.path.name}: short read at {offset}")
                buffers.append(raw)
                merged.add(
                    segment.seqs[i], merged.end, size, segment.items[i], segment.ts[i],
                    segment.flags[i],
                )  # fmt: skip
                merged.end += size
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, buffers, 0)
            os.fsync(fd)
        except OSError:
            os.close(fd)
            tmp.unlink()
            raise
        os.close(fd)
        os.replace(tmp, target)
        # from here on the files say what `merged` says: switch the index over before anything
        # else can fail (a copy left behind is skipped on open, a lost rename leaves a superset)
        merged.compacted = True
        position = self._segments.index(group[0])
        for segment in group:
            segment.close()
            self._segments.remove(segment)
        self._segments.insert(position, merged)
        try:
            for segment in group[1:]:
                segment.path.unlink()
            sync_folder(self.path)
        except OSError as exc:
            log.warning("queue %s: after a rewrite: %s", self.path, exc)

    def _delete(self, segment: Segment) -> None:
        """Forget a segment nothing in is queued; a file that cannot be removed is logged and
        removed at the next open (its records are all acknowledged or dropped by then)."""
        segment.close()
        self._segments.remove(segment)
        if segment is self._active:
            self._active = None
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("queue %s: cannot delete %s: %s", self.path, segment.path.name, exc)

    def _live_records(self, segment: Segment) -> list[int]:
        """Indexes of the segment's records that are still queued."""
        acked, mark, seqs, flags = self._acked, self._drop_mark, segment.seqs, segment.flags
        return [
            i
            for i in range(segment.head, len(seqs))
            if seqs[i] > acked and not (flags[i] and seqs[i] <= mark)
        ]

    def _evict(self) -> None:
        """Keep the in-memory copy of bodies within its bound, oldest out first."""
        cache, order = self._cache, self._cache_order
        while self._cache_bytes > self._cache_limit and order:
            body = cache.pop(order.popleft(), None)
            if body is not None:
                self._cache_bytes -= len(body)

    def _write_state(self, acked: int, mark: int, dropped: int) -> None:
        """Persist the watermarks in the slot the previous write did not use."""
        gen = self._gen + 1
        write_all(self._state_fd, [pack_state(gen, acked, mark, dropped)], (gen % 2) * STATE_SLOT)
        if self.durable:
            os.fdatasync(self._state_fd)
        self._gen = gen

    # ------------------------------------------------------------------------------ reading

    def _queued(self) -> Iterator[tuple[Segment, int]]:
        """The queued records in order, as (segment, index); moves each segment's `head` past
        what is no longer queued on the way."""
        mark = self._drop_mark
        for segment in self._segments:
            seqs, flags, n = segment.seqs, segment.flags, len(segment.seqs)
            i = segment.head
            while i < n and flags[i] and seqs[i] <= mark:
                i += 1
            segment.head = i
            while i < n:
                if not (flags[i] and seqs[i] <= mark):
                    yield segment, i
                i += 1

    def peek(self, limit: int) -> list[Entry]:
        """The oldest entries, in order, holding at most `limit` items (at least one entry when
        the queue is not empty, however many items it holds), without removing them.

        Raises:
            OSError: a segment could not be read.
        """
        entries: list[Entry] = []
        total = 0
        cache = self._cache
        for segment, i in self._queued():
            items = segment.items[i]
            total += items
            if total > limit and entries:
                break
            seq = segment.seqs[i]
            body = cache.get(seq)
            if body is None:
                body = self._read_body(segment, i)
            entries.append(Entry(seq, segment.ts[i], body, bool(segment.flags[i]), items))
            if total >= limit:
                break
        return entries

    def _read_body(self, segment: Segment, i: int) -> bytes:
        size, offset = segment.sizes[i], segment.offsets[i]
        raw = os.pread(segment.reader(), size - RECORD_OVERHEAD, offset + RECORD_OVERHEAD)
        if len(raw) != size - RECORD_OVERHEAD:
            raise OSError(errno.EIO, f"queue {segment.path}: short read at offset {offset}")
        return raw

    def ack(self, seq: int) -> int:
        """Every entry up to and including `seq` was delivered: forget them.

        Returns the items removed (fewer than were peeked if the bound dropped some meanwhile).

        Raises:
            OSError: the acknowledgement could not be written (nothing was removed).
        """
        seq = min(seq, self._next_seq - 1)
        if seq <= self._acked:
            return 0
        mark = self._drop_mark
        count = freed = 0
        heads: list[tuple[Segment, int]] = []
        for segment in self._segments:
            seqs, flags, n = segment.seqs, segment.flags, len(segment.seqs)
            i = segment.head
            while i < n and seqs[i] <= seq:
                if not (flags[i] and seqs[i] <= mark):
                    count += segment.items[i]
                    freed += segment.sizes[i]
                i += 1
            heads.append((segment, i))
            if i < n:
                break
        self._write_state(seq, mark, self._dropped)
        self._acked = seq
        self._count -= count
        self._bytes -= freed
        cache, order = self._cache, self._cache_order
        while order and order[0] <= seq:
            body = cache.pop(order.popleft(), None)
            if body is not None:
                self._cache_bytes -= len(body)
        for segment, i in heads:
            segment.head = i
            if i == len(segment.seqs) and segment is not self._active:
                self._delete(segment)
        self._find_oldest()
        return count

    # ------------------------------------------------------------------------------ reporting

    def __len__(self) -> int:
        """Items queued (lines, for the exporter), not entries."""
        return self._count

    @property
    def size_bytes(self) -> int:
        """Bytes queued, as the bound counts them."""
        return self._bytes

    @property
    def dropped(self) -> int:
        """Droppable items dropped because of the bound, since the queue was created."""
        return self._dropped

    def oldest(self) -> float | None:
        """The timestamp of the oldest queued entry (its own time), or None when empty.

        Kept up to date by the owner's calls, so that a health check may read it from another
        thread (as the reporting properties) while the owner appends.
        """
        return self._oldest

    def _find_oldest(self) -> None:
        self._oldest = next((segment.ts[i] for segment, i in self._queued()), None)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for segment in self._segments:
                segment.close()
            os.close(self._state_fd)
