"""The incident state machine (rules/incidents.py) and playbook loading, without a network."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import SiteError
from config.models import Text
from config.playbooks import Playbook, Step, builtin_playbooks
from config.site import load_site
from rules.incidents import Incident, IncidentBook, IncidentRefused, merge_context
from tests.support import examples

T0 = 1_800_000_000.0

ENTRAPMENT = Playbook(
    id="lift_entrapment",
    title=Text(zh="电梯困人", en="Person trapped in a lift"),
    rules=frozenset({"entrapment"}),
    alarms=frozenset(),
    steps=(
        Step("intercom", Text(zh="对讲", en="intercom"), 300.0),
        Step("maintainer", Text(zh="维保", en="maintainer"), 1800.0),
        Step("record", Text(zh="记录", en="record"), None),
    ),
)


def book() -> IncidentBook:
    ids = itertools.count(1)
    return IncidentBook({"lift_entrapment": ENTRAPMENT}, lambda: next(ids))


def test_an_entrapment_opens_one_incident_with_due_steps() -> None:
    b = book()
    [event] = b.trigger(
        "lift-1.entrapment", "entrapment", 1, "critical", T0, lambda p: {"floor": 7}
    )
    assert event.action == "opened"
    payload = event.event()
    assert payload["type"] == "incident" and payload["drill"] is False
    incident = payload["incident"]
    assert incident["alarms"] == ["lift-1.entrapment"] and incident["context"] == {"floor": 7}
    assert [s["id"] for s in incident["steps"]] == ["intercom", "maintainer", "record"]
    assert incident["steps"][0]["due"] is not None and incident["steps"][2]["due"] is None
    # the same episode seen again (an ack after a restart) opens nothing
    assert b.trigger("lift-1.entrapment", "entrapment", 1, "critical", T0 + 5) == []


def test_a_second_trigger_within_ten_minutes_joins_later_opens_anew() -> None:
    b = book()
    b.trigger("lift-1.entrapment", "entrapment", 1, "critical", T0)
    [joined] = b.trigger("lift-2.entrapment", "entrapment", 1, "critical", T0 + 599)
    assert joined.action == "updated"
    assert joined.incident.alarms == ["lift-1.entrapment", "lift-2.entrapment"]
    [fresh] = b.trigger("lift-3.entrapment", "entrapment", 1, "critical", T0 + 599 + 601)
    assert fresh.action == "opened" and fresh.incident.id != joined.incident.id


def test_overdue_is_announced_once_and_a_late_step_stays_marked() -> None:
    b = book()
    [opened] = b.trigger("lift-1.entrapment", "entrapment", 1, "critical", T0)
    assert b.tick(T0 + 300) == []
    [late] = b.tick(T0 + 301)
    assert late.action == "step_overdue" and late.step == "intercom"
    assert b.tick(T0 + 400) == []
    done = b.complete_step(opened.incident.id, "intercom", "wang", "two people, calm", T0 + 420)
    step = done.event()["incident"]["steps"][0]
    assert step["done_by"] == "wang" and step["overdue"] is True and step["response_s"] == 420
    with pytest.raises(IncidentRefused):
        b.complete_step(opened.incident.id, "intercom", "li", "", T0 + 430)
    with pytest.raises(KeyError):
        b.complete_step(opened.incident.id, "nope", "li", "", T0 + 430)


def test_closing_needs_a_cause_and_a_normal_trigger() -> None:
    b = book()
    [opened] = b.trigger("lift-1.entrapment", "entrapment", 1, "critical", T0)
    iid = opened.incident.id
    with pytest.raises(ValueError):
        b.close(iid, "wang", "  ", T0 + 10, [])
    with pytest.raises(IncidentRefused, match="still active"):
        b.close(iid, "wang", "door lock", T0 + 10, ["lift-1.entrapment"])
    closed = b.close(iid, "wang", "door lock", T0 + 20, ["pump-1.dry_run"])
    assert closed.event()["incident"]["state"] == "closed"
    with pytest.raises(IncidentRefused):
        b.complete_step(iid, "record", "wang", "", T0 + 30)


def test_a_drill_is_marked_and_closes_without_alarm() -> None:
    b = book()
    event = b.drill("lift_entrapment", "lift-1", "wang", T0, {"floor": 3})
    assert event.event()["drill"] is True and event.incident.alarms == []
    # a real entrapment during a drill opens its own incident, it does not join the drill
    [real] = b.trigger("lift-1.entrapment", "entrapment", 1, "critical", T0 + 60)
    assert real.action == "opened" and real.incident.drill is False
    b.close(event.incident.id, "wang", "drill over", T0 + 90, ["lift-1.entrapment"])


def test_records_round_trip() -> None:
    b = book()
    [opened] = b.trigger("lift-1.entrapment", "entrapment", 1, "critical", T0, lambda p: {"a": [1]})
    b.complete_step(opened.incident.id, "intercom", "wang", "ok", T0 + 5)
    again = Incident.from_record(opened.incident.record())
    assert again.payload() == opened.incident.payload()


def test_merge_context_grows_lists_and_keeps_a_lift_as_first_seen() -> None:
    ctx: dict = {"zones": [1], "lifts": [{"device": "lift-1", "moving": True}], "ready": True}
    assert merge_context(ctx, {"zones": [1, 3], "lifts": [{"device": "lift-1", "moving": False}]})
    assert ctx["zones"] == [1, 3] and ctx["lifts"] == [{"device": "lift-1", "moving": True}]
    assert merge_context(ctx, {"ready": False}) and ctx["ready"] is False
    assert not merge_context(ctx, {"zones": [3]})


# ---------------------------------------------------------------------- property: the invariants

_actions = st.lists(
    st.one_of(
        st.tuples(st.just("trigger"), st.sampled_from(["lift-1", "lift-2"]), st.integers(1, 3)),
        st.tuples(
            st.just("step"), st.sampled_from(["intercom", "maintainer", "record"]), st.just(0)
        ),
        st.tuples(st.just("close"), st.just(""), st.just(0)),
        st.tuples(st.just("tick"), st.just(""), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=examples(200), deadline=None)
@given(_actions, st.lists(st.floats(0, 900), min_size=40, max_size=40))
def test_invariants_hold_whatever_happens(actions: list, gaps: list[float]) -> None:
    b = book()
    now = T0
    announced: list[tuple[int, str]] = []
    for (kind, arg, n), gap in zip(actions, gaps, strict=False):
        now += gap
        if kind == "trigger":
            b.trigger(f"{arg}.entrapment", "entrapment", n, "critical", now)
        elif kind == "tick":
            announced += [(e.incident.id, e.step or "") for e in b.tick(now)]
        elif b.incidents:
            iid = max(b.incidents)
            try:
                if kind == "step":
                    b.complete_step(iid, arg, "x", "", now)
                else:
                    b.close(iid, "x", "cause", now, [])
            except IncidentRefused:
                pass
    # one incident per episode, never two
    seen = [ep for i in b.incidents.values() for ep in i.episodes]
    assert len(seen) == len(set(seen))
    # overdue announced at most once per step
    assert len(announced) == len(set(announced))
    for incident in b.incidents.values():
        # at most one open incident of the playbook at a time... within the joining window
        for step in incident.steps:
            assert step.done_at is None or step.done_by == "x"
            if step.overdue and step.due is not None:
                assert (step.done_at or now) > step.due
        assert incident.state == "open" or incident.cause == "cause"


# ---------------------------------------------------------------------- site file

SITE = """\
site: {id: t}
modbus: [{id: b, transport: tcp, host: 127.0.0.1, port: 5020}]
devices:
  - {id: lift-1, template: lift, modbus: {bus: b, unit: 1}}
"""


def test_builtins_are_valid_and_fire_follows_gb25201() -> None:
    specs = builtin_playbooks()
    assert set(specs) >= {"lift_entrapment", "fire", "power_outage", "water_outage", "water_leak"}
    fire = [s.id for s in specs["fire"].steps or []]
    assert fire.index("confirm") < fire.index("call_119") < fire.index("evacuate")


def test_site_overrides_a_builtin_and_adds_one(tmp_path: Path) -> None:
    text = SITE + (
        "playbooks:\n"
        "  - {id: lift_entrapment, join_within: 5m}\n"
        "  - id: lift_fault_plan\n"
        "    trigger: {alarm: lift-1.lift_fault}\n"
        "    steps: [{id: call, text: 叫维保, within: 1h}]\n"
    )
    site = load_site(tmp_path / "site.yaml", text)
    assert site.playbooks["lift_entrapment"].join_within == 300
    assert len(site.playbooks["lift_entrapment"].steps) == 5
    assert site.playbooks["lift_fault_plan"].alarms == {"lift-1.lift_fault"}


def test_site_errors_name_file_line_and_field(tmp_path: Path) -> None:
    text = SITE + (
        "playbooks:\n"
        "  - id: mine\n"
        "    trigger: {rules: [entrapmnet]}\n"
        "    steps: [{id: a, text: x}, {id: a, text: y}]\n"
        "  - id: other\n"
        "    steps: [{id: a, text: x}]\n"
    )
    with pytest.raises(SiteError) as err:
        load_site(tmp_path / "site.yaml", text)
    lines = str(err.value).splitlines()
    assert any(
        "site.yaml:7: playbooks[0].trigger.rules[0]" in ln and "did you mean 'entrapment'" in ln
        for ln in lines
    ), lines
    assert any("site.yaml:8: playbooks[0].steps[1].id" in ln for ln in lines), lines
    assert any("playbooks[1].trigger" in ln and "needs trigger" in ln for ln in lines), lines
