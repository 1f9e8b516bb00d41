"""Alarm management through the real `Gateway` on injected clocks, without sockets.

Readings go in through the gateway's `ReadingSink`, time passes through `tick_once()`, and what the
gateway would publish is read from its publisher's outbox — the same bytes the broker would get.
Restarts build a new `Gateway` on the same SQLite storage; a "kill" drops the old one without any
shutdown, as SIGKILL would. The hypothesis state machine at the end drives any sequence of values,
operator actions, timer expiries and restarts and checks the invariants of the issue.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from config.site import Site, load_site
from gateway.service import Gateway
from ground.model import DeviceStatus, Quality, Reading
from rules.alarms import ShelveRefused, TransitionRefused, UnknownAlarm
from tests.support import examples, free_port

WALL0 = 1_800_000_000.0

SITE = """
site: {{id: am-test, name: Alarm management test, locale: en}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: bus, unit: 1}}, depends_on: [meter-1]}}
  - {{id: pump-2, template: booster_pump, modbus: {{bus: bus, unit: 2}}, depends_on: [meter-1]}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: bus, unit: 10}}}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 30}}}}
alarms:
  chattering: {{activations: 3, window: 60s, quiet: 10s}}
  flood: {{alarms: 4, window: 10m, end_at: 1}}
rules:
  - {{id: dry_run, device: pump-1, for: 10s}}
"""


def make_site(folder: Path) -> Site:
    path = folder / "site.yaml"
    path.write_text(SITE.format(mqtt=free_port(), modbus=free_port()))
    return load_site(path)


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0
        self.offset = WALL0 - 100.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.mono + self.offset


class Plant:
    """A gateway on fake clocks, and the retained topics a broker would hold."""

    def __init__(self, site: Site, clock: Clock | None = None) -> None:
        self.site = site
        self.clock = clock or Clock()
        self.retained: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.gw = self._start()

    def _start(self) -> Gateway:
        gw = Gateway(self.site, monotonic=self.clock.monotonic, wall=self.clock.wall)
        for payload in gw._retained_snapshot():  # what the publisher re-publishes on connect
            self.retained[f"{gw.publisher.prefix}/alarms/{payload['device']}/{payload['rule']}"] = (
                payload
            )
        return gw

    def restart(self, kill: bool) -> None:
        self.drain()
        if not kill:
            self.gw.store.close()
            self.gw.history.close()
        self.gw = self._start()

    def close(self) -> None:
        self.gw.store.close()
        self.gw.history.close()

    def drain(self) -> None:
        outbox = self.gw.publisher.outbox
        messages = outbox.peek(len(outbox))
        for m in messages:
            if m.topic.endswith("/events"):
                self.events.append(json.loads(m.payload))
            elif "/alarms/" in m.topic:
                self.retained[m.topic] = json.loads(m.payload) if m.payload else None
        if messages:
            outbox.ack(messages[-1].seq)

    def read(self, device: str, **values: Any) -> None:
        wall = self.clock.wall()
        self.gw.readings([Reading(device, p, v, Quality.GOOD, wall) for p, v in values.items()])
        self.gw.process_queued()
        self.drain()

    def status(self, device: str, online: bool) -> None:
        self.gw.device_status(DeviceStatus(device, online, self.clock.wall()))
        self.gw.process_queued()
        self.drain()

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.clock.mono + seconds
        while self.clock.mono < end - 1e-9:
            self.clock.mono = min(end, self.clock.mono + step)
            self.gw.tick_once()
        self.drain()

    def state(self, alarm_id: str) -> str:
        return str(self.gw.book.get(alarm_id).state)

    def shown(self, alarm_id: str) -> dict[str, Any] | None:
        device, rule = alarm_id.split(".")
        return self.retained.get(f"{self.gw.publisher.prefix}/alarms/{device}/{rule}")

    def journal_states(self, alarm_id: str) -> list[tuple[str, str, int]]:
        return [(e.from_state, e.to_state, e.episode) for e in self.gw.store.journal(alarm_id)]


@pytest.fixture
def plant(tmp_path: Path) -> Any:
    p = Plant(make_site(tmp_path))
    yield p
    p.close()


FAULT = "pump-1.pump_fault"
FIRE = "fire-1.fire_alarm"


# ------------------------------------------------------------------ operator methods


def test_shelve_unshelve_and_its_refusals(plant: Plant) -> None:
    plant.read("pump-1", fault=True)
    payload = plant.gw.shelve(FAULT, "dave", 30, "sensor being replaced")
    assert payload["state"] == "shelved" and payload["shelved_by"] == "dave"
    assert payload["shelve_reason"] == "sensor being replaced"
    assert payload["shelved_until"] == "2027-01-15T08:30:00.000Z"
    with pytest.raises(TransitionRefused):
        plant.gw.shelve(FAULT, "dave", 30, "again")
    with pytest.raises(ValueError, match="minutes"):
        plant.gw.shelve("pump-2.pump_fault", "dave", 0, "no time")
    with pytest.raises(UnknownAlarm):
        plant.gw.shelve("pump-9.pump_fault", "dave", 5, "x")
    plant.read("fire-1", fire=True)
    with pytest.raises(ShelveRefused):
        plant.gw.shelve(FIRE, "dave", 5, "annoying")
    assert plant.state(FIRE) == "active_unack"
    assert plant.gw.unshelve(FAULT, "dave")["state"] == "active_unack"
    with pytest.raises(TransitionRefused):
        plant.gw.unshelve(FAULT, "dave")
    plant.drain()
    assert plant.shown(FAULT)["state"] == "active_unack"


def test_shelving_ends_by_itself_back_to_the_true_state(plant: Plant) -> None:
    plant.read("pump-1", fault=True)
    plant.gw.acknowledge(FAULT, "ann", "on it")
    plant.gw.shelve(FAULT, "ann", 1, "pump being serviced")
    plant.read("pump-1", fault=False)  # cleared while shelved: hidden
    assert plant.state(FAULT) == "shelved"
    plant.advance(59.0)
    assert plant.state(FAULT) == "shelved"
    plant.advance(1.25)
    assert plant.state(FAULT) == "normal"
    assert plant.shown(FAULT) is None  # normal and acknowledged: the retained topic is emptied
    last = plant.gw.journal(FAULT)[-1]
    assert (last["from"], last["to"], last["by"], last["reason"]) == (
        "shelved", "normal", "system", "shelving expired",
    )  # fmt: skip


def test_acknowledge_device_and_out_of_service(plant: Plant) -> None:
    plant.read("pump-1", fault=True, running=True, flow=0.0)
    plant.advance(10.0)
    assert plant.state("pump-1.dry_run") == "active_unack"
    assert sorted(plant.gw.acknowledge_device("pump-1", "ann", "both seen")) == [
        "pump-1.dry_run", FAULT,
    ]  # fmt: skip
    assert plant.gw.acknowledge_device("pump-1", "ann", "") == []
    with pytest.raises(UnknownAlarm):
        plant.gw.acknowledge_device("pump-9", "ann", "")
    payload = plant.gw.remove_from_service(FAULT, "eve", "controller replaced")
    assert payload["state"] == "out_of_service" and payload["out_of_service"] is True
    with pytest.raises(TransitionRefused):
        plant.gw.remove_from_service(FAULT, "eve", "again")
    plant.read("pump-1", fault=False)
    assert plant.gw.return_to_service(FAULT, "eve")["state"] == "normal"
    journal = plant.gw.journal(FAULT)
    assert [(j["to"], j["by"]) for j in journal] == [
        ("active_unack", "system"), ("active_ack", "ann"), ("out_of_service", "eve"),
        ("normal", "eve"),
    ]  # fmt: skip
    assert journal[2]["reason"] == "controller replaced"
    with pytest.raises(UnknownAlarm):
        plant.gw.journal("nope.nope")


# ------------------------------------------------------------------ suppression by design


def test_breaker_trip_suppresses_the_dependent_pumps_and_links_the_cause(plant: Plant) -> None:
    plant.read("meter-1", breaker_tripped=True)
    assert plant.state("meter-1.breaker_trip") == "active_unack"
    plant.read("pump-1", fault=True)  # the consequence: the pumps lose their supply
    plant.read("pump-2", fault=True)
    for pump in ("pump-1", "pump-2"):
        shown = plant.shown(f"{pump}.pump_fault")
        assert shown["state"] == "suppressed"
        assert shown["suppressed_by"] == "meter-1.breaker_trip"
        assert shown["episode"] == 0  # never announced: no episode
    event = next(e for e in plant.events if e.get("id") == FAULT)
    assert event["to"] == "suppressed" and event["cause"] == "meter-1.breaker_trip"
    announced = [e for e in plant.events if e.get("to") == "active_unack"]
    assert [e["id"] for e in announced] == ["meter-1.breaker_trip"]  # one alarm, not three
    # power back and the pumps recover with it: nothing left to say about them
    plant.read("pump-1", fault=False)
    plant.read("pump-2", fault=False)
    plant.read("meter-1", breaker_tripped=False)
    assert plant.state(FAULT) == "normal" and plant.shown(FAULT) is None


# ------------------------------------------------------------------ chattering and floods


def test_a_chattering_alarm_is_latched_until_quiet(plant: Plant) -> None:
    for _ in range(3):
        plant.read("pump-1", fault=True)
        plant.advance(0.5)
        plant.read("pump-1", fault=False)
        plant.advance(0.5)
    assert not plant.gw.book.get(FAULT).chattering
    plant.read("pump-1", fault=True)  # the 4th activation within 60 s
    alarm = plant.shown(FAULT)
    assert alarm["chattering"] is True and alarm["state"] == "active_unack"
    plant.read("pump-1", fault=False)
    plant.advance(2.0)
    plant.read("pump-1", fault=True)
    plant.advance(2.0)
    plant.read("pump-1", fault=False)
    assert plant.state(FAULT) == "active_unack"  # held: the flips are not shown
    plant.advance(9.75)
    assert plant.state(FAULT) == "active_unack"
    plant.advance(0.5)  # 10 s calm
    assert plant.state(FAULT) == "rtn_unack"
    assert plant.shown(FAULT)["chattering"] is False
    flags = [j for j in plant.gw.journal(FAULT) if j["from"] == j["to"]]
    assert [j["chattering"] for j in flags] == [True, False]
    assert "4 activations" in flags[0]["reason"]


def test_a_flood_is_published_with_its_first_out(plant: Plant) -> None:
    plant.read("meter-1", voltage_l1=0.0, voltage_l2=230.0, voltage_l3=230.0)  # phase loss first
    plant.advance(1.0)
    plant.read("fire-1", fire=True, battery_low=True, fault=True)
    plant.read("pump-2", fault=True)  # suppressed by the phase loss upstream: not counted
    plant.read("fire-1", supervisory=True)
    floods = [e for e in plant.events if e.get("type") == "flood"]
    assert [f["state"] for f in floods] == ["started"]
    flood = floods[0]
    assert flood["first_out"] == "meter-1.phase_loss" and flood["count"] == 5
    assert plant.shown("meter-1.phase_loss")["first_out"] is True
    assert plant.shown("fire-1.supervisory")["first_out"] is False
    plant.advance(600.0, step=5.0)
    floods = [e for e in plant.events if e.get("type") == "flood"]
    assert [f["state"] for f in floods] == ["started", "ended"]
    assert plant.gw.alarming.floods_total == 1


# ------------------------------------------------------------------ restarts


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "sigterm"])
def test_restart_restores_states_acks_shelves_and_a_pending_on_delay(
    tmp_path: Path, kill: bool
) -> None:
    plant = Plant(make_site(tmp_path))
    plant.read("fire-1", fire=True)
    plant.gw.acknowledge(FIRE, "ann", "fire brigade called")
    plant.read("pump-2", fault=True)
    plant.gw.shelve("pump-2.pump_fault", "bob", 10, "waiting for parts")
    plant.read("pump-1", running=True, flow=0.0)  # dry_run's 10 s on-delay starts
    plant.advance(4.0)
    assert plant.gw.store.timers() == {"pump-1.dry_run": ("on", WALL0 + 0.0)}
    before = {a.id: a.record() for a in plant.gw.book.all()}
    plant.restart(kill=kill)
    plant.advance(3.0)  # down for 3 s
    after = {a.id: a.record() for a in plant.gw.book.all()}
    assert after == before
    assert plant.state(FIRE) == "active_ack" and plant.gw.book.get(FIRE).acked_by == "ann"
    assert plant.gw.book.get("pump-2.pump_fault").shelved_until == WALL0 + 600.0
    plant.read("pump-1", running=True, flow=0.0)  # fresh data: 7 s of the 10 s have passed
    assert plant.state("pump-1.dry_run") == "normal"
    plant.advance(2.75)
    assert plant.state("pump-1.dry_run") == "normal"
    plant.advance(0.5)
    assert plant.state("pump-1.dry_run") == "active_unack"
    assert plant.gw.book.get("pump-1.dry_run").episode == 1
    # the shelve ends on time, after the restart
    plant.advance(600.0 - 10.25, step=5.0)
    assert plant.state("pump-2.pump_fault") == "active_unack"
    assert plant.gw.book.get("pump-2.pump_fault").episode == 1  # the same episode, not a new one
    for alarm_id in (FIRE, "pump-2.pump_fault", "pump-1.dry_run"):
        rows = plant.journal_states(alarm_id)
        assert [r for r in rows if r[1] == "active_unack" and r[0] == "normal"] == [rows[0]]
        assert plant.shown(alarm_id)["state"] == rows[-1][1]
    plant.close()


# ------------------------------------------------------------------ the state machine, by hypothesis

ALARMS = [FAULT, "pump-1.dry_run", FIRE, "meter-1.breaker_trip", "pump-2.pump_fault"]


class GatewayMachine(RuleBasedStateMachine):
    """Any sequence of values, operator actions, time and restarts keeps the invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="fgw-am-"))
        self.site = dataclasses.replace(SITE_ONCE, path=self.folder / "site.yaml")
        self.plant = Plant(self.site)

    def teardown(self) -> None:
        self.plant.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(fault=st.booleans(), pump=st.sampled_from(["pump-1", "pump-2"]))
    def pump_fault(self, fault: bool, pump: str) -> None:
        self.plant.read(pump, fault=fault)

    @rule(dry=st.booleans())
    def pump_flow(self, dry: bool) -> None:
        self.plant.read("pump-1", running=True, flow=0.0 if dry else 5.0)

    @rule(fire=st.booleans())
    def fire(self, fire: bool) -> None:
        self.plant.read("fire-1", fire=fire)

    @rule(tripped=st.booleans())
    def breaker(self, tripped: bool) -> None:
        self.plant.read("meter-1", breaker_tripped=tripped)

    @rule(device=st.sampled_from(["pump-1", "meter-1"]), online=st.booleans())
    def comm(self, device: str, online: bool) -> None:
        self.plant.status(device, online)

    @rule(seconds=st.sampled_from([0.5, 3.0, 11.0, 65.0, 700.0]))
    def time_passes(self, seconds: float) -> None:
        self.plant.advance(seconds, step=0.25 if seconds < 20 else 5.0)

    @rule(alarm_id=st.sampled_from(ALARMS))
    def ack(self, alarm_id: str) -> None:
        try:
            self.plant.gw.acknowledge(alarm_id, "op", "")
        except TransitionRefused:
            assert self.plant.state(alarm_id) not in ("active_unack", "rtn_unack")
        self.plant.drain()

    @rule(alarm_id=st.sampled_from(ALARMS), minutes=st.sampled_from([1, 10]))
    def shelve(self, alarm_id: str, minutes: int) -> None:
        try:
            self.plant.gw.shelve(alarm_id, "op", minutes, "test")
        except ShelveRefused:
            assert alarm_id in (FIRE, "meter-1.breaker_trip")  # life-safety: not shelvable
        except TransitionRefused:
            assert self.plant.state(alarm_id) in ("shelved", "out_of_service")
        self.plant.drain()

    @rule(alarm_id=st.sampled_from(ALARMS))
    def unshelve(self, alarm_id: str) -> None:
        try:
            self.plant.gw.unshelve(alarm_id, "op")
        except TransitionRefused:
            assert self.plant.gw.book.get(alarm_id).shelved_until is None
        self.plant.drain()

    @rule(alarm_id=st.sampled_from(ALARMS), out=st.booleans())
    def service(self, alarm_id: str, out: bool) -> None:
        try:
            if out:
                self.plant.gw.remove_from_service(alarm_id, "op", "test")
            else:
                self.plant.gw.return_to_service(alarm_id, "op")
        except TransitionRefused:
            pass
        self.plant.drain()

    @rule(kill=st.booleans())
    def restart(self, kill: bool) -> None:
        before = {a.id: a.record() for a in self.plant.gw.book.all()}
        rows = len(self.plant.gw.store.journal(limit=100_000))
        self.plant.restart(kill)
        assert {a.id: a.record() for a in self.plant.gw.book.all()} == before
        assert len(self.plant.gw.store.journal(limit=100_000)) == rows  # a restart says nothing

    @invariant()
    def retained_state_is_the_journals_last_transition(self) -> None:
        for alarm_id in ALARMS:
            rows = self.plant.journal_states(alarm_id)
            last = rows[-1][1] if rows else "normal"
            assert self.plant.state(alarm_id) == last
            shown = self.plant.shown(alarm_id)
            assert (shown["state"] if shown else "normal") == last, alarm_id

    @invariant()
    def one_open_episode_at_most(self) -> None:
        for alarm_id in ALARMS:
            rows = self.plant.journal_states(alarm_id)
            episode = 0
            for from_state, to_state, ep in rows:
                assert ep in (episode, episode + 1)
                if ep == episode + 1:  # a new episode is born announced, from a closed one
                    assert to_state == "active_unack"
                    assert from_state != "active_ack"
                episode = ep

    @invariant()
    def a_non_shelvable_alarm_is_never_shelved(self) -> None:
        assert self.plant.state(FIRE) != "shelved"
        assert all(to != "shelved" for _, to, _ in self.plant.journal_states(FIRE))


SITE_ONCE: Site


@pytest.fixture(scope="module", autouse=True)
def _site_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    global SITE_ONCE
    SITE_ONCE = make_site(tmp_path_factory.mktemp("am-site"))


GatewayMachine.TestCase.settings = settings(
    max_examples=examples(40),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_gateway_state_machine = GatewayMachine.TestCase
