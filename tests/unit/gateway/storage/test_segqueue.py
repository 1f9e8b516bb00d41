"""The export's disk queue (`gateway/storage/segqueue/`): the bound drops the oldest readings and
never events, chunked entries count their items, acknowledgements and drops survive restarts, torn
tails are cut, a full disk queues nothing of a batch, and a state machine against a plain list
(puts, peeks, acks, restarts, crashes, torn tails)."""

from __future__ import annotations

import logging
import os
import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.storage.segqueue import RECORD_OVERHEAD, SEGMENT_MAGIC, SegmentQueue, read_queue
from gateway.storage.segqueue.format import Segment, scan
from tests.support import examples

# ------------------------------------------------------------------------------ ported


def test_bound_drops_oldest_readings_never_events(tmp_path: Path) -> None:
    body = b"x" * 60
    bound = 10 * (len(body) + RECORD_OVERHEAD)
    queue = SegmentQueue(tmp_path / "q", bound)
    queue.put_many([(b"event-0", 1.0, False)])
    for i in range(30):
        queue.put_many([(body + str(i).encode(), 2.0 + i, True)])
    queue.put_many([(b"event-1", 40.0, False)])
    bodies = [e.body for e in queue.peek(100)]
    assert bodies[0] == b"event-0" and bodies[-1] == b"event-1"
    assert queue.dropped == 30 - len(bodies) + 2 > 0
    assert bodies[1] == body + str(queue.dropped).encode()  # the oldest readings went
    assert queue.size_bytes <= bound + len(b"event-0event-1") + 2 * RECORD_OVERHEAD
    assert queue.oldest() == 1.0
    queue.close()
    again = SegmentQueue(tmp_path / "q", bound)  # a restart keeps queue and count
    assert [e.body for e in again.peek(100)] == bodies and again.dropped == queue.dropped
    again.ack(again.peek(2)[-1].seq)
    assert len(again) == len(bodies) - 2
    again.close()


def test_counts_items_of_chunked_entries(tmp_path: Path) -> None:
    body = b"x" * 100
    bound = 4 * (len(body) + RECORD_OVERHEAD)
    queue = SegmentQueue(tmp_path / "q", bound)
    queue.put_many([(body, 1.0, True, 10), (b"event", 2.0, False, 1), (body, 3.0, True, 7)])
    assert len(queue) == 18
    assert [e.items for e in queue.peek(10)] == [10]  # at most 10 items, and the first entry
    assert [e.items for e in queue.peek(11)] == [10, 1]
    assert [e.items for e in queue.peek(5)] == [10]  # an entry bigger than the limit still goes
    queue.put_many([(body, 4.0, True, 5), (body, 5.0, True, 5)])  # one entry over the bound
    assert queue.dropped == 10 and len(queue) == 18  # the oldest chunk of readings, its 10 lines
    assert [e.ts for e in queue.peek(100)] == [2.0, 3.0, 4.0, 5.0]
    queue.ack(queue.peek(8)[-1].seq)  # the event and the 7-line chunk
    assert len(queue) == 10 and queue.size_bytes == 2 * (len(body) + RECORD_OVERHEAD)
    queue.close()
    again = SegmentQueue(tmp_path / "q", bound)
    assert (len(again), again.dropped, again.size_bytes) == (10, 10, queue.size_bytes)
    again.close()


def test_ack_counts_only_what_the_bound_left_of_a_peeked_batch(tmp_path: Path) -> None:
    # the sender writes a peeked batch while the spooler appends beside it: if the bound drops part
    # of the batch meanwhile, those lines are counted as dropped, and ack must not count them again
    bound = 3 * (100 + RECORD_OVERHEAD)
    queue = SegmentQueue(tmp_path / "q", bound)
    queue.put_many([(b"x" * 100, float(n), True, 10) for n in range(3)])
    batch = queue.peek(30)
    assert len(batch) == 3
    queue.put_many([(b"y" * 100, 9.0, True, 10)])  # the oldest chunk makes room
    assert queue.dropped == 10
    assert queue.ack(batch[-1].seq) == 20
    assert len(queue) == 10 and [e.body for e in queue.peek(30)] == [b"y" * 100]
    queue.close()


# ------------------------------------------------------------------------------ the files


def records(path: Path) -> Segment:
    segment = Segment(path, None, 0)
    scan(path.read_bytes(), segment, 0)
    return segment


def test_a_torn_tail_is_cut_off_and_logged_earlier_records_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SegmentQueue(tmp_path / "q", 1 << 20)
    queue.put_many([(b"a" * 50, 1.0, True), (b"event", 2.0, False)])
    queue.put_many([(b"b" * 50, 3.0, True, 4)])
    queue.close()
    (segment,) = (tmp_path / "q").glob("*.seg")
    last = records(segment).offsets[-1]
    os.truncate(segment, segment.stat().st_size - 7)  # the last write got only part way
    with caplog.at_level(logging.WARNING, "fgw.queue"):
        again = SegmentQueue(tmp_path / "q", 1 << 20)
    assert f"{segment}: torn record at offset {last}" in caplog.text
    assert [e.body for e in again.peek(100)] == [b"a" * 50, b"event"] and len(again) == 2
    assert segment.stat().st_size == last  # cut there; the next start finds a clean file
    again.put_many([(b"c", 4.0, True)])
    again.close()
    assert [e.body for e in read_queue(tmp_path / "q")] == [b"a" * 50, b"event", b"c"]


def test_a_garbled_record_is_cut_off_by_its_crc(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SegmentQueue(tmp_path / "q", 1 << 20)
    queue.put_many([(b"a" * 50, 1.0, True), (b"b" * 50, 2.0, True)])
    queue.close()
    (segment,) = (tmp_path / "q").glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0x20
    segment.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, "fgw.queue"):
        again = SegmentQueue(tmp_path / "q", 1 << 20)
    assert "corrupt record (crc)" in caplog.text
    assert [e.body for e in again.peek(100)] == [b"a" * 50]
    again.close()


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes of a file fail (EFBIG) as on a full disk: the kernel's limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_queues_nothing_of_its_batch_and_the_queue_goes_on(tmp_path: Path) -> None:
    queue = SegmentQueue(tmp_path / "q", 1 << 20, segment_bytes=1 << 20)
    queue.put_many([(b"a" * 1000, 1.0, True)])
    (segment,) = (tmp_path / "q").glob("*.seg")
    size = segment.stat().st_size
    with file_size_limit(size + 1500), pytest.raises(OSError):
        queue.put_many([(b"b" * 1000, 2.0, True), (b"c" * 1000, 3.0, False)])  # the second fails
    assert segment.stat().st_size == size  # cut back: nothing of the batch on disk
    assert len(queue) == 1 and [e.body for e in queue.peek(10)] == [b"a" * 1000]
    queue.put_many([(b"d", 4.0, False)])  # usable again once there is room
    assert [e.body for e in queue.peek(10)] == [b"a" * 1000, b"d"]
    queue.close()
    again = SegmentQueue(tmp_path / "q", 1 << 20)
    assert [e.body for e in again.peek(10)] == [b"a" * 1000, b"d"]
    again.close()


def test_a_long_outage_reads_from_the_files_and_deletes_what_was_sent(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    queue = SegmentQueue(folder, 1 << 20, cache_bytes=5000, segment_bytes=4096)
    for n in range(100):
        queue.put_many([(b"%05d" % n * 100, float(n), True, 10)])  # 500-byte chunks
    assert len(list(folder.glob("*.seg"))) > 10
    sent = []
    while batch := queue.peek(50):  # the first 90 chunks come from the files, not memory
        sent.extend(e.body for e in batch)
        assert queue.ack(batch[-1].seq) == 10 * len(batch)
    assert sent == [b"%05d" % n * 100 for n in range(100)]
    assert len(queue) == queue.size_bytes == 0 and len(list(folder.glob("*.seg"))) <= 1
    queue.close()
    assert read_queue(folder) == []


def test_at_the_bound_passed_segments_keep_only_their_events(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    bound = 20 * (500 + RECORD_OVERHEAD)
    queue = SegmentQueue(folder, bound, segment_bytes=4096)
    for n in range(400):  # a long outage: readings with an event now and then
        if n % 50 == 0:
            queue.put_many([(b"event %d" % n, float(n), False)])
        queue.put_many([(b"%05d" % n * 100, float(n), True)])
    on_disk = sum(p.stat().st_size for p in folder.glob("*.seg"))
    assert on_disk <= bound + 3 * 4096  # the bound, plus what two partly dead segments hold
    assert len(list(folder.glob("*.seg"))) <= 20 * 532 // 4096 + 4  # events merged into one
    events = [e.body for e in queue.peek(10_000) if not e.droppable]
    assert events == [b"event %d" % n for n in range(0, 400, 50)]
    assert queue.dropped + len(queue) == 408
    queue.close()
    again = SegmentQueue(folder, bound)
    assert [e.body for e in again.peek(10_000) if not e.droppable] == events
    assert again.dropped + len(again) == 408
    again.close()


def test_durable_queue_round_trip(tmp_path: Path) -> None:
    queue = SegmentQueue(tmp_path / "q", 1 << 20, durable=True)
    queue.put_many([(b"event", 1.0, False), (b"reading", 2.0, True)])
    assert queue.ack(queue.peek(1)[0].seq) == 1
    queue.close()
    assert [e.body for e in read_queue(tmp_path / "q")] == [b"reading"]
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "q").iterdir())


def test_bad_arguments_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SegmentQueue(tmp_path / "q", 0)
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "00000000000000000001.seg").write_bytes(b"not a segment at all")
    (folder / "state").write_bytes(b"garbage")
    queue = SegmentQueue(folder, 1 << 20)  # logged and cut, not a crash
    assert len(queue) == 0 and queue.peek(10) == [] and queue.oldest() is None
    queue.put_many([(b"x", 1.0, True)])
    assert queue.oldest() == 1.0
    queue.close()
    assert queue.closed


# ------------------------------------------------------------------------------ state machine

BODIES = st.binary(min_size=0, max_size=120)
BATCH = st.lists(st.tuples(BODIES, st.booleans(), st.integers(1, 5)), min_size=0, max_size=6)


class QueueMachine(RuleBasedStateMachine):
    """The queue against a list: what is queued, in order, with the drops the bound implies."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(self._tmp_factory())
        self.folder = self.tmp / "q"
        self.model: list[tuple[bytes, float, bool, int]] = []  # queued, in order
        self.dropped = 0
        self.seqs: dict[bytes, int] = {}  # body -> seq, as peeked by this process
        self.gone: set[bytes] = set()  # acked or dropped: must never come back
        self.serial = 0
        self.abandoned: list[SegmentQueue] = []

    _tmp_factory: staticmethod

    @initialize(
        bound=st.integers(200, 3000),
        segment=st.integers(100, 1500),
        cache=st.integers(0, 2000),
    )
    def start(self, bound: int, segment: int, cache: int) -> None:
        self.bound, self.segment, self.cache = bound, segment, cache
        self.queue = self.open()

    def open(self) -> SegmentQueue:
        return SegmentQueue(
            self.folder, self.bound, cache_bytes=self.cache, segment_bytes=self.segment
        )

    def size(self) -> int:
        return sum(len(b) + RECORD_OVERHEAD for b, _, _, _ in self.model)

    @rule(batch=BATCH)
    def put(self, batch: list[tuple[bytes, bool, int]]) -> None:
        entries = []
        for body, droppable, items in batch:
            self.serial += 1
            body = b"%d:" % self.serial + body  # unique, to follow each entry
            entries.append((body, float(self.serial), droppable, items))
        self.model.extend(entries)
        expected = 0
        excess = self.size() - self.bound
        kept = []
        for entry in self.model:
            if excess > 0 and entry[2]:
                excess -= len(entry[0]) + RECORD_OVERHEAD
                expected += entry[3]
                self.gone.add(entry[0])
            else:
                kept.append(entry)
        self.model = kept
        self.dropped += expected
        assert self.queue.put_many(entries) == expected

    @rule(limit=st.integers(1, 20))
    def peek(self, limit: int) -> None:
        got = self.queue.peek(limit)
        want, total = [], 0
        for entry in self.model:
            total += entry[3]
            if total > limit and want:
                break
            want.append(entry)
            if total >= limit:
                break
        assert [(e.body, e.ts, e.droppable, e.items) for e in got] == want
        self.seqs.update((e.body, e.seq) for e in got)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        self.peek(10_000)
        known = sorted(self.seqs.items(), key=lambda kv: kv[1])  # queued, or a stale peek
        _, seq = data.draw(st.sampled_from(known))
        removed = [e for e in self.model if self.seqs.get(e[0], seq + 1) <= seq]
        self.model = [e for e in self.model if e not in removed]
        self.gone.update(e[0] for e in removed)
        assert self.queue.ack(seq) == sum(e[3] for e in removed)

    @rule()
    def restart(self) -> None:
        self.queue.close()
        self.queue = self.open()
        self.seqs.clear()  # a new process holds no earlier peek

    @rule()
    def crash(self) -> None:
        self.abandoned.append(self.queue)  # dropped without a close (its files closed at teardown)
        self.queue = self.open()
        self.seqs.clear()

    @rule(data=st.data(), truncate=st.booleans())
    def tear_the_tail(self, data: st.DataObject, truncate: bool) -> None:
        """What a crash in the middle of a write leaves: the newest record torn or garbled."""
        self.queue.close()
        files = sorted(self.folder.glob("*.seg"), key=lambda p: int(p.stem))
        files = [p for p in files if records(p).seqs]
        if files:
            segment = records(files[-1])
            start = segment.offsets[-1]
            size = segment.sizes[-1]
            raw = bytearray(files[-1].read_bytes())
            cut = data.draw(st.integers(start, start + size - 1), label="at")
            if truncate:
                del raw[cut:]
            else:
                raw[cut] ^= data.draw(st.integers(1, 255), label="xor")
            files[-1].write_bytes(bytes(raw))
            self.model = [e for e in self.model if e[1] != segment.ts[-1]]  # ts: unique here
        self.queue = self.open()
        self.seqs.clear()

    @invariant()
    def counts(self) -> None:
        if not hasattr(self, "queue"):
            return
        assert len(self.queue) == sum(e[3] for e in self.model)
        assert self.queue.size_bytes == self.size()
        assert self.queue.dropped == self.dropped
        assert self.queue.oldest() == (self.model[0][1] if self.model else None)

    @invariant()
    def nothing_gone_comes_back(self) -> None:
        if not hasattr(self, "queue"):
            return
        bodies = [e.body for e in self.queue.peek(10_000)]
        assert not self.gone.intersection(bodies)
        assert bodies == [e[0] for e in self.model]  # in order, events all there

    def teardown(self) -> None:
        for queue in [*self.abandoned, getattr(self, "queue", None)]:
            if queue is not None:
                queue.close()


def test_queue_state_machine(tmp_path_factory: pytest.TempPathFactory) -> None:
    counter = iter(range(1_000_000))
    QueueMachine._tmp_factory = staticmethod(  # type: ignore[assignment]
        lambda: tmp_path_factory.mktemp(f"machine{next(counter)}")
    )
    machine = QueueMachine.TestCase
    machine.settings = settings(
        max_examples=examples(150),
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine().runTest()


def test_a_merge_interrupted_before_its_last_delete_queues_nothing_twice(tmp_path: Path) -> None:
    # a rewrite merges a segment into the one before it, renames, then deletes the merged one: a
    # crash in between leaves its records in both files, and the copy is skipped on open
    folder = tmp_path / "q"
    queue = SegmentQueue(folder, 1 << 20, segment_bytes=200)
    for n in range(6):
        queue.put_many([(b"event %d " % n + b"x" * 100, float(n), False)])
    queue.close()
    first, second, *_ = sorted(folder.glob("*.seg"), key=lambda p: int(p.stem))
    first.write_bytes(first.read_bytes() + second.read_bytes()[len(SEGMENT_MAGIC) :])
    again = SegmentQueue(folder, 1 << 20)
    assert [e.ts for e in again.peek(100)] == [float(n) for n in range(6)] and len(again) == 6
    assert not second.exists()  # nothing in it was still queued: deleted
    again.close()
