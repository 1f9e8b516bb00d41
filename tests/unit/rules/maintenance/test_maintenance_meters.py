"""Meters: device counters followed through resets, rollovers, glitches and restarts; run hours
and starts the gateway keeps from `running`; the recent rate for forecasts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.maintenance.meters import (
    MAX_RUN_GAP,
    CounterMeter,
    MeterKind,
    RunHoursMeter,
    StartsMeter,
    restore_meter,
)

UINT16 = 65536.0


def fed(meter: CounterMeter, values: list[float], step: float = 10.0) -> CounterMeter:
    for i, value in enumerate(values):
        meter.feed(value, 1000.0 + i * step)
    return meter


def test_a_new_meter_starts_at_the_devices_counter_and_follows_it() -> None:
    meter = fed(CounterMeter("starts"), [120, 121, 121, 125])
    assert meter.total == 125 and meter.resets == meter.glitches == 0


def test_a_reset_is_counted_from_zero_after_confirmation() -> None:
    meter = fed(CounterMeter("starts"), [500, 502, 3, 4, 6])
    assert meter.total == 502 + 6 and meter.resets == 1


def test_a_rollover_counts_the_wrap() -> None:
    meter = fed(CounterMeter("door_cycles", modulus=UINT16), [65530, 65534, 2, 5])
    assert meter.total == 65534 + (UINT16 - 65534) + 5 and meter.rollovers == 1


def test_a_single_glitch_never_counts() -> None:
    meter = fed(CounterMeter("starts"), [100, 101, 9_999_999, 102, 103])
    assert meter.total == 103 and meter.glitches == 1
    meter = fed(CounterMeter("starts"), [100, 101, 0, 102])  # a zero read between two good ones
    assert meter.total == 102 and meter.resets == 0


def test_a_confirmed_jump_up_counts() -> None:
    meter = CounterMeter("run_hours", kind=MeterKind.HOURS)
    for i, value in enumerate([0.0, 0.0, 1999.9, 1999.9, 2000.1, 2000.1]):
        meter.feed(value, 1000.0 + i * 0.2)
    # 0 -> 1999.9 in 0.2 s is held until confirmed; +0.2 h is within the counter's resolution
    assert meter.total == pytest.approx(2000.1) and meter.jumps == 1


def test_run_hours_faster_than_the_clock_are_held() -> None:
    meter = CounterMeter("run_hours", kind=MeterKind.HOURS)
    meter.feed(10.0, 0.0)
    meter.feed(10.1, 60.0)  # within the 0.2 h resolution slack
    assert meter.total == pytest.approx(10.1)
    meter.feed(15.0, 120.0)  # five hours in a minute: held
    assert meter.total == pytest.approx(10.1) and meter.pending == 15.0


def test_energy_has_no_ceiling_but_still_survives_a_reset() -> None:
    meter = fed(CounterMeter("energy_import", kind=MeterKind.ENERGY), [1000.0, 5000.0, 1.0, 2.0])
    assert meter.total == 5000 + 2 and meter.resets == 1


def test_restart_goes_on_from_the_stored_record() -> None:
    meter = fed(CounterMeter("starts"), [10, 11, 12])
    record = json.loads(json.dumps(meter.record()))
    again = restore_meter(record, CounterMeter("starts"))
    again.feed(13, 2000.0)
    assert again.total == 13
    again.feed(0, 2010.0)  # the controller was reset while we were down…
    again.feed(2, 2020.0)
    assert again.total == 15  # …counted from zero, never a plan-firing jump
    other = restore_meter(record, RunHoursMeter("run_hours"))
    assert other.total is None  # a record of another kind is not forced onto a meter


def test_gateway_run_hours_count_time_running_and_not_outages() -> None:
    meter = RunHoursMeter("run_hours")
    meter.feed(False, 0.0)
    meter.feed(True, 10.0)
    meter.feed(True, 3610.0)  # an hour later, but a gap: only MAX_RUN_GAP counts
    assert meter.total == pytest.approx(MAX_RUN_GAP / 3600)
    for i in range(1, 61):
        meter.feed(True, 3610.0 + i * 30)
    meter.feed(False, 3610.0 + 61 * 30)
    meter.feed(False, 3610.0 + 62 * 30)
    assert meter.total == pytest.approx(MAX_RUN_GAP / 3600 + 61 * 30 / 3600)
    meter.feed(True, 100.0)  # a reading from the past moves nothing
    assert meter.total == pytest.approx(MAX_RUN_GAP / 3600 + 61 * 30 / 3600)


def test_gateway_starts_count_rising_edges_and_survive_restart() -> None:
    meter = StartsMeter("starts")
    for i, running in enumerate([True, True, False, True, False, False, True]):
        meter.feed(running, float(i))
    assert meter.total == 2  # the first reading is not an edge: we did not see it start
    again = restore_meter(json.loads(json.dumps(meter.record())), StartsMeter("starts"))
    again.feed(True, 10.0)  # still running after the restart: no new start
    again.feed(False, 11.0)
    again.feed(True, 12.0)
    assert again.total == 3


def test_rate_over_the_recent_week() -> None:
    meter = CounterMeter("run_hours", kind=MeterKind.HOURS)
    assert meter.rate() is None
    for hour in range(0, 48):
        meter.feed(100.0 + hour * 0.5, hour * 3600.0)  # half an hour per hour
    assert meter.rate() == pytest.approx(0.5 / 3600)
    assert len(meter.samples.points) <= 48


@given(
    st.lists(
        st.one_of(
            st.integers(0, 3),  # ordinary increments
            st.just(-1),  # a reset
            st.integers(10**6, 10**9),  # a glitch
        ),
        max_size=60,
    )
)
def test_total_never_goes_down_and_equals_the_increments_without_disturbances(
    steps: list[int],
) -> None:
    meter = CounterMeter("starts", modulus=2.0**32)
    raw, previous = 1000, None
    plain = all(0 <= s <= 3 for s in steps)
    for i, step in enumerate([0, *steps]):
        if step == -1:
            raw = 0
            value = raw
        elif step >= 10**6:
            value = step  # a one-off garbage read; the counter itself goes on
        else:
            raw += step
            value = raw
        meter.feed(value, 1000.0 + i * 10)
        assert meter.total is not None
        if previous is not None:
            assert meter.total >= previous
        previous = meter.total
    if plain:
        assert meter.total == raw
