"""Local history: raw readings, 1-minute aggregates, windows, the size bound, a refused disk.

A fake wall clock drives the windows; the writer thread runs for real where its pacing matters.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage.history import HistoryStore
from ground.model import Quality, Reading
from tests.support import examples

T0 = 1_700_000_040.0  # a whole minute


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 3600)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path, raw_window=3600, aggregate_window=30 * 86400, wall=clock)
    yield s
    s.close()


def r(point: str, value: object, ts: float, quality: Quality = Quality.GOOD) -> Reading:
    return Reading("pump-1", point, value, quality, ts)  # type: ignore[arg-type]


def test_raw_readings_come_back_in_order_with_their_quality(store: HistoryStore) -> None:
    store.add([r("p", 1.5, T0 + 1), r("running", True, T0 + 1)])
    store.add([r("p", None, T0 + 2, Quality.STALE), r("p", 99.0, T0 + 3, Quality.BAD)])
    store.flush()
    assert store.query("pump-1", "p", T0, T0 + 10) == [
        {"ts": T0 + 1, "value": 1.5, "quality": "good"},
        {"ts": T0 + 2, "value": None, "quality": "stale"},
        {"ts": T0 + 3, "value": 99.0, "quality": "bad"},
    ]
    assert store.query("pump-1", "running", T0, T0 + 10)[0]["value"] == 1
    assert store.query("pump-1", "nope", T0, T0 + 10) == []
    assert store.path.name == "history.sqlite3"
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"


def test_minute_aggregates_of_good_numbers_only(store: HistoryStore) -> None:
    store.add([r("p", v, T0 + i * 10) for i, v in enumerate([3.0, 1.0, 5.0, 2.0, 4.0, 6.0])])
    store.add([r("p", 100.0, T0 + 15, Quality.BAD), r("p", None, T0 + 16, Quality.STALE)])
    store.add([r("p", 7.0, T0 + 61), r("s", "granted", T0 + 61)])
    store.flush()
    rows = store.query("pump-1", "p", T0, T0 + 119, max_points=2)  # 10 raw rows > 2: aggregates
    assert rows == [
        {"ts": T0, "min": 1.0, "max": 6.0, "count": 6, "last": 6.0, "mean": 3.5},
        {"ts": T0 + 60, "min": 7.0, "max": 7.0, "count": 1, "last": 7.0, "mean": 7.0},
    ]
    assert store.query("pump-1", "s", T0, T0 + 119, max_points=0) == []


def test_a_long_span_merges_minutes_into_buckets(store: HistoryStore) -> None:
    store.add([r("p", float(i), T0 + i * 60) for i in range(10)])
    store.flush()
    rows = store.query("pump-1", "p", T0, T0 + 599, max_points=5)  # 2 minutes per bucket
    assert [(b["min"], b["max"], b["last"], b["count"]) for b in rows] == [
        (0.0, 1.0, 1.0, 2), (2.0, 3.0, 3.0, 2), (4.0, 5.0, 5.0, 2), (6.0, 7.0, 7.0, 2),
        (8.0, 9.0, 9.0, 2),
    ]  # fmt: skip
    assert len(rows) <= 5


def test_aggregates_are_merged_across_commits_and_restarts(tmp_path: Path, clock: Clock) -> None:
    first = HistoryStore(tmp_path, wall=clock)
    first.add([r("p", 2.0, T0 + 1), r("p", 4.0, T0 + 2)])
    first.flush()
    first.close()
    again = HistoryStore(tmp_path, wall=clock)
    again.add([r("p", 9.0, T0 + 3)])
    again.add([r("p", 0.0, T0 + 0.5)])  # late: not the minute's last
    again.flush()
    (row,) = again.query("pump-1", "p", T0, T0 + 59, max_points=1)
    assert (row["min"], row["max"], row["count"], row["last"]) == (0.0, 9.0, 4, 9.0)
    assert row["mean"] == pytest.approx(15.0 / 4)
    again.close()


def test_older_than_the_raw_window_is_answered_from_aggregates(
    store: HistoryStore, clock: Clock
) -> None:
    store.add([r("p", 1.0, T0 + 1), r("p", 3.0, T0 + 2)])
    store.flush()
    clock.now = T0 + 4 * 3600  # raw window is 1 h
    assert store.compact() == 2  # the point's hour of samples, and of minutes
    deleted = store.prune()
    assert deleted == {"raw": 1, "agg": 0}
    rows = store.query("pump-1", "p", T0, T0 + 59)
    assert rows == [{"ts": T0, "min": 1.0, "max": 3.0, "count": 2, "last": 3.0, "mean": 2.0}]
    clock.now = T0 + 31 * 86400
    assert store.prune()["agg"] == 1
    assert store.query("pump-1", "p", T0, T0 + 59) == []


def _fill(store: HistoryStore, clock: Clock, minutes: range, points: int, step: int = 10) -> None:
    """Noisy readings (they do not compress) committed minute by minute, hour chunks compacted."""
    rng = random.Random(7)
    for minute in minutes:
        clock.now = T0 + minute * 60 + 60
        store.add([r(f"p{i}", rng.random(), T0 + minute * 60 + s) for s in range(0, 60, step)
                   for i in range(points)])  # fmt: skip
        store.write_pending()
        store.compact()


def test_the_size_bound_drops_the_oldest_raw_rows_first(tmp_path: Path, clock: Clock) -> None:
    store = HistoryStore(tmp_path, raw_window=10 * 86400, max_bytes=160_000, wall=clock)
    _fill(store, clock, range(200), points=5, step=5)
    assert store._used_bytes() > 160_000
    deleted = store.prune(T0 + 200 * 60)
    assert deleted["raw"] > 0 and store._used_bytes() <= 160_000
    raw = store.query("pump-1", "p0", T0, T0 + 200 * 60, max_points=10**6)
    assert raw and "value" in raw[0]
    assert raw[0]["ts"] > T0  # the oldest went first
    assert raw[-1]["ts"] == T0 + 199 * 60 + 55  # the newest stayed
    assert len(store.query("pump-1", "p0", T0, T0 + 200 * 60, max_points=200)) == 200
    (minute,) = store.query("pump-1", "p0", T0, T0 + 59, max_points=1)
    assert minute["count"] == 12  # the oldest minutes are still there
    store.close()


def test_the_writer_thread_commits_a_few_times_not_once_per_batch(
    tmp_path: Path, clock: Clock
) -> None:
    store = HistoryStore(tmp_path, wall=clock, commit_interval=5.0)
    store.start()
    for i in range(500):
        store.add([r("p", float(i), T0 + i), r("q", float(i), T0 + i)])
    assert store.flush(timeout=10)
    assert store.rows_written == 1000
    assert store.commits <= 2, store.commits
    store.close()
    assert store.stats()["writer_running"] is False


def test_a_refused_write_is_counted_reported_and_recovered(store: HistoryStore) -> None:
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the file refuses writes, as a full disk would
    store._db.execute("PRAGMA busy_timeout=0")
    store.add([r("p", 1.0, T0 + 1), r("p", 2.0, T0 + 2)])
    store.flush()
    assert store.dropped == 2 and store.error is not None
    blocker.execute("ROLLBACK")
    blocker.close()
    store.add([r("p", 3.0, T0 + 3)])
    store.flush()
    assert store.error is None
    assert [row["value"] for row in store.query("pump-1", "p", T0, T0 + 10)] == [3.0]


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=5990).map(lambda tenths: tenths / 10),
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(min_value=1, max_value=12),
)
def test_aggregates_agree_with_a_brute_force_fold(
    tmp_path_factory: pytest.TempPathFactory, samples: list[tuple[float, float]], max_points: int
) -> None:
    store = HistoryStore(tmp_path_factory.mktemp("h"), wall=lambda: T0 + 600)
    for offset, value in samples:
        store.add([r("p", value, T0 + offset)])
    store.flush()
    rows = store.query("pump-1", "p", T0, T0 + 599, max_points=max_points)
    store.close()
    if len(samples) <= max_points:
        assert sorted(x["value"] for x in rows) == sorted(v for _, v in samples)
        return
    bucket = 60 * math.ceil(599 / 60 / max_points)
    expected: dict[float, list[tuple[float, float]]] = {}
    for offset, value in samples:
        start = T0 + offset - (T0 + offset) % 60
        expected.setdefault(start - start % bucket, []).append((offset, value))
    assert [b["ts"] for b in rows] == sorted(expected)
    for b in rows:
        values = expected[b["ts"]]
        assert b["min"] == min(v for _, v in values) and b["max"] == max(v for _, v in values)
        assert b["count"] == len(values)
        assert b["mean"] == pytest.approx(sum(v for _, v in values) / len(values), abs=1e-6)
        latest = max(o for o, _ in values)
        assert b["last"] in [v for o, v in values if o == latest]


def test_under_a_tight_bound_the_last_hour_of_raw_outlives_old_aggregates(
    tmp_path: Path, clock: Clock
) -> None:
    store = HistoryStore(tmp_path, raw_window=86400, max_bytes=150_000, wall=clock)
    _fill(store, clock, range(0, 3 * 24 * 60, 3), points=8, step=60)  # 3 days of sparse minutes
    now = T0 + 3 * 86400
    clock.now = now
    store.add([r("p0", 5.0, now - 60)])
    store.flush()
    store.prune(now)
    assert store._used_bytes() <= 150_000
    assert store.query("pump-1", "p0", now - 3600, now)[-1]["value"] == 5.0  # raw, last hour
    oldest = store.query("pump-1", "p0", T0, now, max_points=10**6)
    assert oldest[0]["ts"] > T0  # the oldest aggregates went for space
    store.close()


def test_values_of_every_kind_come_back_as_they_went_in(store: HistoryStore) -> None:
    values = [1.25, 7, True, "auto", None, math.inf, -(2**70), 1e308 * 10]
    for ts in (T0 + 1, T0 + 2):
        store.add([r(f"v{i}", v, ts) for i, v in enumerate(values)])
    store.add([r("nan", math.nan, T0 + 1), r("nan", 2.0, T0 + 1)])  # a point twice in one batch
    for ts in (T0 + 1, T0 + 2):  # numbers only: packed, folded a poll at a time
        store.add([r("n", 3, ts), r("b", True, ts)])
    store.flush()
    got = [store.query("pump-1", f"v{i}", T0, T0 + 10)[0]["value"] for i in range(len(values))]
    assert got == [1.25, 7, 1, "auto", None, math.inf, -(2**70), math.inf]
    assert [x["value"] for x in store.query("pump-1", "nan", T0, T0 + 10)] == [None, 2.0]
    counts = [
        [m["count"] for m in store.query("pump-1", f"v{i}", T0, T0 + 59, max_points=1)]
        for i in range(len(values))
    ]  # aggregates: numbers (and true/false) that are finite
    assert counts == [[2], [2], [2], [], [], [], [2], []]
    assert [x["value"] for x in store.query("pump-1", "b", T0, T0 + 10)] == [1, 1]
    for point in ("v1", "n", "b"):  # minutes still in memory are floats, as on disk
        (minute,) = store.query("pump-1", point, T0, T0 + 59, max_points=1)
        assert all(type(minute[k]) is float for k in ("min", "max", "mean", "last")), minute


_POINTS = ["a", "b", "c", "d"]
_reading = st.tuples(
    st.sampled_from(_POINTS),
    st.integers(min_value=0, max_value=480).map(lambda quarters: quarters / 4),  # seconds
    st.one_of(st.floats(-1e6, 1e6), st.booleans(), st.none(), st.sampled_from(["on", "off"])),
    st.sampled_from(list(Quality)),
)


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(st.lists(_reading, min_size=1, max_size=6), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=480).map(lambda quarters: quarters / 4),
    st.integers(min_value=0, max_value=40).map(lambda quarters: quarters / 4),
    st.integers(min_value=1, max_value=8),
)
def test_raw_answers_agree_with_every_reading_kept_apart(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[tuple[str, float, object, Quality]]],
    start: float,
    length: float,
    max_points: int,
) -> None:
    """Batches of any shape (points repeated, times spread over seconds) give the raw answers and
    the counts the first layout gave, which kept one row per reading."""
    store = HistoryStore(tmp_path_factory.mktemp("h"), wall=lambda: T0 + 600)
    for batch in batches:
        store.add(
            [r(point, value, T0 + offset, quality) for point, offset, value, quality in batch]
        )
    store.flush()
    begin, end = T0 + start, T0 + start + length
    for point in _POINTS:
        kept = [
            {"ts": T0 + offset, "value": int(v) if isinstance(v, bool) else v, "quality": str(q)}
            for batch in batches
            for p, offset, v, q in batch
            if p == point and begin <= T0 + offset <= end
        ]
        got = store.query("pump-1", point, begin, end, max_points=max_points)
        if len(kept) > max_points:
            assert all("count" in bucket for bucket in got)  # aggregates (of numbers, if any)
            continue
        key = lambda x: (x["ts"], repr(x["value"]), x["quality"])  # noqa: E731
        assert sorted(got, key=key) == sorted(kept, key=key)
        assert [x["ts"] for x in got] == sorted(x["ts"] for x in got)
    for point in _POINTS:  # and the minutes, folded a poll at a time or a reading at a time
        readings = [(T0 + o, v, q) for batch in batches for p, o, v, q in batch if p == point]
        numbers = [
            (ts, float(v))
            for ts, v, q in readings
            if q == Quality.GOOD and isinstance(v, int | float) and not math.isnan(v)
        ]
        for minute in (T0, T0 + 60, T0 + 120):
            inside = [(ts, v) for ts, v in numbers if minute <= ts < minute + 60]
            got = store.query("pump-1", point, minute, minute + 59.99, max_points=1)
            if sum(1 for ts, _, _ in readings if minute <= ts <= minute + 59.99) <= 1:
                continue  # answered raw
            if not inside:
                assert got == []
                continue
            (bucket,) = got
            values = [v for _, v in inside]
            assert (bucket["count"], bucket["min"], bucket["max"]) == (
                len(values),
                min(values),
                max(values),
            )
            assert bucket["mean"] == pytest.approx(sum(values) / len(values))
            newest = max(ts for ts, _ in inside)
            assert bucket["last"] in [v for ts, v in inside if ts == newest]
    store.close()


def test_a_reading_committed_hours_late_is_still_found_once_compacted(
    tmp_path: Path, clock: Clock
) -> None:
    """A back-filled reading (a device's buffer sent after an outage, a clock put right) is
    filed under its own hour by the compaction, not under the hour of its commit."""
    store = HistoryStore(tmp_path, raw_window=10 * 86400, wall=clock)
    clock.now = T0 + 3 * 3600 + 30  # committed three hours after it was taken
    store.add([r("p", 1.0, T0 + 1), r("p", 2.0, T0 + 3 * 3600 + 5)])
    store.flush()
    late = store.query("pump-1", "p", T0, T0 + 10)
    minute = store.minutes("pump-1", "p", T0, T0 + 59)
    assert [row["value"] for row in late] == [1.0] and len(minute) == 1
    clock.now = T0 + 5 * 3600
    assert store.compact() > 0
    assert store.query("pump-1", "p", T0, T0 + 10) == late
    assert store.minutes("pump-1", "p", T0, T0 + 59) == minute
    assert [
        row["value"] for row in store.query("pump-1", "p", T0 + 3 * 3600, T0 + 3 * 3600 + 9)
    ] == [2.0]
    store.close()


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6 * 3600), st.integers(0, 6 * 3600)),  # (taken, delay), s
        min_size=1,
        max_size=30,
    )
)
def test_every_reading_is_found_after_compaction_however_late_it_was_committed(
    tmp_path_factory: pytest.TempPathFactory, readings: list[tuple[int, int]]
) -> None:
    clock = Clock(T0)
    store = HistoryStore(tmp_path_factory.mktemp("h"), raw_window=30 * 86400, wall=clock)
    try:
        for n, (taken, delay) in enumerate(sorted(readings, key=lambda x: x[0] + x[1])):
            clock.now = T0 + taken + delay
            store.add([r("p", float(n), T0 + taken)])
            store.flush()
            store.compact()
        clock.now = T0 + 13 * 3600
        store.compact()
        found = store.query("pump-1", "p", T0, T0 + 6 * 3600 + 1, max_points=100)
        assert sorted(row["value"] for row in found) == [float(n) for n in range(len(readings))]
    finally:
        store.close()
