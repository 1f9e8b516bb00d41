"""Plan scheduling on the site's wall clock: cron, calendar periods, month ends, leap years,
Asia/Shanghai (no DST) and Europe/Berlin (DST), lead times, whichever-first, and the forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground.cron import Cron, CronError
from rules.maintenance import plans as planning
from rules.maintenance.calendar import (
    Period,
    add_months,
    end_of_day,
    local_date,
    month_bounds,
    next_morning,
)
from tests.support import examples

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def ts(zone: ZoneInfo, *args: int) -> float:
    return at(zone, *args).timestamp()


# ---------------------------------------------------------------------------------- calendar


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 5, 31), -3, date(2026, 2, 28)),
    ],
)
def test_months_clamp_to_the_end_of_the_month(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


def test_periods_parse_and_add() -> None:
    assert Period.parse("15d").add_to(date(2026, 2, 20)) == date(2026, 3, 7)
    assert Period.parse("2w").add_to(date(2026, 12, 25)) == date(2027, 1, 8)
    assert Period.parse("1y").add_to(date(2028, 2, 29)) == date(2029, 2, 28)
    assert Period.parse("3mo").add_to(date(2026, 11, 30)) == date(2027, 2, 28)
    for bad in ("0d", "15", "1h", "mo", "-1d"):
        with pytest.raises(ValueError, match="calendar period"):
            Period.parse(bad)


@given(st.dates(date(2000, 1, 1), date(2100, 12, 31)), st.integers(-240, 240))
def test_adding_months_lands_in_the_right_month_never_past_its_end(day: date, months: int) -> None:
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == day.day or (result.day < day.day and (result + timedelta(1)).day == 1)


def test_a_date_ends_at_local_midnight_in_both_zones_even_across_dst() -> None:
    assert end_of_day(date(2026, 11, 16), SHANGHAI) == ts(UTC, 2026, 11, 16, 16)
    # 29 March 2026: Berlin springs forward; the day is 23 hours long and ends at 22:00 UTC
    assert end_of_day(date(2026, 3, 29), BERLIN) == ts(UTC, 2026, 3, 29, 22)
    # 25 October 2026: falls back; 25 hours, ends at 23:00 UTC
    assert end_of_day(date(2026, 10, 25), BERLIN) == ts(UTC, 2026, 10, 25, 23)


def test_month_bounds_are_local() -> None:
    start, end = month_bounds("2026-11", SHANGHAI)
    assert start == ts(UTC, 2026, 10, 31, 16) and end == ts(UTC, 2026, 11, 30, 16)
    start, end = month_bounds("2026-03", BERLIN)
    assert end - start == 31 * 86400 - 3600  # one hour lost to DST
    for bad in ("2026-13", "2026-1", "Nov"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds(bad, BERLIN)


def test_next_morning_leaves_a_night_for_the_work() -> None:
    eight = time(8, 0)
    night = 8 * 3600
    # reported at 15:00: due 08:00 next day; at 23:00: 08:00 next day (9 hours)
    assert next_morning(ts(SHANGHAI, 2026, 11, 5, 15), SHANGHAI, eight, night) == ts(
        SHANGHAI, 2026, 11, 6, 8
    )
    assert next_morning(ts(SHANGHAI, 2026, 11, 5, 23), SHANGHAI, eight, night) == ts(
        SHANGHAI, 2026, 11, 6, 8
    )
    # at 02:00 the morning six hours away is too soon: the day after
    assert next_morning(ts(SHANGHAI, 2026, 11, 5, 2), SHANGHAI, eight, night) == ts(
        SHANGHAI, 2026, 11, 6, 8
    )
    # Berlin, the night the clocks go forward: still 08:00 local
    due = next_morning(ts(BERLIN, 2026, 3, 28, 18), BERLIN, eight, night)
    assert datetime.fromtimestamp(due, BERLIN) == at(BERLIN, 2026, 3, 29, 8)


# ---------------------------------------------------------------------------------- cron


def test_cron_grammar() -> None:
    cron = Cron.parse("*/15 8-17/3 1,15 jan-mar mon-fri")
    assert cron.minutes == {0, 15, 30, 45} and cron.hours == {8, 11, 14, 17}
    assert cron.days == {1, 15} and cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert Cron.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert Cron.parse("5/20 * * * *").minutes == {5, 25, 45}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * *", "five fields"),
        ("60 * * * *", "minute: 60 is outside 0..59"),
        ("0 24 * * *", "hour: 24 is outside 0..23"),
        ("0 0 0 * *", "day of month: 0"),
        ("0 0 * 13 *", "month: 13"),
        ("0 0 * foo *", "month: 'foo' is not a number or a name"),
        ("0 0 * * 8", "weekday: 8"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty list item"),
    ],
)
def test_cron_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(text)


def test_cron_in_shanghai_month_ends_and_leap_days() -> None:
    cron = Cron.parse("0 9 31 * *")  # only months with 31 days
    assert cron.next_after(at(SHANGHAI, 2026, 3, 31, 10), SHANGHAI) == at(SHANGHAI, 2026, 5, 31, 9)
    leap = Cron.parse("30 6 29 2 *")
    assert leap.next_after(at(SHANGHAI, 2026, 1, 1), SHANGHAI) == at(SHANGHAI, 2028, 2, 29, 6, 30)
    monthly = Cron.parse("0 8 1 * *")
    after = at(UTC, 2026, 11, 30, 23, 59)  # already 1 Dec 07:59 in Shanghai
    assert monthly.next_after(after, SHANGHAI) == at(SHANGHAI, 2026, 12, 1, 8)
    with pytest.raises(CronError, match="never fires"):
        Cron.parse("0 0 31 2 *").next_after(at(SHANGHAI, 2026, 1, 1), SHANGHAI)


def test_cron_or_semantics_when_day_and_weekday_are_both_restricted() -> None:
    cron = Cron.parse("0 7 13 * fri")  # the 13th, or any Friday
    first = cron.next_after(at(SHANGHAI, 2026, 11, 1), SHANGHAI)
    assert first == at(SHANGHAI, 2026, 11, 6, 7)  # Friday 6 November comes before the 13th
    second = cron.next_after(first, SHANGHAI)
    assert second == at(SHANGHAI, 2026, 11, 13, 7)


def test_cron_across_berlin_dst() -> None:
    daily = Cron.parse("30 2 * * *")
    # spring forward: 02:30 does not exist on 29 March 2026; it fires at 03:30 CEST (01:30 UTC)
    fire = daily.next_after(at(BERLIN, 2026, 3, 28, 12), BERLIN)
    assert fire.astimezone(UTC) == at(UTC, 2026, 3, 29, 1, 30)
    # fall back: 02:30 happens twice on 25 October; fired once, the first time (00:30 UTC)
    fire = daily.next_after(at(BERLIN, 2026, 10, 24, 12), BERLIN)
    assert fire.astimezone(UTC) == at(UTC, 2026, 10, 25, 0, 30)
    following = daily.next_after(fire, BERLIN)
    assert following.astimezone(UTC) == at(UTC, 2026, 10, 26, 1, 30)
    # the hourly job is hourly in UTC terms through the fold
    hourly = Cron.parse("0 * * * *")
    t = at(UTC, 2026, 10, 24, 23, 30)
    seen = []
    for _ in range(5):
        t = hourly.next_after(t, BERLIN)
        seen.append(t.astimezone(UTC).hour)
    assert seen == [0, 2, 3, 4, 5]  # 02:00 CEST (00:00Z); 02:00 CET (01:00Z) repeats: skipped


@settings(max_examples=examples(200))
@given(
    st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31)),
    st.sampled_from(["0 8 * * *", "*/30 * * * *", "0 9 1 * *", "15 2 * * sun", "0 0 29 2 *"]),
    st.sampled_from([SHANGHAI, BERLIN]),
)
def test_cron_next_is_strictly_later_and_matches(
    naive: datetime, text: str, zone: ZoneInfo
) -> None:
    cron = Cron.parse(text)
    start = naive.replace(tzinfo=UTC)
    fire = cron.next_after(start, zone)
    assert fire.astimezone(UTC) > start
    local = fire.astimezone(zone)
    assert cron.matches_day(local.date())
    if local.replace(tzinfo=None) == datetime.combine(local.date(), local.time()):
        assert local.minute in cron.minutes


# ---------------------------------------------------------------------------------- plans


def spec(**fields: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "id": "p", "every": None, "cron": None, "every_run_hours": None, "every_count": None,
        "urgency": "normal", "lead": None, "window": None,
    }  # fmt: skip
    base.update(fields)
    return SimpleNamespace(**base)


def test_every_month_from_the_31st_and_lead_time_in_shanghai() -> None:
    schedule = planning.Schedule.from_spec(spec(every="1mo"))
    now = ts(SHANGHAI, 2027, 1, 31, 10)
    state = planning.start(schedule, now, SHANGHAI, None)
    assert state.calendar_due == end_of_day(date(2027, 2, 28), SHANGHAI)
    opens = schedule.open_at(state.calendar_due, SHANGHAI)
    assert opens == ts(SHANGHAI, 2027, 2, 26)  # three days before the 28th ends
    assert planning.check(schedule, state, opens - 1, SHANGHAI, None) is None
    trigger = planning.check(schedule, state, opens, SHANGHAI, None)
    assert (
        trigger is not None and trigger.reason == "calendar" and trigger.due == state.calendar_due
    )
    planning.opened(state, 7)
    assert planning.check(schedule, state, opens + 86400 * 30, SHANGHAI, None) is None
    done = ts(SHANGHAI, 2027, 2, 27, 15)
    planning.complete(schedule, state, done, SHANGHAI, None, "li", "resolved")
    assert state.calendar_due == end_of_day(date(2027, 3, 27), SHANGHAI)
    assert state.open_ticket is None and state.last_ticket == 7 and state.last_done_by == "li"


def test_lead_opens_on_local_midnight_across_dst_in_berlin() -> None:
    schedule = planning.Schedule.from_spec(spec(every="15d"))
    due = end_of_day(date(2026, 3, 30), BERLIN)  # 31 Mar 00:00 CEST
    opens = schedule.open_at(due, BERLIN)
    assert datetime.fromtimestamp(opens, BERLIN) == at(BERLIN, 2026, 3, 28)  # still CET then
    short = planning.Schedule.from_spec(spec(every="1w", lead=86400))
    assert short.lead_for(due, BERLIN) == 86400


def test_cron_plan_moves_to_the_next_fire_after_the_work() -> None:
    schedule = planning.Schedule.from_spec(spec(cron="0 9 1 * *"))
    state = planning.start(schedule, ts(SHANGHAI, 2026, 11, 5), SHANGHAI, None)
    assert state.calendar_due == ts(SHANGHAI, 2026, 12, 1, 9)
    # a month between fires: lead = min(3 days, a fifth of the month)
    assert schedule.lead_for(state.calendar_due, SHANGHAI) == 3 * 86400
    planning.opened(state, 1)
    planning.complete(schedule, state, ts(SHANGHAI, 2027, 1, 3), SHANGHAI, None, "li", "resolved")
    assert state.calendar_due == ts(SHANGHAI, 2027, 2, 1, 9)  # January's fire was missed: skipped


def test_meter_plan_thresholds_align_then_float_from_the_work() -> None:
    schedule = planning.Schedule.from_spec(spec(every_run_hours=2000))
    now = ts(SHANGHAI, 2026, 11, 1)
    state = planning.start(schedule, now, SHANGHAI, None)
    assert state.threshold is None  # the meter is not known yet
    assert planning.check(schedule, state, now, SHANGHAI, 1999.9) is None
    assert state.threshold == 2000
    trigger = planning.check(schedule, state, now + 60, SHANGHAI, 2000.1)
    assert trigger is not None and trigger.reason == "meter"
    assert trigger.due == now + 60 + planning.DEFAULT_WINDOW
    planning.opened(state, 3)
    planning.complete(schedule, state, now + 86400, SHANGHAI, 2012.5, "wang", "resolved")
    assert state.threshold == 4012.5


def test_whichever_comes_first() -> None:
    schedule = planning.Schedule.from_spec(spec(every="1y", every_run_hours=2000))
    assert schedule.describe() == "every 1y or every 2000 run_hours (whichever first)"
    now = ts(SHANGHAI, 2026, 1, 1)
    state = planning.start(schedule, now, SHANGHAI, 100.0)
    trigger = planning.check(schedule, state, now + 86400, SHANGHAI, 2000.0)
    assert trigger is not None and trigger.reason == "meter"
    state2 = planning.start(schedule, now, SHANGHAI, 100.0)
    late = ts(SHANGHAI, 2026, 12, 31)
    trigger = planning.check(schedule, state2, late, SHANGHAI, 500.0)
    assert trigger is not None and trigger.reason == "calendar"
    # a meter trigger just before the calendar due is due no later than the calendar says
    state3 = planning.start(schedule, now, SHANGHAI, 100.0)
    trigger = planning.check(schedule, state3, ts(SHANGHAI, 2026, 12, 28), SHANGHAI, 2000.0)
    assert trigger is not None and trigger.reason == "meter"
    assert trigger.due == state3.calendar_due


def test_forecast_from_the_meters_recent_rate() -> None:
    schedule = planning.Schedule.from_spec(spec(every="1y", every_run_hours=2000))
    now = ts(SHANGHAI, 2026, 11, 1)
    state = planning.start(schedule, now, SHANGHAI, 1800.0)
    rate = 12 / 86400  # twelve run hours a day
    due, why = planning.forecast(schedule, state, now, 1800.0, rate)
    assert why == "meter forecast" and due == pytest.approx(now + 200 / 12 * 86400)
    due, why = planning.forecast(schedule, state, now, 1800.0, None)
    assert why == "calendar" and due == state.calendar_due
    due, why = planning.forecast(schedule, state, now, 1800.0, 0.01 / 86400)
    assert why == "calendar"  # a slow meter: the calendar wins
    assert local_date(due, SHANGHAI) == date(2027, 11, 2)
