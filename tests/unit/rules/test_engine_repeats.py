"""A repeated value skips idle rules: the engine must report exactly what it would without the skip.

The engine does not re-evaluate an *idle* rule (no helpers, no delay running, evaluated since its
last reset) for a reading that repeats its point's value (`rules.engine` docstring). This compares,
on random streams of readings, statuses and time, an engine with the skip against the same engine
made to evaluate every rule every time (every rule marked busy after each call).
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from config.models import Text
from config.site import COMM_LOSS, Rule
from ground.model import DeviceStatus, Quality, Reading
from rules.engine import RuleEngine
from tests.support import examples

WALL0 = 1_800_000_000.0
T = Text(zh="测试", en="test")


def _rule(device: str, rid: str, when: str, **kw: float) -> Rule:
    return Rule(device=device, id=rid, when=when, priority="high", message=T, **kw)  # type: ignore[arg-type]


RULES = [
    _rule("a", COMM_LOSS, ""),
    _rule("b", COMM_LOSS, ""),
    _rule("a", "high", "x > 5", deadband=1.0),
    _rule("a", "above_one", "x > 1.5", deadband=1.0),  # True is 1, but is never shifted
    _rule("a", "low_for", "y < 2", for_=1.0, clear_for=0.5),
    _rule("a", "both", "x > 3 and not flag", deadband=0.5),
    _rule("a", "either", "flag or min(x, y) >= 4"),
    _rule("a", "text", "mode == 'auto' and x != 0"),
    _rule("a", "held", "held(x > 4, 1s)"),
    _rule("b", "cross", "a.x > 6 or z > 1"),
    _rule("b", "changed", "changed(z)"),
]

values = {
    "x": st.sampled_from([0, 1, True, 2, 3, 4, 4.5, 5, 5.5, 6, 7]),
    "y": st.sampled_from([0, 1.5, 2, 4, 4.0]),
    "flag": st.booleans(),
    "mode": st.sampled_from(["auto", "manual"]),
    "z": st.sampled_from([0, 1, 2]),
}
reading = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(sorted(values)),
    st.sampled_from([Quality.GOOD] * 6 + [Quality.BAD]),
).flatmap(lambda t: values[t[1]].map(lambda v: (t[0], t[1], v, t[2])))
step = st.one_of(
    st.tuples(st.just("batch"), st.lists(reading, min_size=1, max_size=6)),
    st.tuples(st.just("tick"), st.sampled_from([0.25, 0.5, 1.0])),
    st.tuples(st.just("status"), st.tuples(st.sampled_from(["a", "b"]), st.booleans())),
)


def _busy(engine: RuleEngine) -> None:
    for rs in engine._by_alarm.values():  # the engine's rule states: make none of them idle
        rs.idle = False


G = Quality.GOOD


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(step, max_size=40))
@example([("batch", [("a", "x", 2, G)]), ("batch", [("a", "x", 1, G)]),
          ("batch", [("a", "x", True, G)])])  # fmt: skip  # 1 == True, but True is never shifted
def test_skipping_repeats_changes_nothing(steps: list[tuple[str, object]]) -> None:
    skipping, evaluating = RuleEngine(RULES, {"b": ["a"]}), RuleEngine(RULES, {"b": ["a"]})
    now = 0.0
    for kind, arg in steps:
        if kind == "tick":
            now += arg  # type: ignore[operator]
            got = [skipping.tick(now), evaluating.tick(now)]
        elif kind == "status":
            device, online = arg  # type: ignore[misc]
            status = DeviceStatus(device, online, WALL0 + now)
            got = [skipping.device_status(status, now), evaluating.device_status(status, now)]
        else:
            batch = [Reading(d, p, v, q, WALL0 + now) for d, p, v, q in arg]  # type: ignore[union-attr]
            got = [skipping.ingest(batch, now), evaluating.ingest(batch, now)]
        _busy(evaluating)
        assert got[0] == got[1]
        assert skipping.take_timer_changes() == evaluating.take_timer_changes()
    assert sorted(skipping.active()) == sorted(evaluating.active())
