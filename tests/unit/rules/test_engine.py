"""The rule engine with an injected clock: timers, deadband, helpers, comm_loss and suppression."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from config.models import Text
from config.site import COMM_LOSS, Rule
from config.site import template_rules as site_template_rules
from config.templates import load_template
from ground.model import DeviceStatus, Quality, Reading, Value
from rules.engine import ConditionChange, RuleEngine

WALL0 = 1_800_000_000.0  # wall clock = WALL0 + monotonic in these tests
T = Text(zh="测试", en="test")


def comm_loss(device: str) -> Rule:
    return Rule(device=device, id=COMM_LOSS, when="", priority="high", message=T)


def rule(device: str, rid: str, when: str, **kw: object) -> Rule:
    return Rule(
        device=device, id=rid, when=when, priority=kw.pop("priority", "high"), message=T, **kw
    )  # type: ignore[arg-type]


def template_rules(template: str, device: str) -> list[Rule]:
    """The rules a device of `template` gets, exactly as the site loader builds them."""
    return site_template_rules(device, load_template(template))


class Feed:
    """Drives an engine on a fake monotonic clock, as the service does on the real one."""

    def __init__(self, rules: Sequence[Rule], depends_on: dict[str, list[str]] | None = None):
        self.engine = RuleEngine(rules, depends_on or {})
        self.now = 0.0

    def read(
        self, device: str, quality: Quality = Quality.GOOD, **values: Value | None
    ) -> list[ConditionChange]:
        batch = [Reading(device, p, v, quality, WALL0 + self.now) for p, v in values.items()]
        return self.engine.ingest(batch, self.now)

    def status(self, device: str, online: bool) -> list[ConditionChange]:
        return self.engine.device_status(DeviceStatus(device, online, WALL0 + self.now), self.now)

    def advance(self, seconds: float, step: float = 0.25) -> list[ConditionChange]:
        """Let time pass, ticking like the service does (4x a second)."""
        out: list[ConditionChange] = []
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            out.extend(self.engine.tick(self.now))
        return out


def ids(changes: Sequence[ConditionChange]) -> list[tuple[str, bool, bool]]:
    return [(c.alarm_id, c.active, c.suppressed) for c in changes]


# ------------------------------------------------------------------ timers


def test_on_delay_needs_the_condition_continuously() -> None:
    f = Feed(template_rules("booster_pump", "pump-1"))
    assert f.read("pump-1", running=True, flow=0.1) == []
    assert f.advance(29.5) == []
    f.read("pump-1", flow=3.0)  # interrupted: the 30 s start over
    f.read("pump-1", flow=0.2)
    assert f.advance(29.5) == []
    changes = f.advance(0.5)
    assert ids(changes) == [("pump-1.dry_run", True, False)]
    change = changes[0]
    assert change.value == 0.2  # the number worth showing, not `running`
    assert change.values == {"running": True, "flow": 0.2}
    assert change.ts_wall == pytest.approx(WALL0 + f.now)
    assert ids(f.read("pump-1", flow=2.0)) == [("pump-1.dry_run", False, False)]


def test_clear_for_needs_the_condition_false_that_long() -> None:
    f = Feed([comm_loss("t"), rule("t", "hot", "temp > 80", clear_for=10.0)])
    assert ids(f.read("t", temp=90)) == [("t.hot", True, False)]
    f.advance(1)
    assert f.read("t", temp=70) == []
    assert f.advance(9.5) == []
    f.read("t", temp=85)  # back up: the off-delay restarts
    f.read("t", temp=70)
    assert f.advance(9.75) == []
    assert ids(f.advance(0.25)) == [("t.hot", False, False)]


def test_deadband_keeps_the_alarm_until_the_value_is_back_past_it() -> None:
    f = Feed([comm_loss("t"), rule("t", "low", "level < 20", deadband=2.0)])
    assert ids(f.read("t", level=19.5)) == [("t.low", True, False)]
    assert f.read("t", level=21.0) == []  # inside the deadband
    assert f.read("t", level=21.9) == []
    assert ids(f.read("t", level=22.1)) == [("t.low", False, False)]
    assert f.read("t", level=21.0) == []  # raising uses the plain threshold
    assert ids(f.read("t", level=19.9)) == [("t.low", True, False)]


def test_unknown_never_raises_and_never_clears() -> None:
    f = Feed([comm_loss("t"), rule("t", "hot", "temp > 80", for_=5.0)])
    f.read("t", temp=90)
    f.advance(3)
    f.read("t", Quality.BAD, temp=None)  # the pending on-delay restarts
    assert f.advance(5) == []
    f.read("t", temp=90)
    assert ids(f.advance(5)) == [("t.hot", True, False)]
    assert f.read("t", Quality.BAD, temp=1e9) == []  # bad: not used, and the alarm stays
    assert f.read("t", temp=float("nan")) == []  # NaN counts as bad
    assert f.engine.values("t") == {}
    assert ids(f.read("t", temp=20)) == [("t.hot", False, False)]


# ------------------------------------------------------------------ helpers through the engine


def test_rate_short_cycling() -> None:
    f = Feed(template_rules("booster_pump", "pump-1"))
    f.read("pump-1", starts=100)
    for _ in range(6):
        f.advance(300)
        f.read("pump-1", starts=f.engine.values("pump-1")["starts"] + 1)  # type: ignore[operator]
    assert "pump-1.short_cycling" not in f.engine.active()  # 6 starts in 30 min: not more than 6
    f.advance(60)
    changes = f.read("pump-1", starts=107)
    assert ids(changes) == [("pump-1.short_cycling", True, False)]
    # an hour later the early starts have left the window: the rule clears on its own (tick)
    later = f.advance(3600, step=5)
    assert ("pump-1.short_cycling", False, False) in ids(later)


def test_count_access_denied_burst() -> None:
    f = Feed(template_rules("access_door", "door-1"))
    for _ in range(4):
        assert f.read("door-1", last_event="denied") == []
        f.advance(5)
    f.read("door-1", last_event="granted")
    assert ids(f.read("door-1", last_event="denied")) == [
        ("door-1.access_denied_burst", True, False)
    ]
    # the window drains (60 s), then clear_for 60 s
    assert f.advance(59) == []
    changes = f.advance(65)
    assert ids(changes) == [("door-1.access_denied_burst", False, False)]


def test_count_sees_every_reading_of_a_point_in_one_batch() -> None:
    f = Feed(template_rules("access_door", "door-1"))
    batch = [Reading("door-1", "last_event", "denied", Quality.GOOD, WALL0) for _ in range(5)]
    assert ids(f.engine.ingest(batch, 0.0)) == [("door-1.access_denied_burst", True, False)]


def test_changed() -> None:
    f = Feed([comm_loss("l"), rule("l", "moved", "changed(floor)")])
    assert f.read("l", floor=3) == []
    assert f.read("l", floor=3) == []
    assert ids(f.read("l", floor=4)) == [("l.moved", True, False)]
    assert ids(f.read("l", floor=4)) == [("l.moved", False, False)]


def test_lift_entrapment_held_30s_on_the_real_template() -> None:
    f = Feed(template_rules("lift", "lift-1"))
    f.read("lift-1", moving=False, door_open=False, occupied=True, alarm_button=False, floor=7)
    assert f.advance(29.75) == []
    changes = f.advance(0.25)
    assert ids(changes) == [("lift-1.entrapment", True, False)]
    assert changes[0].values["floor"] == 7
    assert ids(f.read("lift-1", door_open=True)) == [("lift-1.entrapment", False, False)]
    # the alarm button raises it at once
    assert ids(f.read("lift-1", alarm_button=True)) == [("lift-1.entrapment", True, False)]


# ------------------------------------------------------------------ comm_loss


def test_comm_loss_suppresses_the_device_and_resumes_from_fresh_readings() -> None:
    f = Feed(template_rules("energy_meter", "meter-1"))
    volts = {"voltage_l1": 190.0, "voltage_l2": 190.0, "voltage_l3": 190.0}
    f.read("meter-1", **volts)
    assert ids(f.advance(5)) == [("meter-1.undervoltage", True, False)]

    changes = f.status("meter-1", online=False)
    assert ids(changes) == [
        ("meter-1.comm_loss", True, False),
        ("meter-1.undervoltage", True, True),
    ]
    assert changes[1].cause == "meter-1.comm_loss"
    assert "meter-1.comm_loss" in changes[1].reason
    # a dead meter reads stale zeros: no phase_loss, no exception, nothing evaluated
    stale = {k: None for k in volts}
    assert f.read("meter-1", Quality.STALE, **stale) == []
    assert f.read("meter-1", voltage_l1=0.0, voltage_l2=0.0, voltage_l3=0.0) == []
    assert f.advance(30) == []
    assert f.engine.values("meter-1") == {}
    assert f.status("meter-1", online=False) == []  # repeated status: nothing new

    back = f.status("meter-1", online=True)
    assert ids(back) == [("meter-1.comm_loss", False, False), ("meter-1.undervoltage", True, False)]
    assert ids(f.read("meter-1", voltage_l1=230.0, voltage_l2=230.0, voltage_l3=230.0)) == [
        ("meter-1.undervoltage", False, False)
    ]


def test_inactive_rules_are_not_reported_on_comm_loss() -> None:
    f = Feed(template_rules("fire_panel", "fire-1"))
    assert ids(f.status("fire-1", online=False)) == [("fire-1.comm_loss", True, False)]
    assert ids(f.status("fire-1", online=True)) == [("fire-1.comm_loss", False, False)]


def test_timers_restart_after_comm_loss() -> None:
    f = Feed([comm_loss("t"), rule("t", "hot", "temp > 80", for_=10.0)])
    f.read("t", temp=90)
    f.advance(8)
    f.status("t", online=False)
    f.advance(5)
    f.status("t", online=True)
    assert f.advance(20) == []  # no fresh reading: the on-delay does not carry over
    f.read("t", temp=90)
    assert ids(f.advance(10)) == [("t.hot", True, False)]


# ------------------------------------------------------------------ depends_on


def supply_site() -> Feed:
    rules = [
        *template_rules("energy_meter", "meter-1"),
        *template_rules("booster_pump", "pump-1"),
        *template_rules("booster_pump", "pump-2"),
    ]
    return Feed(rules, {"pump-1": ["meter-1"], "pump-2": ["pump-1"]})


def test_breaker_trip_suppresses_dependent_alarms_with_the_root_cause() -> None:
    f = supply_site()
    f.read("pump-1", running=True, fault=False, flow=10.0)
    f.read("pump-2", running=True, fault=False, flow=10.0)
    assert ids(f.read("pump-1", fault=True)) == [("pump-1.pump_fault", True, False)]

    changes = f.read("meter-1", breaker_tripped=True)
    assert ids(changes) == [
        ("meter-1.breaker_trip", True, False),
        ("pump-1.pump_fault", True, True),
    ]
    assert changes[1].cause == "meter-1.breaker_trip"
    # a new condition of a dependent device, directly or further down, is reported suppressed
    changes = f.read("pump-2", fault=True)
    assert ids(changes) == [("pump-2.pump_fault", True, True)]
    assert changes[0].cause == "meter-1.breaker_trip"
    # pump-1 loses its comms in the power cut: that is suppressed too
    assert ids(f.status("pump-1", online=False)) == [("pump-1.comm_loss", True, True)]
    # cleared while suppressed: reported (still suppressed) so the alarm layer can follow
    assert ids(f.read("pump-2", fault=False)) == [("pump-2.pump_fault", False, True)]

    # pump-1 answers again, its fault still unknown: still under the breaker trip
    assert ids(f.status("pump-1", online=True)) == [("pump-1.comm_loss", False, True)]
    released = f.read("meter-1", breaker_tripped=False)
    assert ids(released) == [
        ("meter-1.breaker_trip", False, False),
        ("pump-1.comm_loss", False, False),
        ("pump-1.pump_fault", True, False),
        ("pump-2.pump_fault", False, False),
    ]


def test_comm_loss_of_a_supply_suppresses_its_dependents() -> None:
    f = supply_site()
    f.status("meter-1", online=False)
    changes = f.read("pump-1", fault=True)
    assert ids(changes) == [("pump-1.pump_fault", True, True)]
    assert changes[0].cause == "meter-1.comm_loss"
    assert f.read("pump-1", fault=True) == []  # already reported, not again
    assert ids(f.status("meter-1", online=True)) == [
        ("meter-1.comm_loss", False, False),
        ("pump-1.pump_fault", True, False),
    ]


def test_phase_loss_is_a_root_cause() -> None:
    f = supply_site()
    f.read("pump-1", running=True, flow=0.1)
    changes = f.read("meter-1", voltage_l1=0.0, voltage_l2=230.0, voltage_l3=230.0)
    assert ids(changes) == [("meter-1.phase_loss", True, False)]
    assert ids(f.advance(30)) == [("pump-1.dry_run", True, True)]
    assert f.advance(1) == []


# ------------------------------------------------------------------ cross-device references


def test_cross_device_reference() -> None:
    rules = [
        comm_loss("fire-1"),
        comm_loss("fan-1"),
        rule("fan-1", "fan_on_fire", "fire-1.fire and not running"),
    ]
    f = Feed(rules)
    f.read("fan-1", running=False)
    changes = f.read("fire-1", fire=True)  # a reading of the OTHER device re-evaluates the rule
    assert ids(changes) == [("fan-1.fan_on_fire", True, False)]
    assert changes[0].value is True
    assert ids(f.read("fan-1", running=True)) == [("fan-1.fan_on_fire", False, False)]
    f.read("fan-1", running=False)
    # the fire panel goes offline: its values are gone, the rule is unknown: it neither clears
    # nor raises anything of its own
    assert ids(f.status("fire-1", online=False)) == [("fire-1.comm_loss", True, False)]
    assert "fan-1.fan_on_fire" in f.engine.active()


# ------------------------------------------------------------------ restart


def test_assume_active_lets_fresh_data_clear_restored_alarms() -> None:
    f = Feed(template_rules("booster_pump", "pump-1"))
    f.engine.assume_active(["pump-1.pump_fault"])
    assert f.read("pump-1", fault=True) == []  # still active: no new report, no new episode
    assert ids(f.read("pump-1", fault=False)) == [("pump-1.pump_fault", False, False)]


def test_restored_comm_loss_clears_on_first_good_reading() -> None:
    f = Feed(template_rules("booster_pump", "pump-1"))
    f.engine.assume_active(["pump-1.comm_loss"])
    assert ids(f.read("pump-1", running=False)) == [("pump-1.comm_loss", False, False)]


# ------------------------------------------------------------------ scale and indexing


def test_rules_are_only_evaluated_for_their_points(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = [comm_loss("d")] + [rule("d", f"r{i}", f"p{i} > 10") for i in range(200)]
    rules.append(rule("d", "both", "p3 + p4 > 100"))
    engine = RuleEngine(rules)
    evaluated: list[str] = []
    original = RuleEngine._evaluate

    def spy(self: RuleEngine, rs, fresh, now, out):  # type: ignore[no-untyped-def]
        evaluated.append(rs.rule.id)
        return original(self, rs, fresh, now, out)

    monkeypatch.setattr(RuleEngine, "_evaluate", spy)
    engine.ingest([Reading("d", "p3", 1, Quality.GOOD, WALL0)], 0.0)
    assert evaluated == ["r3", "both"]
    evaluated.clear()
    engine.ingest([Reading("d", "unrelated", 1, Quality.GOOD, WALL0)], 0.0)
    engine.tick(100.0)
    assert evaluated == []


def test_thousands_of_rules_keep_their_timer_heap_bounded() -> None:
    """Speed is measured in bench/ (never asserted here); this checks memory stays bounded."""
    devices = [f"pump-{i}" for i in range(500)]
    rules = [r for d in devices for r in template_rules("booster_pump", d)]
    engine = RuleEngine(rules, {d: ["pump-0"] for d in devices[1:]})
    assert len(rules) == 3000
    for second in range(10):
        batch = [
            Reading(d, p, v, Quality.GOOD, WALL0 + second)
            for d in devices
            for p, v in (("running", True), ("flow", 5.0), ("outlet_pressure", 3.0),
                         ("vibration", 2.0), ("starts", 10), ("fault", False))
        ]  # fmt: skip
        engine.ingest(batch, float(second))
        for quarter in range(4):
            engine.tick(second + quarter / 4)
    assert len(engine._heap) < 4 * 3000 + 1024 + 1


def test_unknown_devices_and_empty_batches_are_harmless() -> None:
    f = Feed([comm_loss("t")])
    assert f.read("nope", x=1) == []
    assert f.engine.ignored_readings == 1
    assert f.engine.ingest([], 0.0) == []
    assert f.engine.device_status(DeviceStatus("nope", False, WALL0), 0.0) == []
    assert f.engine.tick(1e9) == []


def test_a_broken_rule_is_skipped_not_fatal() -> None:
    engine = RuleEngine([comm_loss("t"), rule("t", "bad", "x <"), rule("t", "ok", "x > 1")])
    assert engine.broken_rules == ["t.bad"]
    assert ids(engine.ingest([Reading("t", "x", 2, Quality.GOOD, WALL0)], 0.0)) == [
        ("t.ok", True, False)
    ]


# ------------------------------------------------------------------ wall clock and restarts


def test_a_wall_clock_jump_neither_fires_nor_clears() -> None:
    f = Feed(template_rules("booster_pump", "pump-1"))
    engine = f.engine

    def read_at(wall: float, **values: Value) -> list[ConditionChange]:
        batch = [Reading("pump-1", p, v, Quality.GOOD, wall) for p, v in values.items()]
        return engine.ingest(batch, f.now)

    assert read_at(WALL0, running=True, flow=0.1) == []
    f.now = 10.0
    assert read_at(WALL0 + 7200.0, running=True, flow=0.1) == []  # NTP steps the clock 2 h ahead
    assert f.advance(19.0) == []  # 29 s of real time: the 30 s on-delay is not over
    f.now += 1.0
    assert ids(read_at(WALL0 - 3600.0, running=True, flow=0.1)) == [("pump-1.dry_run", True, False)]
    f.now += 1.0
    assert read_at(WALL0 + 86400.0, running=True, flow=0.1) == []  # and a jump never clears


def test_delays_are_handed_out_as_they_start_and_end() -> None:
    f = Feed(template_rules("booster_pump", "pump-1"))
    f.read("pump-1", running=True, flow=0.1, vibration=9.0)
    changes = f.engine.take_timer_changes()
    assert {k: (t.kind, t.started) for k, t in changes.items() if t} == {
        "pump-1.dry_run": ("on", WALL0),
        "pump-1.high_vibration": ("on", WALL0),
    }
    assert f.engine.take_timer_changes() == {}
    f.advance(5.0)
    f.read("pump-1", vibration=1.0)
    assert f.engine.take_timer_changes() == {"pump-1.high_vibration": None}
    assert set(f.engine.pending_timers()) == {"pump-1.dry_run"}


def test_a_restored_on_delay_resumes_where_it_was() -> None:
    rules = template_rules("booster_pump", "pump-1")
    before = Feed(rules)
    before.read("pump-1", running=True, flow=0.1)
    saved = before.engine.pending_timers()  # as the store keeps them
    # 20 s later, after a restart on a new monotonic clock: 10 s of the 30 s delay are left
    after = Feed(rules)
    after.now = 500.0
    after.engine.restore_timers(saved, 500.0, WALL0 + 20.0)
    wall_offset = WALL0 + 20.0 - 500.0
    batch = [
        Reading("pump-1", p, v, Quality.GOOD, wall_offset + 500.0)
        for p, v in {"running": True, "flow": 0.1}.items()
    ]
    assert after.engine.ingest(batch, 500.0) == []
    assert after.advance(9.5) == []
    assert ids(after.advance(0.5)) == [("pump-1.dry_run", True, False)]


def test_a_restored_delay_that_ran_out_fires_on_the_first_fresh_reading() -> None:
    rules = template_rules("booster_pump", "pump-1")
    before = Feed(rules)
    before.read("pump-1", running=True, flow=0.1)
    saved = before.engine.pending_timers()
    after = Feed(rules)
    after.engine.restore_timers(saved, 0.0, WALL0 + 3600.0)
    assert after.advance(5.0) == []  # no data yet: never fires on data it does not have
    assert ids(after.read("pump-1", running=True, flow=0.1)) == [("pump-1.dry_run", True, False)]
    # and a condition that no longer holds drops the restored delay
    again = Feed(rules)
    again.engine.restore_timers(saved, 0.0, WALL0 + 3600.0)
    assert again.read("pump-1", running=True, flow=5.0) == []
    assert again.engine.pending_timers() == {}
    assert again.engine.take_timer_changes() == {"pump-1.dry_run": None}
