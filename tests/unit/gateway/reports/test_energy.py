"""Energy arithmetic (gateway/reports/energy.py), without a network: counters, resets, days, CSV."""

from __future__ import annotations

import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.reports.energy import (
    CSV_HEADER,
    day_windows,
    kwh_by_day,
    parse_month,
    render_csv,
    summarise,
)
from tests.support import examples

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_days_are_site_days() -> None:
    days = day_windows(2026, 11, SHANGHAI)
    assert len(days) == 30 and days[0][0] == "2026-11-01" and days[-1][0] == "2026-11-30"
    # 2026-11-01 00:00 in Shanghai is 2026-10-31 16:00 UTC
    assert days[0][1] == 1793462400.0 and days[0][2] - days[0][1] == 86400


def test_a_reset_counts_nothing_and_the_count_goes_on() -> None:
    days = day_windows(2026, 11, SHANGHAI)
    d1, d2 = days[0][1], days[1][1]
    samples = [(d1 + 10, 1000.0), (d1 + 3600, 1010.0), (d1 + 7200, 2.0), (d1 + 9000, 6.5),
               (d2 + 60, 16.5)]  # fmt: skip
    kwh = kwh_by_day(samples, days)
    assert kwh["2026-11-01"] == pytest.approx(14.5)
    assert kwh["2026-11-02"] == pytest.approx(10.0)  # a gap over midnight: on the day it is seen
    assert sum(kwh.values()) == pytest.approx(24.5)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.floats(0, 1e7, allow_nan=False), max_size=60))
def test_never_negative_and_never_more_than_the_increases(values: list[float]) -> None:
    days = day_windows(2026, 2, SHANGHAI)
    start = days[0][1]
    samples = [(start + i * 3000.0, v) for i, v in enumerate(values)]
    kwh = kwh_by_day(samples, days)
    assert all(v >= 0 for v in kwh.values())
    rises = sum(max(0.0, b - a) for a, b in itertools.pairwise(values))
    assert sum(kwh.values()) == pytest.approx(rises)


def test_night_baseload_against_the_four_weeks_before() -> None:
    days = day_windows(2026, 11, SHANGHAI)[:2]
    first = days[0][1]
    baseline = [(f"b{i}", first - (28 - i) * 86400, first - (27 - i) * 86400) for i in range(28)]
    power = [(b[1] + 3600, 10.0) for b in baseline]  # 01:00 each night before: 10 kW
    power += [(days[0][1] + 3600, 12.0), (days[0][1] + 12 * 3600, 80.0), (days[1][1] + 7200, 13.0)]
    m = summarise("meter-1", [], power, days, baseline)
    assert [d["night_kw"] for d in m["days"]] == [12.0, 13.0]
    assert m["days"][0]["peak_kw"] == 80.0
    assert m["night_kw"] == 12.5 and m["night_baseline_kw"] == 10.0 and m["night_rise_pct"] == 25.0


def test_csv_columns_and_total_rows() -> None:
    days = day_windows(2026, 11, SHANGHAI)
    m = summarise("meter-1", [(days[0][1] + 1, 1.0), (days[0][1] + 99, 3.0)], [], days, [])
    text = render_csv({"meters": [m]})
    lines = text.splitlines()
    assert lines[0].split(",") == CSV_HEADER == ["meter", "day", "kwh", "peak_kw", "night_kw"]
    assert lines[1] == "meter-1,2026-11-01,2.0,,"
    assert lines[-1] == "meter-1,total,2.0,,"
    assert len(lines) == 1 + 30 + 1


def test_bad_month() -> None:
    assert parse_month("2026-02") == (2026, 2)
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month("2026-13")


def test_a_month_of_minute_aggregates_gives_the_known_kwh(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.energy import main

    # 40 kW for 8 hours and 65 kW for 16 hours a day: 1,360 kWh a day, 30 days
    assert main(["--meters", "1", "--repeat", "1"]) == pytest.approx(30 * 1360.0, rel=1e-9)
    assert "best=" in capsys.readouterr().out
