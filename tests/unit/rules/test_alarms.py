"""The alarm state machine: every transition, refusals, episodes, payloads, and a stateful property test."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from config.models import Text
from config.site import Rule
from config.site import template_rules as site_template_rules
from config.templates import load_template
from rules.alarms import (
    ACTIVE_STATES,
    Alarm,
    AlarmBook,
    AlarmState,
    ShelveRefused,
    TransitionRefused,
    UnknownAlarm,
)
from rules.engine import ConditionChange
from rules.messages import render
from tests.support import examples

S = AlarmState
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def template_rules(template: str, device: str) -> list[Rule]:
    """The rules a device of `template` gets, exactly as the site loader builds them."""
    return site_template_rules(device, load_template(template))


def change(
    alarm_id: str,
    active: bool,
    at: float = T0,
    suppressed: bool = False,
    value: object = None,
    values: dict | None = None,
) -> ConditionChange:
    device, rid = alarm_id.split(".", 1)
    return ConditionChange(
        alarm_id=alarm_id,
        device=device,
        rule=rid,
        active=active,
        suppressed=suppressed,
        value=value,  # type: ignore[arg-type]
        values=values or {},
        ts_wall=at,
        reason="test",
        cause="meter-1.breaker_trip" if suppressed else "",
    )


def moves(transitions: list) -> list[tuple[str, str, int]]:
    return [(t.from_state, t.to_state, t.episode) for t in transitions]


@pytest.fixture
def book() -> AlarmBook:
    return AlarmBook(
        template_rules("booster_pump", "pump-1")
        + template_rules("fire_panel", "fire-1")
        + template_rules("lift", "lift-1"),
        locale="zh-CN",
    )


DRY = "pump-1.dry_run"


# ------------------------------------------------------------------ base transitions


def test_raise_ack_clear(book: AlarmBook) -> None:
    assert book.get(DRY).state == S.NORMAL
    t = book.apply(change(DRY, True, T0, value=0.2, values={"flow": 0.2, "running": True}))
    assert moves(t) == [(S.NORMAL, S.ACTIVE_UNACK, 1)]
    assert t[0].by == "system"
    assert t[0].alarm.message == "水泵干转: 运行中流量 0.2 m³/h"
    assert book.apply(change(DRY, True, T0 + 1)) == []  # no news
    t = book.acknowledge(DRY, "alice", "on it", T0 + 10)
    assert moves(t) == [(S.ACTIVE_UNACK, S.ACTIVE_ACK, 1)]
    assert (t[0].by, t[0].reason) == ("alice", "on it")
    t = book.apply(change(DRY, False, T0 + 20))
    assert moves(t) == [(S.ACTIVE_ACK, S.NORMAL, 1)]
    alarm = book.get(DRY)
    assert (alarm.raised_at, alarm.acked_at, alarm.acked_by, alarm.cleared_at) == (
        T0,
        T0 + 10,
        "alice",
        T0 + 20,
    )


def test_clear_before_ack_then_ack(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    assert moves(book.apply(change(DRY, False, T0 + 5))) == [(S.ACTIVE_UNACK, S.RTN_UNACK, 1)]
    assert book.apply(change(DRY, False, T0 + 6)) == []
    assert moves(book.acknowledge(DRY, "bob", "", T0 + 7)) == [(S.RTN_UNACK, S.NORMAL, 1)]


def test_reactivation_before_ack_is_a_new_episode(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    book.apply(change(DRY, False, T0 + 1))
    t = book.apply(change(DRY, True, T0 + 2))
    assert moves(t) == [(S.RTN_UNACK, S.ACTIVE_UNACK, 2)]
    alarm = book.get(DRY)
    assert (alarm.raised_at, alarm.cleared_at, alarm.acked_at) == (T0 + 2, None, None)
    book.acknowledge(DRY, "a", "", T0 + 3)
    book.apply(change(DRY, False, T0 + 4))
    assert moves(book.apply(change(DRY, True, T0 + 5))) == [(S.NORMAL, S.ACTIVE_UNACK, 3)]
    assert book.get(DRY).acked_by is None  # a new episode needs its own acknowledgement


@pytest.mark.parametrize("state", ["normal", "active_ack"])
def test_ack_refused_when_nothing_to_acknowledge(book: AlarmBook, state: str) -> None:
    if state == "active_ack":
        book.apply(change(DRY, True))
        book.acknowledge(DRY, "a", "", T0)
    with pytest.raises(TransitionRefused, match="nothing to acknowledge"):
        book.acknowledge(DRY, "a", "", T0)


def test_ack_refused_while_suppressed_shelved_or_out_of_service(book: AlarmBook) -> None:
    book.apply(change(DRY, True, suppressed=True))
    assert book.get(DRY).state == S.SUPPRESSED
    with pytest.raises(TransitionRefused):
        book.acknowledge(DRY, "a", "", T0)
    book.shelve(DRY, "a", "nuisance", T0 + 3600, T0)
    with pytest.raises(TransitionRefused):
        book.acknowledge(DRY, "a", "", T0)
    book.remove_from_service(DRY, "a", "sensor removed", T0)
    with pytest.raises(TransitionRefused):
        book.acknowledge(DRY, "a", "", T0)


def test_unknown_alarm(book: AlarmBook) -> None:
    with pytest.raises(UnknownAlarm):
        book.get("nope.x")
    with pytest.raises(UnknownAlarm):
        book.acknowledge("nope.x", "a", "", T0)
    assert book.apply(change("nope.x", True)) == []
    assert book.unknown_changes == 1


def test_acknowledge_device(book: AlarmBook) -> None:
    book.apply(change(DRY, True))
    book.apply(change("pump-1.pump_fault", True))
    book.apply(change("pump-1.pump_fault", False))
    book.apply(change("fire-1.fire_alarm", True))
    t = book.acknowledge_device("pump-1", "carol", "walked round", T0 + 60)
    assert sorted((x.alarm_id, x.to_state) for x in t) == [
        ("pump-1.dry_run", S.ACTIVE_ACK),
        ("pump-1.pump_fault", S.NORMAL),
    ]
    assert book.get("fire-1.fire_alarm").state == S.ACTIVE_UNACK
    assert book.acknowledge_device("pump-1", "carol", "", T0) == []


# ------------------------------------------------------------------ suppression


def test_suppressed_and_back_while_still_active_keeps_the_episode(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    t = book.apply(change(DRY, True, T0 + 1, suppressed=True))
    assert moves(t) == [(S.ACTIVE_UNACK, S.SUPPRESSED, 1)]
    assert book.get(DRY).suppressed_by == "meter-1.breaker_trip"
    t = book.apply(change(DRY, True, T0 + 2))
    assert moves(t) == [(S.SUPPRESSED, S.ACTIVE_UNACK, 1)]
    assert book.get(DRY).suppressed_by == ""


def test_an_acknowledgement_survives_suppression(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    book.acknowledge(DRY, "a", "", T0)
    book.apply(change(DRY, True, T0 + 1, suppressed=True))
    assert moves(book.apply(change(DRY, True, T0 + 2))) == [(S.SUPPRESSED, S.ACTIVE_ACK, 1)]


def test_cleared_under_suppression(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    book.apply(change(DRY, True, T0 + 1, suppressed=True))
    assert book.apply(change(DRY, False, T0 + 2, suppressed=True)) == []
    # it was announced and never acknowledged: it comes back as rtn_unack, cleared when it cleared
    assert moves(book.apply(change(DRY, False, T0 + 3))) == [(S.SUPPRESSED, S.RTN_UNACK, 1)]
    assert book.get(DRY).cleared_at == T0 + 2


def test_an_activation_entirely_under_suppression_leaves_no_trace(book: AlarmBook) -> None:
    assert moves(book.apply(change(DRY, True, T0, suppressed=True))) == [
        (S.NORMAL, S.SUPPRESSED, 0)
    ]
    book.apply(change(DRY, False, T0 + 1, suppressed=True))
    assert moves(book.apply(change(DRY, False, T0 + 2))) == [(S.SUPPRESSED, S.NORMAL, 0)]


def test_still_active_when_suppression_ends_is_a_new_announced_episode(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0, suppressed=True))
    t = book.apply(change(DRY, True, T0 + 5))
    assert moves(t) == [(S.SUPPRESSED, S.ACTIVE_UNACK, 1)]
    assert book.get(DRY).raised_at == T0 + 5


def test_cleared_and_back_under_suppression_is_a_new_episode(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    book.acknowledge(DRY, "a", "", T0)
    book.apply(change(DRY, False, T0 + 1, suppressed=True))
    book.apply(change(DRY, True, T0 + 2, suppressed=True))
    assert moves(book.apply(change(DRY, True, T0 + 3))) == [(S.SUPPRESSED, S.ACTIVE_UNACK, 2)]


# ------------------------------------------------------------------ shelving and out of service


def test_shelve_and_unshelve(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    t = book.shelve(DRY, "dave", "sensor drifting", T0 + 3600, T0 + 10)
    assert moves(t) == [(S.ACTIVE_UNACK, S.SHELVED, 1)]
    assert (t[0].by, t[0].reason) == ("dave", "sensor drifting")
    with pytest.raises(TransitionRefused):
        book.shelve(DRY, "dave", "again", T0 + 7200, T0 + 11)
    book.apply(change(DRY, False, T0 + 20))  # hidden while shelved
    assert book.get(DRY).state == S.SHELVED
    assert moves(book.unshelve(DRY, "dave", T0 + 30)) == [(S.SHELVED, S.RTN_UNACK, 1)]
    with pytest.raises(TransitionRefused, match="not shelved"):
        book.unshelve(DRY, "dave", T0 + 31)


def test_shelving_expires(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    book.acknowledge(DRY, "a", "", T0)
    book.shelve(DRY, "a", "noisy", T0 + 60, T0)
    assert book.expire_shelves(T0 + 59) == []
    t = book.expire_shelves(T0 + 60)
    assert moves(t) == [(S.SHELVED, S.ACTIVE_ACK, 1)]
    assert t[0].by == "system"


def test_shelve_refusals(book: AlarmBook) -> None:
    for alarm_id in ("fire-1.fire_alarm", "lift-1.entrapment"):  # shelvable: false in templates
        with pytest.raises(ShelveRefused, match="not shelvable"):
            book.shelve(alarm_id, "a", "annoying", T0 + 60, T0)
        assert book.get(alarm_id).state == S.NORMAL
    with pytest.raises(TransitionRefused, match="future"):
        book.shelve(DRY, "a", "x", T0, T0)


def test_shelved_over_suppressed(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0, suppressed=True))
    book.shelve(DRY, "a", "x", T0 + 600, T0 + 1)
    assert book.get(DRY).state == S.SHELVED
    assert book.unshelve(DRY, "a", T0 + 2)[0].to_state == S.SUPPRESSED
    assert book.apply(change(DRY, True, T0 + 3))[0].to_state == S.ACTIVE_UNACK


def test_out_of_service(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0))
    t = book.remove_from_service(DRY, "eve", "pump replaced", T0 + 1)
    assert moves(t) == [(S.ACTIVE_UNACK, S.OUT_OF_SERVICE, 1)]
    with pytest.raises(TransitionRefused):
        book.remove_from_service(DRY, "eve", "again", T0 + 2)
    with pytest.raises(TransitionRefused):
        book.shelve(DRY, "eve", "x", T0 + 600, T0 + 2)
    book.apply(change(DRY, False, T0 + 3))
    assert book.get(DRY).state == S.OUT_OF_SERVICE
    assert moves(book.return_to_service(DRY, "eve", T0 + 4)) == [(S.OUT_OF_SERVICE, S.RTN_UNACK, 1)]
    with pytest.raises(TransitionRefused):
        book.return_to_service(DRY, "eve", T0 + 5)
    # life-safety alarms are never taken out of service (PRODUCT §9): not by work, not by anyone
    for alarm_id in ("fire-1.fire_alarm", "lift-1.entrapment", "lift-1.comm_loss"):
        with pytest.raises(TransitionRefused, match="life-safety"):
            book.remove_from_service(alarm_id, "eve", "panel replaced", T0)
        assert not book.get(alarm_id).out_of_service


# ------------------------------------------------------------------ payloads and messages

PAYLOAD_KEYS = {
    "id", "device", "rule", "priority", "state", "message", "value", "episode",
    "raised_at", "acked_at", "acked_by", "cleared_at",
}  # fmt: skip
EXTRA_KEYS = {
    "message_zh", "message_en", "suppressed_by", "shelved_until", "shelved_by", "shelve_reason",
    "out_of_service", "chattering", "first_out", "life_safety", "during",
}  # fmt: skip


def test_payload_shape(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0, value=0.2, values={"flow": 0.2}))
    book.acknowledge(DRY, "alice", "", T0 + 1.5)
    p = book.get(DRY).payload()
    assert set(p) >= PAYLOAD_KEYS and set(p) - PAYLOAD_KEYS == EXTRA_KEYS
    assert p["id"] == DRY and p["device"] == "pump-1" and p["rule"] == "dry_run"
    assert (p["priority"], p["state"], p["episode"], p["value"]) == ("high", "active_ack", 1, 0.2)
    assert p["raised_at"] == "2027-01-15T08:00:00.000Z"
    assert p["acked_at"] == "2027-01-15T08:00:01.500Z"
    assert ISO_Z.match(p["acked_at"])
    assert p["cleared_at"] is None and p["acked_by"] == "alice"
    assert p["message_en"] == "Pump running dry: flow 0.2 m³/h while running"
    json.dumps(p)  # JSON-ready as it is
    assert p["suppressed_by"] is None and p["shelved_until"] is None and not p["chattering"]
    normal = book.get("pump-1.pump_fault").payload()
    assert (normal["state"], normal["raised_at"], normal["episode"]) == ("normal", None, 0)


def test_event_shape(book: AlarmBook) -> None:
    t = book.apply(change(DRY, True, T0, value=0.2, values={"flow": 0.2}))[0]
    e = t.event()
    assert e == {
        "type": "alarm",
        "id": DRY,
        "from": "normal",
        "to": "active_unack",
        "episode": 1,
        "at": "2027-01-15T08:00:00.000Z",
        "by": "system",
        "reason": "test",
        "priority": "high",
        "message": "水泵干转: 运行中流量 0.2 m³/h",
        "value": 0.2,
        "cause": None,
        "chattering": False,
        "first_out": False,
        "life_safety": False,
        "during": None,
    }
    t.alarm.state = S.NORMAL  # the snapshot is a copy: the book is not changed through it
    assert book.get(DRY).state == S.ACTIVE_UNACK


def test_messages_never_fail() -> None:
    assert render("level {level:.0f}%", {"level": 12.6}) == "level 13%"
    assert render("level {level:.0f}%", {}) == "level ?%"
    assert render("zones {zones:.0f}", {"zones": "abc"}) == "zones abc"
    assert render("{x.__class__} {y[0]} {z!r}", {"x": 1, "y": [1], "z": "q"}) == "? ? 'q'"
    assert render("broken {", {"x": 1}) == "broken {"
    assert render("{a:{b}}", {"a": 3, "b": 5}) == "3"
    assert render("no fields", {}) == "no fields"


def test_locale_en() -> None:
    book = AlarmBook(template_rules("lift", "lift-1"), locale="en")
    book.apply(change("lift-1.entrapment", True, T0, values={"floor": 7}))
    alarm = book.get("lift-1.entrapment")
    assert alarm.message == "Person trapped in lift (floor 7)"
    assert alarm.message_zh == "电梯困人 (第 7 层)"


# ------------------------------------------------------------------ restore


def test_restore_round_trip_through_json(book: AlarmBook) -> None:
    book.apply(change(DRY, True, T0, value=0.2, values={"flow": 0.2}))
    book.apply(change("pump-1.pump_fault", True, T0))
    book.apply(change("pump-1.pump_fault", False, T0 + 1))
    book.apply(change("fire-1.panel_fault", True, T0, suppressed=True))
    book.shelve("pump-1.high_vibration", "a", "x", T0 + 600, T0)
    records = json.loads(json.dumps([a.record() for a in book.all()]))
    records.append({**records[0], "id": "gone.rule", "device": "gone", "rule": "rule"})

    fresh = AlarmBook(
        template_rules("booster_pump", "pump-1")
        + template_rules("fire_panel", "fire-1")
        + template_rules("lift", "lift-1")
    )
    fresh.restore(Alarm.from_record(r) for r in records)
    assert [a.payload() for a in fresh.all()] == [a.payload() for a in book.all()]
    assert [a.record() for a in fresh.all()] == [a.record() for a in book.all()]
    with pytest.raises(UnknownAlarm):
        fresh.get("gone.rule")
    # still active after the restart: no new episode
    assert fresh.apply(change(DRY, True, T0 + 100)) == []
    assert fresh.get(DRY).episode == 1
    assert sorted(fresh.active_condition_ids()) == ["fire-1.panel_fault", DRY]
    assert moves(fresh.apply(change("fire-1.panel_fault", True, T0 + 5))) == [
        (S.SUPPRESSED, S.ACTIVE_UNACK, 1)
    ]


def test_restore_unshelves_an_alarm_that_is_no_longer_shelvable() -> None:
    rules = template_rules("booster_pump", "pump-1")
    book = AlarmBook(rules)
    book.apply(change(DRY, True, T0))
    book.shelve(DRY, "a", "x", T0 + 600, T0)
    stricter = [
        r if r.id != "dry_run" else Rule(**{**_fields(r), "shelvable": False}) for r in rules
    ]
    fresh = AlarmBook(stricter)
    fresh.restore(book.all())
    assert not fresh.get(DRY).shelvable
    # the gateway reinstates it at start: shown again, with a transition saying why
    [t] = fresh.reinstate(T0 + 5)
    assert (t.from_state, t.to_state, t.by, t.reason) == (
        S.SHELVED, S.ACTIVE_UNACK, "system", "not shelvable"
    )  # fmt: skip
    assert fresh.get(DRY).state == S.ACTIVE_UNACK and fresh.get(DRY).shelved_until is None
    assert fresh.reinstate(T0 + 6) == []


def _fields(r: Rule) -> dict:
    return {name: getattr(r, name) for name in Rule.__dataclass_fields__}


# ------------------------------------------------------------------ the stateful property

IDS = ["d.shelvable", "d.critical"]


class AlarmMachine(RuleBasedStateMachine):
    """Any sequence of condition changes, acks, suppressions, shelves and restores."""

    def __init__(self) -> None:
        super().__init__()
        self.rules = [
            Rule("d", "shelvable", "x", "high", Text(zh="x {x}", en="x {x}")),
            Rule("d", "critical", "y", "critical", Text(zh="y", en="y"), shelvable=False),
        ]
        self.book = AlarmBook(self.rules)
        self.now = T0
        self.episodes = dict.fromkeys(IDS, 0)
        self.condition = dict.fromkeys(IDS, False)

    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    def _check(self, transitions: list) -> None:
        for t in transitions:
            assert t.from_state != t.to_state
            assert t.alarm.state == t.to_state
            assert t.episode >= self.episodes[t.alarm_id]

    @rule(
        alarm_id=st.sampled_from(IDS),
        active=st.booleans(),
        suppressed=st.booleans(),
        x=st.one_of(st.none(), st.integers(), st.text(max_size=3)),
    )
    def condition_change(self, alarm_id: str, active: bool, suppressed: bool, x: object) -> None:
        values = {} if x is None else {"x": x}
        self._check(self.book.apply(change(alarm_id, active, self._tick(), suppressed, x, values)))
        self.condition[alarm_id] = active

    @rule(alarm_id=st.sampled_from(IDS))
    def acknowledge(self, alarm_id: str) -> None:
        before = self.book.get(alarm_id).state
        try:
            t = self.book.acknowledge(alarm_id, "op", "", self._tick())
        except TransitionRefused:
            assert before not in (S.ACTIVE_UNACK, S.RTN_UNACK)
            return
        assert before in (S.ACTIVE_UNACK, S.RTN_UNACK)
        assert t[0].to_state == (S.ACTIVE_ACK if before == S.ACTIVE_UNACK else S.NORMAL)
        self._check(t)

    @rule(alarm_id=st.sampled_from(IDS), minutes=st.integers(min_value=1, max_value=30))
    def shelve(self, alarm_id: str, minutes: int) -> None:
        now = self._tick()
        try:
            self._check(self.book.shelve(alarm_id, "op", "test", now + 60 * minutes, now))
        except ShelveRefused:
            assert alarm_id == "d.critical"
        except TransitionRefused:
            assert self.book.get(alarm_id).state in (S.SHELVED, S.OUT_OF_SERVICE)

    @rule(alarm_id=st.sampled_from(IDS))
    def unshelve(self, alarm_id: str) -> None:
        try:
            self._check(self.book.unshelve(alarm_id, "op", self._tick()))
        except TransitionRefused:
            assert self.book.get(alarm_id).shelved_until is None

    @rule(minutes=st.integers(min_value=0, max_value=40))
    def time_passes(self, minutes: int) -> None:
        self.now += 60 * minutes
        self._check(self.book.expire_shelves(self.now))

    @rule(alarm_id=st.sampled_from(IDS), back=st.booleans())
    def service(self, alarm_id: str, back: bool) -> None:
        oos = self.book.get(alarm_id).out_of_service
        try:
            if back:
                self._check(self.book.return_to_service(alarm_id, "op", self._tick()))
            else:
                self._check(self.book.remove_from_service(alarm_id, "op", "t", self._tick()))
        except TransitionRefused:
            assert oos != back

    @precondition(lambda self: True)
    @rule()
    def restart(self) -> None:
        records = json.loads(json.dumps([a.record() for a in self.book.all()]))
        fresh = AlarmBook(self.rules)
        fresh.restore(Alarm.from_record(r) for r in records)
        assert [a.payload() for a in fresh.all()] == [a.payload() for a in self.book.all()]
        assert [a.record() for a in fresh.all()] == [a.record() for a in self.book.all()]
        self.book = fresh

    @invariant()
    def consistent(self) -> None:
        for alarm_id in IDS:
            alarm = self.book.get(alarm_id)
            assert alarm.condition_active == self.condition[alarm_id]
            assert alarm.episode >= self.episodes[alarm_id]
            self.episodes[alarm_id] = alarm.episode
            overlay = alarm.overlay
            if overlay is not None:
                assert alarm.state == overlay
            else:
                assert alarm.state == alarm.base
                # the shown state agrees with the condition
                assert (alarm.state in ACTIVE_STATES) == alarm.condition_active
            if not alarm.shelvable:
                assert alarm.state != S.SHELVED and alarm.shelved_until is None
            if alarm.state in ACTIVE_STATES:
                assert alarm.episode >= 1 and alarm.raised_at is not None
            if alarm.state == S.ACTIVE_ACK:
                assert alarm.acked_by is not None
            assert "{x}" not in alarm.message  # rendered, whatever the value holds


AlarmMachine.TestCase.settings = settings(
    max_examples=examples(150), stateful_step_count=40, deadline=None
)
test_alarm_state_machine = AlarmMachine.TestCase
