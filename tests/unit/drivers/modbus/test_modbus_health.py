"""comm_loss as a state machine: N failed polls or T seconds, reported once per flip."""

from __future__ import annotations

from drivers.modbus.health import DeviceHealth, HealthChange


def test_first_answer_is_reported_once() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=0.0)
    assert h.online is None
    assert h.record_ok(1.0, wall=1000.0, duration=0.02) == HealthChange(True, "first answer")
    assert h.record_ok(2.0, wall=1001.0) is None
    assert h.stats().online is True
    assert h.stats().last_seen == 1001.0


def test_offline_after_three_failed_polls_then_once_only() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=0.0)
    h.record_ok(0.0)
    assert h.record_failure(1.0, "timeout") is None
    assert h.record_failure(2.0, "timeout") is None
    change = h.record_failure(3.0, "timeout")
    assert change is not None and change.online is False
    assert "3 polls" in change.reason and "timeout" in change.reason
    assert [h.record_failure(t, "timeout") for t in (4.0, 5.0, 50.0)] == [None, None, None]
    recovered = h.record_ok(60.0)
    assert recovered == HealthChange(True, "answers again")
    assert h.record_ok(61.0) is None


def test_offline_after_time_without_answer_even_before_three_polls() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=0.0)
    h.record_ok(0.0)
    assert h.record_failure(9.9, "refused") is None
    change = h.record_failure(10.0, "refused")
    assert change is not None and change.online is False and "10.0s" in change.reason


def test_slow_poll_interval_alone_is_no_loss() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=0.0)
    h.record_ok(0.0)
    assert h.check(100.0) is None  # nothing failed: the device is simply polled every 30 s
    assert h.record_ok(100.0) is None


def test_check_applies_the_timer_between_attempts() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=0.0)
    h.record_ok(0.0)
    h.record_failure(1.0, "timeout")
    assert h.check(5.0) is None
    assert h.check(10.5) == HealthChange(False, "no answer for 10.5s: timeout")
    assert h.check(20.0) is None


def test_never_answered_device_goes_offline_from_start() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=100.0)
    h.record_failure(101.0, "refused")
    h.record_failure(102.0, "refused")
    change = h.record_failure(103.0, "refused")
    assert change is not None and change.online is False


def test_counters() -> None:
    h = DeviceHealth(polls=2, after=10.0, now=0.0)
    h.record_ok(1.0, wall=500.0, duration=0.05, errors=2)  # answered, with two error answers
    h.record_failure(2.0, "timeout", duration=1.0)
    s = h.stats()
    assert (s.polls, s.errors, s.last_seen, s.last_poll_seconds) == (2, 3, 500.0, 1.0)
    assert s.last_error == "timeout"


def test_timer_of_an_unheard_device_runs_from_start_of_polling() -> None:
    h = DeviceHealth(polls=3, after=10.0, now=0.0)  # built long before the driver started
    h.start(100.0)
    assert h.record_failure(101.0, "timeout") is None  # 1 s since start, not 101 s
    assert h.record_failure(110.5, "timeout") == HealthChange(False, "no answer for 10.5s: timeout")
