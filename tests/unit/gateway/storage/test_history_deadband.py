"""What the history keeps of a point: changes beyond its deadband, heartbeats, exact minutes.

The contract proven here: the stored samples, each held until the next, stay within the deadband of
every reading polled; a step is stored at once; a flat line is stored at least every heartbeat; the
minute aggregates are exact over every reading, stored or not. Pure filters first, then the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage.deadband import SeriesFilter, default_deadband
from gateway.storage.history import HistoryStore
from gateway.storage.series_codec import (
    Section,
    decode_minutes,
    decode_samples,
    encode_minutes,
    encode_samples,
    pack_section,
)
from ground.model import Quality, Reading
from tests.support import examples

T0 = 1_700_000_040.0  # a whole minute


def _held(stored: list[tuple[float, float]], ts: float) -> float:
    """The step curve of the stored samples at `ts` (the last stored at or before it)."""
    value = math.nan
    for t, v in stored:
        if t > ts:
            break
        value = v
    return value


_signal = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=examples(200), deadline=None)
@given(_signal, st.floats(0, 50))
def test_the_held_curve_stays_within_the_deadband_of_every_reading(
    values: list[float], band: float
) -> None:
    f = SeriesFilter(band, heartbeat=1e9)
    stored = [(float(i), v) for i, v in enumerate(values) if f.keep(float(i), 0, v)]
    assert stored[0] == (0.0, values[0])  # the first reading is always stored
    for i, v in enumerate(values):
        assert abs(_held(stored, float(i)) - v) <= band


@settings(max_examples=examples(100), deadline=None)
@given(st.floats(0.01, 10), st.floats(-100, 100), st.floats(0.0, 1.0))
def test_a_step_beyond_the_deadband_is_stored_at_once(band: float, level: float, k: float) -> None:
    f = SeriesFilter(band, heartbeat=1e9)
    for i in range(10):
        f.keep(float(i), 0, level + k * band)  # noise within the band
    step = level + band * 3
    assert f.keep(10.0, 0, step)


def test_a_heartbeat_fills_a_flat_line_and_a_quality_change_is_stored() -> None:
    f = SeriesFilter(0.5, heartbeat=60)
    kept = [t for t in range(0, 300) if f.keep(float(t), 0, 20.0)]
    assert kept == [0, 60, 120, 180, 240]  # a flat line: one stored value a heartbeat
    assert f.keep(300.0, 2, None)  # stale
    assert not f.keep(301.0, 2, None)
    assert f.keep(302.0, 0, 20.0)  # good again


def test_text_and_bits_are_stored_on_any_change_and_none_stores_everything() -> None:
    f = SeriesFilter(0.0)
    assert [f.keep(float(t), 0, v) for t, v in enumerate(["on", "on", "off", 1, True, 2])] == [
        True, False, True, True, False, True,
    ]  # fmt: skip
    every = SeriesFilter(None)
    assert all(every.keep(float(t), 0, 1.0) for t in range(5))


def test_the_default_deadband_comes_from_the_type_and_range() -> None:
    assert default_deadband("float32", 1.0, (0.0, 500.0)) == pytest.approx(0.5)
    assert default_deadband("uint16", 0.1, (0.0, 25.0)) == pytest.approx(0.05)  # half a step
    assert default_deadband("bool", 1.0, None) == 0.0
    assert default_deadband("float32", 1.0, None) == 0.0  # no range: every change
    assert default_deadband("float32", 1.0, (0.0, 100.0), percent=1.0) == pytest.approx(1.0)


_value = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
    st.text(max_size=20),
    st.integers(2**63, 2**80),
)


@settings(max_examples=examples(200), deadline=None)
@given(st.dictionaries(st.integers(0, 2**32 - 1), st.lists(
    st.tuples(st.floats(0, 2e9), st.integers(0, 2), _value), max_size=8), max_size=8))  # fmt: skip
def test_sections_of_samples_read_back_as_written(
    series: dict[int, list[tuple[float, int, object]]],
) -> None:
    section = Section(pack_section({sid: encode_samples(rows) for sid, rows in series.items()}))
    for sid, rows in series.items():
        assert decode_samples(section.records(sid)) == rows
    assert section.records(max(series, default=0) + 1 if series else 5) == b""


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.lists(
    st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=5)), max_size=6))  # fmt: skip
def test_minutes_read_back_as_written(minutes: list[tuple[int, list[float]]]) -> None:
    rows = []
    for index, values in minutes:
        minute = index * 60
        rows.append((minute, min(values), max(values), sum(values), len(values), values[-1],
                     minute + 30.5))  # fmt: skip
    got = decode_minutes(encode_minutes(rows))
    assert [g[:6] for g in got] == [r[:6] for r in rows]
    assert [g[6] for g in got] == pytest.approx([r[6] for r in rows])


@pytest.mark.parametrize("blob", [b"", b"junk", pack_section({1: b"\x00\x01"})[:-3]])
def test_a_damaged_section_is_a_clear_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        Section(blob).records(1)


# ------------------------------------------------------------------------------ the store


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[HistoryStore]:
    s = HistoryStore(tmp_path, wall=clock, deadband=lambda d, p: 0.5, heartbeat=600)
    yield s
    s.close()


def _record(store: HistoryStore, clock: Clock, signal: list[float], commit_every: int = 7) -> None:
    """One reading a second, committed every `commit_every` s, compacted as hours pass."""
    for i, v in enumerate(signal):
        clock.now = T0 + i + 0.5
        store.add([Reading("pump-1", "p", v, Quality.GOOD, T0 + i)])
        if i % commit_every == 0:
            store.write_pending()
            store.compact()
    store.write_pending()


@settings(max_examples=examples(25), deadline=None)
@given(st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=400),
       st.integers(1, 30))  # fmt: skip
def test_the_stored_curve_comes_back_within_the_deadband_and_the_minutes_exact(
    tmp_path_factory: pytest.TempPathFactory, signal: list[float], commit_every: int
) -> None:
    clock = Clock(T0)
    store = HistoryStore(
        tmp_path_factory.mktemp("h"), wall=clock, deadband=lambda d, p: 0.5, heartbeat=600
    )
    _record(store, clock, signal, commit_every)
    end = T0 + len(signal) - 1
    curve = store.query("pump-1", "p", T0, end, max_points=10**6)
    stored = [(x["ts"], x["value"]) for x in curve]
    assert [t for t, _ in stored] == sorted(t for t, _ in stored)
    for i, v in enumerate(signal):
        assert abs(_held(stored, T0 + i) - v) <= 0.5
    clock.now = T0 + 3 * 86400  # past the raw window: answered by minutes
    for minute in range(0, len(signal), 60):  # minutes over every reading, not only the stored
        values = signal[minute : minute + 60]
        (b,) = store.query("pump-1", "p", T0 + minute, T0 + minute + 59, max_points=1)
        assert (b["min"], b["max"], b["count"], b["last"]) == (
            min(values), max(values), len(values), values[-1])  # fmt: skip
        assert b["mean"] == pytest.approx(sum(values) / len(values))
    store.close()


def test_a_flat_hour_is_a_line_from_start_to_end_not_a_gap(
    store: HistoryStore, clock: Clock
) -> None:
    _record(store, clock, [20.0 + (0.1 if i % 2 else 0.0) for i in range(3 * 3600)], 10)
    assert store.samples_stored == 18  # the first, then one every heartbeat (600 s)
    span = store.query("pump-1", "p", T0 + 1000, T0 + 1100)
    assert [x["ts"] for x in span] == [T0 + 1000, T0 + 1100]  # held at both ends
    assert all(abs(x["value"] - 20.0) <= 0.5 for x in span)
    hour = store.query("pump-1", "p", T0 + 3600, T0 + 7199)
    assert len(hour) == 7 and hour[0]["ts"] == T0 + 3600


def test_a_step_is_stored_at_its_own_time(store: HistoryStore, clock: Clock) -> None:
    _record(store, clock, [5.0] * 100 + [9.0] * 100)
    curve = store.query("pump-1", "p", T0, T0 + 199)
    assert [(x["ts"] - T0, x["value"]) for x in curve] == [(0, 5.0), (100, 9.0), (199, 9.0)]


def test_every_reading_is_stored_without_a_deadband(tmp_path: Path, clock: Clock) -> None:
    store = HistoryStore(tmp_path, wall=clock)
    _record(store, clock, [1.0] * 50)
    assert store.samples_stored == 50
    assert len(store.query("pump-1", "p", T0, T0 + 49)) == 50
    store.close()


# ------------------------------------------------------------------------------ from the site

SITE = """
site: {id: bands}
storage: {path: ./state}
console: {enabled: false}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502, timeout: 1s}]
history:
  commit_interval: 5s
  heartbeat: 15m
  deadband_percent: 1
  deadband: {meter-1.voltage_l1: 0.5, energy_meter.voltage_l2: 3, pump-1.flow: 0}
devices:
  - {id: meter-1, template: energy_meter, modbus: {bus: bus, unit: 1}}
  - {id: meter-2, template: energy_meter, modbus: {bus: bus, unit: 2}}
  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 3}}
  - id: tank-1
    modbus: {bus: bus, unit: 9}
    points:
      level: {register: holding, address: 0, type: uint16, scale: 0.1, unit: "%", range: [0, 100]}
      spare: {register: holding, address: 1, type: uint16, deadband: 7}
"""


def test_the_site_file_the_template_and_the_type_give_each_point_its_deadband(
    tmp_path: Path,
) -> None:
    from config.site import load_site
    from gateway.storage.deadbands import site_deadbands

    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site(tmp_path / "site.yaml")
    band = site_deadbands(site)
    assert band("meter-1", "voltage_l1") == 0.5  # device.point in the site file
    assert band("meter-1", "voltage_l2") == band("meter-2", "voltage_l2") == 3  # template.point
    assert band("meter-2", "voltage_l1") == 2.0  # the template's own
    assert band("pump-1", "flow") == 0  # every change
    assert band("tank-1", "level") == pytest.approx(1.0)  # 1 % of its range
    assert band("tank-1", "spare") == 7  # the point's own
    assert band("meter-1", "breaker_tripped") == 0.0  # a bit: every change
    store = HistoryStore.for_site(site)
    assert (store.commit_interval, store.heartbeat) == (5.0, 900.0)
    store.close()


@pytest.mark.parametrize(
    ("history", "error"),
    [
        ("{commit_interval: 10m}", "commit_interval must be between 100ms and 5m"),
        ("{heartbeat: 0s}", "heartbeat must be at least 1s"),
        ("{deadband: {voltage: 1}}", "the key is device.point or template.point"),
    ],
)
def test_bad_history_settings_are_named(tmp_path: Path, history: str, error: str) -> None:
    from config.errors import SiteError
    from config.site import load_site

    (tmp_path / "site.yaml").write_text(
        "site: {id: bad}\nstorage: {path: ./state}\nhistory: " + history + "\n"
    )
    with pytest.raises(SiteError) as caught:
        load_site(tmp_path / "site.yaml")
    assert error in str(caught.value) and "site.yaml:3" in str(caught.value)


def test_an_hour_is_compacted_a_slice_of_series_at_a_time(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.storage.history.compact as history

    monkeypatch.setattr(history, "COMPACT_SLICE", 2)
    store = HistoryStore(tmp_path, wall=clock)
    for i in range(120):
        clock.now = T0 + i + 0.5
        store.add(
            [Reading("pump-1", f"p{k}", float(i * k), Quality.GOOD, T0 + i) for k in range(5)]
        )
        store.write_pending()
    before = {k: store.query("pump-1", f"p{k}", T0, T0 + 119) for k in range(5)}
    clock.now = T0 + 2 * 3600
    assert store.compact() == 10  # five points: their samples and their minutes
    assert store._db.execute("SELECT count(*) FROM block").fetchone()[0] == 0
    for k in range(5):
        assert store.query("pump-1", f"p{k}", T0, T0 + 119) == before[k]
    store.close()


def test_the_writer_folds_readings_each_second_between_commits(tmp_path: Path) -> None:
    import time as clock_time

    store = HistoryStore(tmp_path, commit_interval=60.0, deadband=lambda d, p: 0.5)
    store.start()
    try:
        store.add([Reading("pump-1", "p", 1.0, Quality.GOOD, T0)])
        deadline = clock_time.monotonic() + 10
        while store._buffered and clock_time.monotonic() < deadline:
            clock_time.sleep(0.05)  # a condition, not a fixed wait: the writer's next fold
        assert store._buffered == 0  # folded (readings do not wait for the commit in memory)
        assert store.commits == 0  # and not committed before its interval
    finally:
        store.close()


def test_a_step_not_yet_committed_shows_in_the_trend_at_once(
    store: HistoryStore, clock: Clock
) -> None:
    _record(store, clock, [5.0] * 60)  # committed
    clock.now = T0 + 61
    store.add([Reading("pump-1", "p", 1.0, Quality.GOOD, T0 + 60)])  # the pressure drops
    store._ingest()  # folded by the writer, its commit interval not over yet
    curve = store.query("pump-1", "p", T0, T0 + 60)
    assert [(x["ts"] - T0, x["value"]) for x in curve][-1] == (60, 1.0)  # not 5.0 held on
    store.write_pending()  # committed: the same curve, the step once
    assert store.query("pump-1", "p", T0, T0 + 60) == curve
