"""Life safety first (PRODUCT §9): a fire, an entrapment or a supply loss is never hidden or muted.

Through the real `Gateway` on injected clocks (no sockets), the configuration, the rule engine and
the alarm book: life-safety alarms are never `suppressed` by `depends_on` or another device's
comm_loss, never out of service, not shelvable by default; under a dead supply they stay active
and carry `during`; alarms an older configuration left suppressed come back at start. The state
machine at the end drives any sequence of root causes, floods, comm losses, ticket work, operator
actions and restarts and checks that none of them hides a life-safety alarm.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from config.errors import SiteError
from config.site import Site, load_site
from gateway.accounts import Accounts, fast_hasher
from gateway.api import create_app
from gateway.maintenance import Maintenance
from gateway.service import Gateway
from ground.model import DeviceStatus, Quality, Reading
from rules.alarms import ACTIVE_STATES, ShelveRefused, TransitionRefused
from rules.escalation import Escalator, Step
from rules.maintenance import TicketTransitionRefused
from tests.api_support import add_users, console_site, login
from tests.support import examples, free_port
from tests.unit.gateway.test_alarm_management import Plant

SITE = """
site: {{id: ls-test, name: Life safety test, locale: en, timezone: Asia/Shanghai}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: bus, unit: 1}}, depends_on: [meter-1]}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: bus, unit: 10}}}}
  - {{id: lift-1, template: lift, modbus: {{bus: bus, unit: 21}}, depends_on: [meter-1]}}
  - {{id: lift-2, template: lift, modbus: {{bus: bus, unit: 22}}, depends_on: [meter-1]}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 30}}, depends_on: [meter-1]}}
alarms:
  chattering: {{activations: 3, window: 60s, quiet: 10s}}
  flood: {{alarms: 3, window: 10m, end_at: 1}}
rules: [{rules}]
"""

ENTRAPMENT, FIRE = "lift-1.entrapment", "fire-1.fire_alarm"
LIFE_SAFETY = [
    ENTRAPMENT,
    "lift-2.entrapment",
    FIRE,
    "fire-1.fire_pump_unavailable",
    "meter-1.breaker_trip",
    "lift-1.comm_loss",
    "fire-1.comm_loss",
]
HIDDEN = ("suppressed", "out_of_service", "shelved")


def make_site(folder: Path, rules: str = "") -> Site:
    path = folder / "site.yaml"
    path.write_text(SITE.format(mqtt=free_port(), modbus=free_port(), rules=rules))
    return load_site(path)


@pytest.fixture
def plant(tmp_path: Path) -> Any:
    p = Plant(make_site(tmp_path))
    yield p
    p.close()


def escalating(plant: Plant, escalator: Escalator, seen: int = 0) -> int:
    """Feed the escalator the alarm events published since `seen`, as the notifier does."""
    for event in plant.events[seen:]:
        if event.get("type") == "alarm":
            escalator.observe(
                event["id"], event["priority"], event["to"], event["episode"], plant.clock.mono
            )
    return len(plant.events)


def rule_of(site: Site, alarm_id: str) -> Any:
    device, rule_id = alarm_id.split(".")
    return next(r for r in site.devices[device].rules if r.id == rule_id)


# ------------------------------------------------------------------ configuration


def test_which_rules_are_life_safety(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    for alarm_id in [*LIFE_SAFETY, "meter-1.phase_loss"]:
        r = rule_of(site, alarm_id)
        assert r.life_safety and r.priority == "critical" and not r.shelvable, alarm_id
    for alarm_id in (
        "pump-1.comm_loss",
        "meter-1.comm_loss",
        "lift-1.lift_fault",
        "pump-1.dry_run",
    ):
        r = rule_of(site, alarm_id)
        assert not r.life_safety and r.shelvable, alarm_id
    assert rule_of(site, "pump-1.comm_loss").priority == "high"


def test_site_rules_can_say_life_safety_and_shelvable(tmp_path: Path) -> None:
    rules = """
  {id: low_pressure, device: pump-1, life_safety: true},
  {id: fire_pump_unavailable, device: fire-1, shelvable: true},
  {id: phase_loss, device: meter-1, life_safety: false},
  {id: comm_loss, device: pump-1, priority: critical},
  {id: breaker_trip, device: meter-1, priority: high},
  {id: tank_low, device: pump-1, when: "outlet_pressure < 0.5", priority: critical}"""
    site = make_site(tmp_path, rules)
    low = rule_of(site, "pump-1.low_pressure")
    assert low.life_safety and not low.shelvable and low.priority == "high"
    pump = rule_of(site, "fire-1.fire_pump_unavailable")
    assert pump.life_safety and pump.shelvable  # the rule says so
    phase = rule_of(site, "meter-1.phase_loss")
    assert not phase.life_safety and phase.shelvable
    assert [w for w in site.warnings if "phase_loss" in str(w) and "not life-safety" in str(w)]
    assert rule_of(site, "pump-1.comm_loss").life_safety  # made critical: life-safety
    assert rule_of(site, "meter-1.breaker_trip").life_safety  # a lower priority alone keeps it
    assert rule_of(site, "pump-1.tank_low").life_safety


def test_a_bad_life_safety_value_names_file_line_and_field(tmp_path: Path) -> None:
    with pytest.raises(SiteError) as caught:
        make_site(tmp_path, "\n  {id: low_pressure, device: pump-1, life_safety: sometimes}")
    lines = (tmp_path / "site.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "sometimes" in text)
    assert f"site.yaml:{line}: rules[0].life_safety" in str(caught.value)


# ------------------------------------------------------------------ under a dead supply


def test_meter_offline_then_entrapment_and_fire_are_announced_with_during(plant: Plant) -> None:
    plant.status("meter-1", online=False)
    assert plant.state("meter-1.comm_loss") == "active_unack"
    plant.read("pump-1", fault=True)
    assert plant.state("pump-1.pump_fault") == "suppressed"  # consequential: suppressed
    plant.read("lift-1", alarm_button=True, floor=2)
    plant.read("fire-1", fire=True, zones=8)
    for alarm_id in (ENTRAPMENT, FIRE):
        shown = plant.shown(alarm_id)
        assert shown["state"] == "active_unack" and shown["during"] == "meter-1.comm_loss"
        assert shown["suppressed_by"] is None and shown["life_safety"] is True
        [event] = [e for e in plant.events if e.get("id") == alarm_id and e["to"] == "active_unack"]
        assert (
            event["during"] == "meter-1.comm_loss" and "during meter-1.comm_loss" in event["reason"]
        )
        assert plant.gw.book.get(alarm_id).record()["during"] == "meter-1.comm_loss"
    # a second entrapment while the meter is still silent is announced too
    plant.read("lift-2", alarm_button=True)
    assert plant.state("lift-2.entrapment") == "active_unack"
    # the meter answers again: `during` clears, the alarms stay as they are
    plant.status("meter-1", online=True)
    for alarm_id in (ENTRAPMENT, FIRE):
        shown = plant.shown(alarm_id)
        assert shown["state"] == "active_unack" and shown["during"] is None
        last = plant.gw.store.journal(alarm_id)[-1]
        assert (last.from_state, last.to_state) == ("active_unack", "active_unack")
    assert plant.state("pump-1.pump_fault") == "active_unack"


def test_an_announced_entrapment_stays_when_the_supply_dies(plant: Plant) -> None:
    plant.read("lift-1", alarm_button=True)
    plant.read("pump-1", fault=True)
    plant.read("meter-1", breaker_tripped=True)
    assert plant.state("meter-1.breaker_trip") == "active_unack"
    assert plant.state("pump-1.pump_fault") == "suppressed"
    shown = plant.shown(ENTRAPMENT)
    assert shown["state"] == "active_unack" and shown["during"] == "meter-1.breaker_trip"
    assert all(e.to_state != "suppressed" for e in plant.gw.store.journal(ENTRAPMENT))


def test_an_entrapment_stays_shown_when_its_own_lift_goes_silent(plant: Plant) -> None:
    plant.read("lift-1", alarm_button=True, fault_code=3)
    plant.status("lift-1", online=False)
    assert plant.state("lift-1.comm_loss") == "active_unack"
    assert plant.shown("lift-1.comm_loss")["priority"] == "critical"
    assert plant.state("lift-1.lift_fault") == "suppressed"  # not evaluated on stale data
    shown = plant.shown(ENTRAPMENT)  # the last known state, not hidden
    assert shown["state"] == "active_unack" and shown["during"] == "lift-1.comm_loss"
    plant.gw.acknowledge(ENTRAPMENT, "duty", "on the way")
    plant.status("lift-1", online=True)
    plant.read("lift-1", alarm_button=False, moving=True, fault_code=0)  # fresh data decides
    assert plant.state(ENTRAPMENT) == "normal"


@pytest.mark.parametrize("cause", ["meter-1", "lift-1"])
def test_during_survives_a_restart_and_clears_when_the_cause_answers(
    plant: Plant, cause: str
) -> None:
    plant.read("lift-1", alarm_button=True)
    plant.status(cause, online=False)
    assert plant.shown(ENTRAPMENT)["during"] == f"{cause}.comm_loss"
    rows = len(plant.gw.store.journal(ENTRAPMENT))
    plant.restart(kill=True)
    assert plant.gw.book.get(ENTRAPMENT).during == f"{cause}.comm_loss"  # a restart says nothing
    assert len(plant.gw.store.journal(ENTRAPMENT)) == rows
    if cause == "meter-1":
        plant.read("meter-1", voltage_l1=230.0)  # the meter answers after the restart
    else:
        plant.read("lift-1", alarm_button=True)  # the lift answers: still pressed
    shown = plant.shown(ENTRAPMENT)
    assert shown["state"] == "active_unack" and shown["during"] is None
    assert plant.state(f"{cause}.comm_loss") == "rtn_unack"


def test_a_change_of_during_opens_no_second_ticket(plant: Plant) -> None:
    m = plant.gw.capabilities.maintenance
    plant.read("lift-1", alarm_button=True)
    [ticket] = m.list_tickets()
    assert ticket["origin"]["alarm"] == ENTRAPMENT and ticket["urgency"] == "emergency"
    m.transition(ticket["id"], "cancelled", "duty", note="opened twice by the team")
    plant.status("meter-1", online=False)
    plant.status("meter-1", online=True)
    assert plant.shown(ENTRAPMENT)["during"] is None
    assert [t["id"] for t in m.list_tickets()] == [ticket["id"]]


def test_escalation_of_an_entrapment_goes_on_through_a_supply_loss(plant: Plant) -> None:
    escalator = Escalator({"critical": [Step(after=0.0, notify=("duty",), repeat=300.0)]})
    plant.read("lift-1", alarm_button=True)
    seen = escalating(plant, escalator)
    assert [n.alarm_id for n in escalator.tick(plant.clock.mono)] == [ENTRAPMENT]
    plant.status("meter-1", online=False)
    plant.advance(301.0, step=5.0)
    seen = escalating(plant, escalator, seen)
    due = {n.alarm_id: n.repeat for n in escalator.tick(plant.clock.mono)}
    assert due[ENTRAPMENT] == 1  # the second message: nothing stopped it
    plant.gw.acknowledge(ENTRAPMENT, "duty", "on my way")
    plant.drain()
    escalating(plant, escalator, seen)
    assert ENTRAPMENT not in escalator.tracked()


async def test_the_api_shows_during_and_life_safety(tmp_path: Path) -> None:
    gateway = Gateway(load_site(console_site(tmp_path, free_port())))
    accounts = Accounts(gateway.site.storage_dir, hasher=fast_hasher())
    add_users(accounts)
    app = create_app(gateway.context, gateway.capabilities, accounts=accounts)
    wall = gateway.clock.wall()
    gateway.readings([Reading("lift-1", "alarm_button", True, Quality.GOOD, wall)])
    gateway.device_status(DeviceStatus("lift-1", False, wall))
    gateway.process_queued()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            await login(c, "eddie")
            alarm = (await c.get(f"/api/v1/alarms/{ENTRAPMENT}")).json()
            listed = (await c.get("/api/v1/alarms")).json()["alarms"]
    finally:
        accounts.close()
        await gateway.close()
    assert alarm["state"] == "active_unack" and alarm["during"] == "lift-1.comm_loss"
    assert alarm["life_safety"] is True and alarm["shelvable"] is False
    comm = next(a for a in listed if a["id"] == "lift-1.comm_loss")
    assert comm["priority"] == "critical" and comm["life_safety"] is True


def test_life_safety_alarms_refuse_shelving_and_work(plant: Plant) -> None:
    plant.read("fire-1", fire_pump_ready=False)
    with pytest.raises(ShelveRefused):
        plant.gw.shelve("fire-1.fire_pump_unavailable", "op", 10, "noisy")
    with pytest.raises(TransitionRefused, match="life-safety"):
        plant.gw.remove_from_service(FIRE, "op", "test")


def test_alarms_left_suppressed_by_an_older_configuration_come_back_at_start(
    tmp_path: Path,
) -> None:
    old = make_site(tmp_path, "\n  {id: entrapment, device: lift-1, life_safety: false}")
    plant = Plant(old)
    try:
        plant.status("meter-1", online=False)
        plant.read("lift-1", alarm_button=True)
        assert plant.state(ENTRAPMENT) == "suppressed"
        plant.site = dataclasses.replace(make_site(tmp_path), path=old.path)
        plant.restart(kill=True)
        plant.drain()
        shown = plant.shown(ENTRAPMENT)
        assert shown["state"] == "active_unack" and shown["episode"] == 1
        last = plant.gw.store.journal(ENTRAPMENT)[-1]
        assert (last.from_state, last.to_state, last.by) == ("suppressed", "active_unack", "system")
        assert [e for e in plant.events if e.get("id") == ENTRAPMENT and e["to"] == "active_unack"]
    finally:
        plant.close()


# ------------------------------------------------------------------ the property, by hypothesis


class LifeSafetyMachine(RuleBasedStateMachine):
    """No sequence of root causes, floods, other devices' comm losses, ticket work, operator
    actions or restarts suppresses, shelves or mutes a life-safety alarm, or hides one whose
    condition holds."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="fgw-ls-"))
        self.plant = Plant(dataclasses.replace(SITE_ONCE, path=self.folder / "site.yaml"))
        self.escalator = Escalator({"critical": [Step(after=0.0, notify=("duty",), repeat=300.0)]})
        self.seen = 0

    def teardown(self) -> None:
        self.plant.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(lift=st.sampled_from(["lift-1", "lift-2"]), pressed=st.booleans())
    def entrapment(self, lift: str, pressed: bool) -> None:
        self.plant.read(lift, alarm_button=pressed, fault_code=int(pressed))

    @rule(fire=st.booleans(), pump_ready=st.booleans())
    def fire(self, fire: bool, pump_ready: bool) -> None:
        self.plant.read("fire-1", fire=fire, fire_pump_ready=pump_ready, supervisory=fire)

    @rule(tripped=st.booleans())
    def breaker(self, tripped: bool) -> None:
        self.plant.read("meter-1", breaker_tripped=tripped)

    @rule(fault=st.booleans())
    def pump(self, fault: bool) -> None:
        self.plant.read("pump-1", fault=fault)

    @rule(device=st.sampled_from(["meter-1", "lift-1", "fire-1", "pump-1"]), online=st.booleans())
    def comm(self, device: str, online: bool) -> None:
        self.plant.status(device, online)

    @rule(device=st.sampled_from(["lift-1", "fire-1", "meter-1"]), start=st.booleans())
    def work(self, device: str, start: bool) -> None:
        m = self.plant.gw.capabilities.maintenance
        assert isinstance(m, Maintenance)
        active = [t for t in m.list_tickets("active") if t["device"] == device]
        try:
            if start:
                ticket = active[0] if active else m.create_ticket(device, "work", "urgent", "d")
                m.transition(ticket["id"], "in_progress", "wang")
            elif active:
                m.transition(active[0]["id"], "assigned", "wang", assignee="li")
        except TicketTransitionRefused:
            pass
        self.plant.drain()

    @rule(alarm_id=st.sampled_from(LIFE_SAFETY))
    def ack(self, alarm_id: str) -> None:
        try:
            self.plant.gw.acknowledge(alarm_id, "op", "")
        except TransitionRefused:
            pass
        self.plant.drain()

    @rule(alarm_id=st.sampled_from(LIFE_SAFETY))
    def try_to_hide(self, alarm_id: str) -> None:
        with pytest.raises(ShelveRefused):
            self.plant.gw.shelve(alarm_id, "op", 10, "annoying")
        with pytest.raises(TransitionRefused):
            self.plant.gw.remove_from_service(alarm_id, "op", "annoying")

    @rule(seconds=st.sampled_from([0.5, 11.0, 700.0, 5 * 3600.0]))
    def time_passes(self, seconds: float) -> None:
        self.plant.advance(seconds, step=0.25 if seconds < 20 else max(5.0, seconds / 100))

    @rule(kill=st.booleans())
    def restart(self, kill: bool) -> None:
        self.plant.restart(kill)
        self.plant.drain()

    @invariant()
    def escalation_goes_on_until_acknowledged(self) -> None:
        self.seen = escalating(self.plant, self.escalator, self.seen)
        tracked = set(self.escalator.tracked())
        for alarm_id in LIFE_SAFETY:
            if self.plant.gw.book.get(alarm_id).state == "active_unack":
                assert alarm_id in tracked, alarm_id

    @invariant()
    def never_hidden(self) -> None:
        book, engine = self.plant.gw.book, self.plant.gw.engine
        for alarm_id in LIFE_SAFETY:
            alarm = book.get(alarm_id)
            assert alarm.state not in HIDDEN, (alarm_id, alarm.state)
            assert not alarm.suppressed_by and not alarm.out_of_service
            if alarm.condition_active:
                assert alarm.state in ACTIVE_STATES, (alarm_id, alarm.state)
            if alarm.during is not None:
                assert alarm.condition_active and alarm.during in engine.active()
            shown = self.plant.shown(alarm_id)
            assert (shown["state"] if shown else "normal") == alarm.state
            assert all(e.to_state not in HIDDEN for e in self.plant.gw.store.journal(alarm_id))
        for alarm in book.all():  # comm_loss is never muted by work
            if alarm.rule == "comm_loss":
                assert alarm.state != "out_of_service"


SITE_ONCE: Site


@pytest.fixture(scope="module", autouse=True)
def _site_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    global SITE_ONCE
    SITE_ONCE = make_site(tmp_path_factory.mktemp("ls-site"))


LifeSafetyMachine.TestCase.settings = settings(
    max_examples=examples(40),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_life_safety_state_machine = LifeSafetyMachine.TestCase
