"""Night baseload figures and verdicts (gateway/baseload.py): nights, gaps, the reference, the rule.

Pure functions on plain minutes, then the same over a real history file written through the
store's own write path (`bench.baseload.store_history`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.baseload import minute_readings, store_history
from config.models import BaseloadRise
from gateway.baseload import (
    MAX_SILENT,
    REFERENCE_NIGHTS,
    MinuteMean,
    Night,
    evaluate,
    judge,
    latest_night,
    night,
    night_kw,
    reference_nights,
)
from gateway.storage.history import HistoryStore
from tests.support import examples

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 14)


def full(span: Night, kw: float, missing: range | tuple[int, ...] = ()) -> list[MinuteMean]:
    """The night's 300 minutes at `kw`, but the minutes listed as missing."""
    return [(span.start + 60 * i, kw) for i in range(300) if i not in missing]


def test_a_night_is_midnight_to_five_in_site_time() -> None:
    span = night(DAY, SHANGHAI)
    assert span.start == datetime(2026, 11, 13, 16, 0, tzinfo=UTC).timestamp()
    assert span.end - span.start == 5 * 3600
    refs = reference_nights(DAY, SHANGHAI)
    assert len(refs) == REFERENCE_NIGHTS == 28
    assert refs[0].day == DAY - timedelta(days=1) and refs[-1].day == DAY - timedelta(days=28)


def test_the_latest_night_is_judged_once_it_has_settled() -> None:
    five = night(DAY, SHANGHAI).end
    assert latest_night(five + 299, SHANGHAI, 300) == DAY - timedelta(days=1)
    assert latest_night(five + 300, SHANGHAI, 300) == DAY
    assert latest_night(five + 18 * 3600, SHANGHAI, 300) == DAY  # 23:00 the same day


def test_each_minute_weighs_the_same() -> None:
    span = night(DAY, SHANGHAI)
    minutes = [(span.start + 60 * i, 2.0 if i < 150 else 6.0) for i in range(300)]
    assert night_kw(minutes, span) == 4.0
    outside = [(span.start - 60, 100.0), (span.end, 100.0)]  # 23:59 the day before, 05:00
    assert night_kw(minutes + outside, span) == 4.0


@pytest.mark.parametrize(
    ("missing", "counts"),
    [
        ((), True),
        (range(100, 115), True),  # 15 minutes silent: MAX_SILENT exactly
        (range(100, 116), False),  # 16 minutes
        (range(0, 16), False),  # from midnight
        (range(284, 300), False),  # up to five
        ((*range(10, 16), *range(50, 56), *range(90, 96)), False),  # three gaps of 6 minutes
        (range(300), False),  # nothing at all
    ],
)
def test_a_night_with_gaps_does_not_count(missing: range | tuple[int, ...], counts: bool) -> None:
    assert MAX_SILENT == 900.0
    span = night(DAY, SHANGHAI)
    assert (night_kw(full(span, 3.0, missing), span) == 3.0) is counts


def test_a_meter_polled_every_five_minutes_has_no_gaps_by_design() -> None:
    span = night(DAY, SHANGHAI)
    sparse = [(span.start + 240 + 300 * i, 3.0) for i in range(60)]  # a reading at hh:m4:xx
    assert night_kw(sparse, span, spacing=300) == 3.0
    assert night_kw(sparse, span, spacing=60) is None  # read as a 1 s meter, it is full of gaps


def nights(kw: float, n: int = REFERENCE_NIGHTS) -> list[float | None]:
    return [kw] * n


# the verdict: (tonight, reference nights, rule options) -> risen, or None and why
JUDGED = [
    (5.3, nights(4.0), {}, True, ""),
    (5.2, nights(4.0), {}, False, ""),  # 1.3 x 4.0 exactly: within the ratio
    (5.21, nights(4.0), {}, True, ""),
    (5.3, nights(4.0), {"ratio": 1.5}, False, ""),
    (0.8, nights(0.5), {}, True, ""),
    (0.8, nights(0.5), {"min_kw": 1.0}, False, ""),  # too small to matter
    (1.0, nights(0.5), {"min_kw": 1.0}, True, ""),
    (0.1, nights(-2.0), {}, True, ""),  # exporting at night before: the reference counts as 0
    (None, nights(4.0), {}, None, "the night has gaps"),
    (9.0, [4.0] * 13 + [None] * 15, {}, None, "13 reference nights, 14 needed"),
    (9.0, [4.0] * 14 + [None] * 14, {}, True, ""),
    (9.0, [4.0] * 3, {"min_nights": 3}, True, ""),
    (9.0, [], {"min_nights": 1}, None, "0 reference nights, 1 needed"),
]


@pytest.mark.parametrize(("tonight", "refs", "options", "risen", "why"), JUDGED)
def test_the_verdict(
    tonight: float | None,
    refs: list[float | None],
    options: dict[str, float],
    risen: bool | None,
    why: str,
) -> None:
    verdict = judge("meter-1", DAY, tonight, refs, BaseloadRise.model_validate(options))
    assert (verdict.risen, verdict.why) == (risen, why)
    assert verdict.night == "2026-11-14" and verdict.nights == sum(r is not None for r in refs)


def test_the_reference_is_the_mean_of_the_nights_that_count() -> None:
    verdict = judge("m", DAY, 6.0, [4.0] * 20 + [5.0] * 4 + [None] * 4, BaseloadRise())
    assert verdict.reference_kw == pytest.approx(100 / 24)
    assert verdict.times == pytest.approx(6.0 / (100 / 24))
    assert verdict.nights == 24 and verdict.risen is True


# ------------------------------------------------------------------------------ properties


@st.composite
def night_minutes(draw: st.DrawFn, span: Night, lo: float, hi: float) -> list[MinuteMean]:
    """A night's minutes, each in [lo, hi], with or without a gap of any length."""
    a, b = draw(st.floats(lo, hi)), draw(st.floats(lo, hi))
    period = draw(st.integers(1, 7))
    gap_at = draw(st.integers(0, 299))
    gap = draw(st.sampled_from([0, 0, 5, 15, 16, 60, 300]))
    return [
        (span.start + 60 * i, a if (i // period) % 2 else b)
        for i in range(300)
        if not gap_at <= i < gap_at + gap
    ]


@settings(max_examples=examples(150), deadline=None)
@given(
    lo=st.floats(0.0, 500.0),
    ratio=st.floats(1.01, 3.0),
    min_kw=st.sampled_from([0.0, 0.5, 10.0]),
    min_nights=st.integers(1, 28),
    data=st.data(),
)
def test_never_raised_when_every_night_is_within_the_ratio(
    lo: float, ratio: float, min_kw: float, min_nights: int, data: st.DataObject
) -> None:
    """Whatever the gaps, weekdays or levels: nights that all lie within `ratio` of each other
    never raise, so the alarm stays normal through every night judged."""
    rule = BaseloadRise(ratio=ratio, min_kw=min_kw, min_nights=min_nights)
    hi = lo * ratio
    days = [DAY + timedelta(days=k) for k in range(-REFERENCE_NIGHTS, 5)]
    kw = {
        d: night_kw(data.draw(night_minutes(night(d, SHANGHAI), lo, hi)), night(d, SHANGHAI))
        for d in days
    }
    for d in days[REFERENCE_NIGHTS:]:
        refs = [kw[r.day] for r in reference_nights(d, SHANGHAI)]
        assert judge("m", d, kw[d], refs, rule).risen is not True


@settings(max_examples=examples(150), deadline=None)
@given(
    refs=st.lists(st.one_of(st.none(), st.floats(0.0, 500.0)), min_size=28, max_size=28),
    ratio=st.floats(1.01, 3.0),
    above=st.floats(1.001, 10.0),
)
def test_always_raised_above_the_ratio_of_the_highest_night(
    refs: list[float | None], ratio: float, above: float
) -> None:
    """The converse: with enough nights that count, a night above `ratio` times every one of
    them (and above `min_kw`) raises."""
    counted = [r for r in refs if r is not None]
    tonight = max([*counted, 0.0]) * ratio * above + 0.01
    verdict = judge("m", DAY, tonight, refs, BaseloadRise(ratio=ratio, min_nights=1))
    assert verdict.risen is (True if counted else None)


# ------------------------------------------------------------------------------ stored history


def test_stored_minutes_give_the_known_verdict(tmp_path: Path) -> None:
    """Five weeks through the store's write path: weekday nights 4 kW, weekend nights 4.5 kW, a
    night with an hour missing (and 40 kW in the rest of it) that must not count, 40 kW by day,
    then 5.6 kW on the night judged: the reference is exact, the verdict known."""
    first = DAY - timedelta(days=REFERENCE_NIGHTS)
    gapped = DAY - timedelta(days=7)

    def kw(_meter: str, ts: float) -> float:
        local = datetime.fromtimestamp(ts, SHANGHAI)
        if local.hour >= 5:
            return 40.0
        if local.date() == gapped:
            return 40.0
        if local.date() == DAY:
            return 5.6
        return 4.5 if local.weekday() >= 5 else 4.0

    gap = night(gapped, SHANGHAI)
    readings = [
        r
        for r in minute_readings(["meter-1"], first, REFERENCE_NIGHTS + 1, kw)
        if not gap.start + 3600 <= r.ts < gap.start + 7200
    ]
    store_history(tmp_path, readings)
    store = HistoryStore(tmp_path)
    try:
        verdict = evaluate(store, "meter-1", DAY, SHANGHAI, BaseloadRise())
        weekend = sum((DAY - timedelta(days=k)).weekday() >= 5 for k in range(1, 29) if k != 7)
        assert verdict.nights == 27
        assert verdict.reference_kw == pytest.approx((4.0 * (27 - weekend) + 4.5 * weekend) / 27)
        assert verdict.night_kw == pytest.approx(5.6)
        assert verdict.risen is True
        within = evaluate(store, "meter-1", DAY, SHANGHAI, BaseloadRise(ratio=1.5))
        assert within.risen is False
        assert evaluate(store, "meter-9", DAY, SHANGHAI, BaseloadRise()).risen is None
    finally:
        store.close()


def test_the_bench_judges_its_known_night(capsys: pytest.CaptureFixture[str]) -> None:
    """`bench.baseload` (figures in docs/performance.md) still runs and judges what it built:
    20 weekday nights at 4 kW and 8 weekend nights at 4.5 kW, then 5.5 kW."""
    from bench.baseload import main

    (verdict,) = main(["--meters", "1", "--repeat", "1"])
    assert verdict.reference_kw == pytest.approx((20 * 4.0 + 8 * 4.5) / 28)
    assert (verdict.night_kw, verdict.nights, verdict.risen) == (5.5, 28, True)
    assert "best=" in capsys.readouterr().out
