"""Escalation on an injected clock: who is told, how soon, and again until acknowledged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.escalation import Escalator, Notification, Step
from tests.support import examples

POLICY = {
    "critical": [Step(0.0, ("duty",), 300.0), Step(900.0, ("manager",))],
    "high": [Step(600.0, ("duty",), 1800.0)],
}
FIRE = "fire-1.fire_alarm"
PUMP = "pump-1.pump_fault"


def run(
    e: Escalator, start: float, end: float, step: float = 1.0
) -> list[tuple[float, Notification]]:
    out = []
    t = start
    while t <= end:
        out += [(t, n) for n in e.tick(t)]
        t += step
    return out


def test_critical_at_once_then_every_5_minutes_and_the_manager_after_15() -> None:
    e = Escalator(POLICY)
    e.observe(FIRE, "critical", "active_unack", 1, 1000.0)
    sent = run(e, 1000.0, 1000.0 + 1200)
    duty = [(t - 1000, n.repeat) for t, n in sent if n.channels == ("duty",)]
    assert duty == [(0.0, 0), (300.0, 1), (600.0, 2), (900.0, 3), (1200.0, 4)]
    manager = [(t - 1000, n.step) for t, n in sent if n.channels == ("manager",)]
    assert manager == [(900.0, 1)]  # once: that step has no repeat
    assert all(n.alarm_id == FIRE and n.episode == 1 for _, n in sent)


def test_acknowledging_stops_the_repeats() -> None:
    e = Escalator(POLICY)
    e.observe(FIRE, "critical", "active_unack", 1, 0.0)
    assert len(run(e, 0.0, 301.0)) == 2
    e.observe(FIRE, "critical", "active_ack", 1, 301.0)
    assert run(e, 301.0, 5000.0) == [] and e.tracked() == []


def test_high_only_after_10_minutes_unacknowledged() -> None:
    e = Escalator(POLICY)
    e.observe(PUMP, "high", "active_unack", 1, 0.0)
    assert run(e, 0.0, 599.0) == []
    assert [n.channels for _, n in run(e, 600.0, 600.0)] == [("duty",)]
    # acknowledged within 10 minutes: nobody is woken up
    e.observe("pump-2.pump_fault", "high", "active_unack", 1, 0.0)
    e.observe("pump-2.pump_fault", "high", "active_ack", 1, 590.0)
    assert [n.alarm_id for _, n in run(e, 601.0, 2400.0)] == [PUMP]


def test_return_to_normal_shelve_and_suppression_end_it() -> None:
    e = Escalator(POLICY)
    for i, state in enumerate(("rtn_unack", "shelved", "suppressed", "out_of_service", "normal")):
        alarm = f"x-{i}.y"
        e.observe(alarm, "critical", "active_unack", 1, 0.0)
        e.observe(alarm, "critical", state, 1, 0.0)
    assert e.tick(0.0) == [] and e.tracked() == []


def test_a_life_safety_alarm_escalates_until_acknowledged_even_after_it_cleared() -> None:
    e = Escalator(POLICY)
    e.observe(FIRE, "critical", "active_unack", 1, 0.0, life_safety=True)
    assert len(run(e, 0.0, 10.0)) == 1
    e.observe(FIRE, "critical", "rtn_unack", 1, 10.0, life_safety=True)  # cleared, nobody acked
    later = run(e, 11.0, 1000.0)
    assert [(t, n.channels, n.repeat) for t, n in later] == [
        (300.0, ("duty",), 1),
        (600.0, ("duty",), 2),
        (900.0, ("duty",), 3),
        (900.0, ("manager",), 0),
    ]
    e.observe(FIRE, "critical", "normal", 1, 1000.0, life_safety=True)  # acknowledged
    assert run(e, 1000.0, 5000.0) == [] and e.tracked() == []


def test_a_new_episode_starts_afresh_and_the_same_episode_does_not() -> None:
    e = Escalator(POLICY)
    e.observe(FIRE, "critical", "active_unack", 1, 0.0)
    assert len(e.tick(0.0)) == 1
    e.observe(FIRE, "critical", "active_unack", 1, 10.0)  # same episode seen again: no restart
    assert e.tick(10.0) == []
    e.observe(FIRE, "critical", "active_unack", 2, 20.0)
    assert [(n.episode, n.repeat) for n in e.tick(20.0)] == [(2, 0)]


def test_priorities_without_a_policy_are_never_notified() -> None:
    e = Escalator(POLICY)
    e.observe("door-1.door_held_open", "medium", "active_unack", 1, 0.0)
    assert run(e, 0.0, 10_000.0, step=100.0) == []


def test_a_late_tick_sends_once_not_a_burst() -> None:
    e = Escalator(POLICY)
    e.observe(FIRE, "critical", "active_unack", 1, 0.0)
    e.tick(0.0)
    late = e.tick(3000.0)  # the clock stood still for 50 minutes
    assert sorted(n.channels for n in late) == [("duty",), ("manager",)]
    assert e.tick(3000.5) == []
    assert e.next_deadline() == 3300.0


def test_restore_goes_on_from_raised_at_without_resending() -> None:
    e = Escalator(POLICY)
    e.restore(FIRE, "critical", 4, elapsed=420.0, now=5000.0)  # raised 7 minutes ago
    assert e.tick(5000.0) == []  # the immediate message and the 5-min repeat were due before
    sent = run(e, 5000.0, 5000.0 + 600)
    assert [(t - 5000, n.channels, n.repeat) for t, n in sent] == [
        (180.0, ("duty",), 2),  # the 10-minute slot
        (480.0, ("duty",), 3),
        (480.0, ("manager",), 0),  # 15 minutes after raised
    ]


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 400.0), st.sampled_from(["tick", "ack", "raise"]))))
def test_never_a_message_for_an_acknowledged_alarm(events: list[tuple[float, str]]) -> None:
    e = Escalator(POLICY)
    t, episode, unacked = 0.0, 0, False
    for dt, what in events:
        t += dt
        if what == "raise":
            episode += 1
            unacked = True
            e.observe(FIRE, "critical", "active_unack", episode, t)
        elif what == "ack":
            unacked = False
            e.observe(FIRE, "critical", "active_ack", episode, t)
        for n in e.tick(t):
            assert unacked and n.episode == episode


def test_restore_with_what_was_made_neither_resends_nor_forgets() -> None:
    e = Escalator(POLICY)
    # raised 17 minutes ago; before the restart: the first message and the 5-min repeat were
    # made (duty: 2), the manager's step (due at 15 min) fell due while the gateway was down
    e.restore(FIRE, "critical", 4, elapsed=1020.0, now=5000.0, made={0: 2})
    due = e.tick(5000.0)
    assert sorted((n.channels, n.repeat) for n in due) == [(("duty",), 2), (("manager",), 0)]
    assert e.tick(5000.5) == []  # once, not a burst of the missed slots
    assert [(t - 5000, n.repeat) for t, n in run(e, 5001.0, 5300.0)] == [(300.0, 3)]


def test_restore_with_every_step_made_waits_for_the_next_slot() -> None:
    e = Escalator(POLICY)
    e.restore(FIRE, "critical", 1, elapsed=100.0, now=5000.0, made={0: 1})
    assert e.tick(5000.0) == []
    assert [(t - 5000, n.repeat) for t, n in run(e, 5000.0, 5200.0)] == [(200.0, 1)]


@settings(max_examples=examples(100), deadline=None)
@given(
    elapsed=st.floats(0.0, 5000.0),
    made=st.dictionaries(st.sampled_from([0, 1]), st.integers(0, 20), max_size=2),
)
def test_restore_never_repeats_a_message_already_made(elapsed: float, made: dict[int, int]) -> None:
    e = Escalator(POLICY)
    e.restore(FIRE, "critical", 1, elapsed=elapsed, now=10_000.0, made=made)
    for _, n in run(e, 10_000.0, 12_000.0, step=10.0):
        assert n.repeat >= made.get(n.step, 0)
        if n.step == 1:  # no repeat: made once is done
            assert made.get(1, 0) == 0
