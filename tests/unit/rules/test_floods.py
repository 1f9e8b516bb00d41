"""Chattering latch and flood detection, pure, on a fake clock."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.engine import ConditionChange
from rules.floods import (
    Activations,
    ChatterFilter,
    ChatterSettings,
    FloodDetector,
    FloodSettings,
)
from tests.support import examples

A = "pump-1.pump_fault"
WALL0 = 1_800_000_000.0


def change(active: bool, at: float, alarm_id: str = A, suppressed: bool = False) -> ConditionChange:
    device, rule = alarm_id.split(".")
    return ConditionChange(
        alarm_id=alarm_id,
        device=device,
        rule=rule,
        active=active,
        suppressed=suppressed,
        value=None,
        values={},
        ts_wall=WALL0 + at,
        reason="condition true" if active else "condition cleared",
    )


def flips(f: ChatterFilter, n: int, start: float, every: float = 1.0) -> list[ConditionChange]:
    """n on/off cycles; returns what the book would see."""
    seen: list[ConditionChange] = []
    t = start
    for _ in range(n):
        seen += f.filter([change(True, t)], t)[0]
        t += every / 2
        seen += f.filter([change(False, t)], t)[0]
        t += every / 2
    return seen


def test_below_the_threshold_everything_passes() -> None:
    f = ChatterFilter(ChatterSettings(activations=3, window=60, quiet=10))
    seen = flips(f, 3, 0.0)
    assert [c.active for c in seen] == [True, False] * 3
    assert f.chattering() == []


def test_more_than_n_activations_latches_until_quiet() -> None:
    f = ChatterFilter(ChatterSettings(activations=3, window=60, quiet=10))
    flips(f, 3, 0.0)
    passed, flags = f.filter([change(True, 3.0)], 3.0)  # the 4th activation within 60 s
    assert [c.active for c in passed] == [True] and [(x.alarm_id, x.on) for x in flags] == [
        (A, True)
    ]
    assert "4 activations" in flags[0].reason
    # flips while latched: the book sees nothing, the alarm is held active
    for t in (3.5, 4.0, 4.5, 5.0, 5.5):
        passed, flags = f.filter([change(t in (4.0, 5.0), t)], t)
        assert passed == [] and flags == []
    assert f.tick(15.4, WALL0 + 15.4) == ([], [])  # 9.9 s calm: still latched
    released, flags = f.tick(15.5, WALL0 + 15.5)
    assert [(c.active, c.ts_wall) for c in released] == [(False, WALL0 + 15.5)]
    assert "held while chattering" in released[0].reason
    assert [(x.alarm_id, x.on) for x in flags] == [(A, False)]
    assert f.chattering() == [] and f.next_deadline() is None


def test_latched_and_still_active_when_calm_releases_nothing() -> None:
    f = ChatterFilter(ChatterSettings(activations=1, window=60, quiet=5))
    f.filter([change(True, 0.0)], 0.0)
    f.filter([change(False, 1.0)], 1.0)
    passed, flags = f.filter([change(True, 2.0)], 2.0)  # 2nd activation: latched, shown
    assert [c.active for c in passed] == [True] and flags[0].on
    assert f.filter([change(False, 3.0)], 3.0)[0] == []  # held
    assert f.filter([change(True, 4.0)], 4.0)[0] == []  # back before the clear went out
    assert f.next_deadline() == 9.0
    released, flags = f.tick(9.0, WALL0 + 9)
    assert released == [] and [x.on for x in flags] == [False]
    # calm again: a clear now passes at once
    assert [c.active for c in f.filter([change(False, 10.0)], 10.0)[0]] == [False]


def test_suppression_changes_pass_while_latched() -> None:
    f = ChatterFilter(ChatterSettings(activations=1, window=60, quiet=5))
    f.filter([change(True, 0.0)], 0.0)
    f.filter([change(False, 1.0)], 1.0)
    f.filter([change(True, 2.0)], 2.0)  # latched, active
    passed, _ = f.filter([change(True, 2.5, suppressed=True)], 2.5)
    assert [(c.active, c.suppressed) for c in passed] == [(True, True)]


def test_restore_latches_after_a_restart() -> None:
    f = ChatterFilter(ChatterSettings(activations=5, window=60, quiet=5))
    f.restore([A], 100.0)
    assert f.filter([change(False, 101.0)], 101.0)[0] == []  # held: the alarm is latched
    released, flags = f.tick(106.0, WALL0 + 106)
    assert [c.active for c in released] == [False] and not flags[0].on


def test_other_alarms_are_not_affected() -> None:
    f = ChatterFilter(ChatterSettings(activations=1, window=60, quiet=5))
    flips(f, 3, 0.0)
    other = "pump-2.pump_fault"
    passed, _ = f.filter([change(True, 4.0, other), change(False, 4.1, other)], 4.1)
    assert [c.active for c in passed] == [True, False]


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0.01, 20.0)), max_size=60),
    st.integers(1, 4),
)
def test_the_book_always_sees_alternating_edges(steps: list[tuple[bool, float]], n: int) -> None:
    """Whatever the engine reports, what passes alternates on/off, and a latch ends by calm."""
    f = ChatterFilter(ChatterSettings(activations=n, window=30, quiet=10))
    t, engine_active, book_active = 0.0, False, False
    for active, dt in steps:
        t += dt
        out = f.tick(t, WALL0 + t)[0]
        if active != engine_active:
            engine_active = active
            out += f.filter([change(active, t)], t)[0]
        for c in out:
            assert c.active != book_active
            book_active = c.active
    t += 11
    for c in f.tick(t, WALL0 + t)[0]:
        book_active = c.active
    assert f.chattering() == []
    assert book_active == engine_active  # nothing is lost once calm


# ------------------------------------------------------------------ floods


def test_flood_starts_above_the_threshold_with_the_first_out() -> None:
    d = FloodDetector(FloodSettings(alarms=10, window=600, end_at=5))
    out = []
    for i in range(10):
        out += d.observe(f"dev-{i}.x", 10.0 * i, WALL0 + 10.0 * i)
    assert out == [] and d.current is None
    out = d.observe("dev-10.x", 100.0, WALL0 + 100.0)
    assert [s for s, _ in out] == ["started"]
    flood = out[0][1]
    assert flood.first_out == "dev-0.x" and len(flood.alarms) == 11
    event = flood.event("started", 600)
    assert event["type"] == "flood" and event["first_out"] == "dev-0.x" and event["count"] == 11
    assert event["started_at"] == "2027-01-15T08:00:00.000Z"
    d.observe("dev-11.x", 110.0, WALL0 + 110)
    # the window empties: at most 5 left 600 s after the 7th
    assert d.tick(659.0, WALL0 + 659) == []
    ended = d.tick(661.0, WALL0 + 661)
    assert [s for s, _ in ended] == ["ended"] and len(ended[0][1].alarms) == 12
    assert ended[0][1].event("ended", 600)["ended_at"] == "2027-01-15T08:11:01.000Z"
    assert d.current is None


def test_slow_alarms_never_flood() -> None:
    d = FloodDetector(FloodSettings(alarms=10, window=600, end_at=5))
    for i in range(100):
        assert d.observe("a.b", 61.0 * i, WALL0 + 61.0 * i) == []


def test_activations_are_new_episodes_reaching_active_unack() -> None:
    a = Activations({"x.y": 3})
    assert not a.is_new("x.y", "active_unack", 3)  # back from an overlay, same episode
    assert not a.is_new("x.y", "suppressed", 4)
    assert a.is_new("x.y", "active_unack", 4)
    assert not a.is_new("x.y", "active_unack", 4)
    assert a.is_new("new.one", "active_unack", 1)
