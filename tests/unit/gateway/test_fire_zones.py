"""Fire zones decoded: every zone in alarm by number and name, the message following new zones.

A second zone going into fire while the alarm is active rewords the alarm as a same-state
transition: never a new episode, never a re-raise, an acknowledgement kept, no second ticket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import SiteError
from config.site import Site, load_site
from rules.messages import bits, render
from tests.support import free_port
from tests.unit.gateway.test_alarm_management import Plant

SITE = """\
site: {{id: zones-test, name: Zones test, locale: zh-CN, timezone: Asia/Shanghai}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - id: fire-1
    name: 消防主机 / Fire panel
    template: fire_panel
    modbus: {{bus: bus, unit: 30}}
    zones:
      3: B1 车库 / B1 garage
      5: {{zh: 一层大堂, en: Lobby}}
{extra}
"""

FIRE = "fire-1.fire_alarm"
SITE_RULES: list[Any] = []  # the fire panel's rules from the site above, loaded once


@pytest.fixture(autouse=True, scope="module")
def _site_rules(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not SITE_RULES:
        SITE_RULES.extend(make_site(tmp_path_factory.mktemp("rules")).rules())


def make_site(folder: Path, extra: str = "") -> Site:
    path = folder / "site.yaml"
    path.write_text(SITE.format(mqtt=free_port(), modbus=free_port(), extra=extra))
    return load_site(path)


@pytest.fixture
def plant(tmp_path: Path) -> Any:
    p = Plant(make_site(tmp_path))
    p.read("fire-1", fire=False, zones=0, first_zone=0, fire_pump_ready=True, fault=False)
    yield p
    p.close()


def zones(*numbers: int) -> int:
    return sum(1 << (n - 1) for n in numbers)


# ------------------------------------------------------------------ decoding


@given(st.integers(min_value=0, max_value=0xFFFF))
def test_bits_lists_exactly_the_set_bits(value: int) -> None:
    text = bits(value, {})
    if value == 0:
        assert text == "?"
    else:
        listed = [int(n) for n in text.split(", ")]
        assert listed == sorted(listed)
        assert sum(1 << (n - 1) for n in listed) == value


@given(st.integers(min_value=1, max_value=0xFFFF), st.dictionaries(st.integers(1, 16), st.text()))
def test_bits_names_the_zones_it_knows(value: int, names: dict[int, str]) -> None:
    text = bits(value, names)
    for n in range(1, 17):
        if value >> (n - 1) & 1 and names.get(n):
            assert f"{n} ({names[n]})" in text


@pytest.mark.parametrize("value", [True, "3", -4, 2.5, None])
def test_bits_of_a_value_that_is_no_mask_is_unknown(value: Any) -> None:
    assert render("{zones:bits}", {"zones": value}) == "?"


def test_bits_of_a_whole_float_counts_as_its_integer() -> None:
    assert render("{z:bits}", {"z": 20.0}) == "3, 5"


# ------------------------------------------------------------------ the site file


def test_zone_names_are_read_in_both_languages(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    rule = next(r for r in site.devices["fire-1"].rules if r.id == "fire_alarm")
    names = dict(rule.zones)
    assert (names[3].zh, names[3].en) == ("B1 车库", "B1 garage")
    assert (names[5].zh, names[5].en) == ("一层大堂", "Lobby")
    assert rule.follows == ("zones",)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 1},"
            " zones: {1: Garage}}",
            "devices[1].zones: zone names need a device with a zones point",
        ),
        (
            "  - {id: fire-2, template: fire_panel, modbus: {bus: bus, unit: 31},"
            " zones: {17: Roof}}",
            "devices[1].zones",
        ),
        (
            "rules:\n  - {id: low, device: fire-1, when: 'sprinkler_pressure < 0.1',"
            " priority: high, message_follows: [zones]}",
            "rules[0].message_follows: message_follows: 'zones' is not in when:",
        ),
    ],
)
def test_bad_zone_settings_name_file_line_and_field(
    tmp_path: Path, extra: str, expected: str
) -> None:
    with pytest.raises(SiteError) as caught:
        make_site(tmp_path, extra)
    text = str(caught.value)
    assert expected in text
    assert "site.yaml:1" in text  # the line of the offending entry (line 10 or later)


# ------------------------------------------------------------------ the alarm


def test_fire_lists_every_zone_by_number_and_name(plant: Plant) -> None:
    plant.read("fire-1", fire=True, zones=zones(3, 9), first_zone=3)
    alarm = plant.gw.book.get(FIRE)
    assert alarm.message_zh == "火警! 报警防区: 3 (B1 车库), 9"
    assert alarm.message_en == "FIRE! Zones in alarm: 3 (B1 garage), 9"
    assert alarm.message == alarm.message_zh  # the site's locale
    retained = plant.retained["fgw/zones-test/alarms/fire-1/fire_alarm"]
    assert retained["message"] == alarm.message_zh and retained["state"] == "active_unack"


def test_a_second_zone_rewords_the_active_alarm_without_raising_it_again(plant: Plant) -> None:
    plant.read("fire-1", fire=True, zones=zones(3), first_zone=3)
    raised = plant.gw.book.get(FIRE).copy()
    seen = len(plant.events)
    plant.read("fire-1", fire=True, zones=zones(3, 5), first_zone=3)
    alarm = plant.gw.book.get(FIRE)
    assert alarm.message_en == "FIRE! Zones in alarm: 3 (B1 garage), 5 (Lobby)"
    assert (alarm.episode, alarm.raised_at, str(alarm.state)) == (
        raised.episode,
        raised.raised_at,
        "active_unack",
    )
    updates = [e for e in plant.events[seen:] if e.get("type") == "alarm" and e["id"] == FIRE]
    assert [(e["from"], e["to"], e["episode"]) for e in updates] == [
        ("active_unack", "active_unack", raised.episode)
    ]
    assert "5 (一层大堂)" in updates[0]["message"]
    retained = plant.retained["fgw/zones-test/alarms/fire-1/fire_alarm"]
    assert "5 (一层大堂)" in retained["message"]
    tickets = [e for e in plant.events if e.get("type") == "ticket" and e["action"] == "created"]
    assert len([t for t in tickets if t["ticket"]["device"] == "fire-1"]) == 1


def test_an_acknowledged_fire_stays_acknowledged_as_zones_are_added(plant: Plant) -> None:
    plant.read("fire-1", fire=True, zones=zones(3), first_zone=3)
    plant.gw.acknowledge(FIRE, "wang", "on my way")
    plant.drain()
    plant.read("fire-1", fire=True, zones=zones(3, 5), first_zone=3)
    alarm = plant.gw.book.get(FIRE)
    assert str(alarm.state) == "active_ack" and alarm.acked_by == "wang"
    assert "5 (一层大堂)" in alarm.message_zh
    last = [e for e in plant.events if e.get("type") == "alarm" and e["id"] == FIRE][-1]
    assert (last["from"], last["to"]) == ("active_ack", "active_ack")


def test_same_zones_again_publish_nothing(plant: Plant) -> None:
    plant.read("fire-1", fire=True, zones=zones(3), first_zone=3)
    seen = len(plant.events)
    plant.read("fire-1", fire=True, zones=zones(3), first_zone=3)
    plant.read("fire-1", fire_pump_ready=True)
    assert [e for e in plant.events[seen:] if e.get("type") == "alarm"] == []


def test_the_message_keeps_the_zones_once_the_fire_is_out(plant: Plant) -> None:
    plant.read("fire-1", fire=True, zones=zones(3, 5), first_zone=3)
    plant.read("fire-1", fire=False, zones=0, first_zone=0)
    alarm = plant.gw.book.get(FIRE)
    assert str(alarm.state) == "rtn_unack"
    assert alarm.message_en == "FIRE! Zones in alarm: 3 (B1 garage), 5 (Lobby)"


# ------------------------------------------------------------------ property: pure engine and book


@given(
    st.lists(
        st.one_of(st.integers(min_value=0, max_value=0xFFFF), st.just("ack")),
        min_size=1,
        max_size=30,
    )
)
def test_zones_come_and_go_without_a_new_episode_while_the_fire_holds(steps: list[Any]) -> None:
    """Whatever the zones do, an alarm that stays active keeps its episode and acknowledgement,
    its message lists exactly the zones in alarm, and a reworded alarm is a same-state transition."""
    from ground.model import Quality, Reading
    from rules.alarms import AlarmBook
    from rules.engine import RuleEngine

    rules = [r for r in SITE_RULES if r.device == "fire-1"]
    engine, book = RuleEngine(rules), AlarmBook(rules, locale="en")
    now = 0.0
    ready = [
        Reading("fire-1", "fire_pump_ready", True, Quality.GOOD, 1e9),
        Reading("fire-1", "fire", False, Quality.GOOD, 1e9),
    ]
    for change in engine.ingest(ready, now):
        book.apply(change)
    episode, zones_before = 0, 0
    for step in steps:
        now += 1.0
        alarm = book.get(FIRE)
        if step == "ack":
            if str(alarm.state) in ("active_unack", "rtn_unack"):
                book.acknowledge(FIRE, "wang", "", 1e9 + now)
            continue
        batch = [
            Reading("fire-1", "zones", step, Quality.GOOD, 1e9 + now),
            Reading("fire-1", "fire", step != 0, Quality.GOOD, 1e9 + now),
        ]
        before = (str(alarm.state), alarm.episode, alarm.acked_by)
        transitions = [t for c in engine.ingest(batch, now) for t in book.apply(c)]
        alarm = book.get(FIRE)
        if step:
            assert str(alarm.state) in ("active_unack", "active_ack")
            listed = alarm.message_en.removeprefix("FIRE! Zones in alarm: ")
            numbers = [int(part.split(" ")[0]) for part in listed.split(", ")]
            assert sum(1 << (n - 1) for n in numbers) == step
            if zones_before:  # the fire held: the same episode, acknowledgement kept
                assert (str(alarm.state), alarm.episode, alarm.acked_by) == before
                assert all(t.from_state == t.to_state for t in transitions)
                assert len(transitions) == (1 if step != zones_before else 0)
            else:
                episode += 1
                assert alarm.episode == episode
        zones_before = step
