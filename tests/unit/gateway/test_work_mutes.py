"""Work mutes less, and not for long (PRODUCT §9): a real `Gateway` on injected clocks, no sockets.

While a ticket is `in_progress` its device's alarms are out of service — never life-safety alarms
nor comm_loss, never for a preventive ticket whose plan does not say `mutes: true` — and only until
the ticket's resolution target or `tickets.mute_limit`, whichever is sooner. Then they come back in
the state the latest readings give, and a `work_overran` ticket event names the ticket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.errors import SiteError
from config.site import Site, load_site
from gateway.maintenance import Maintenance
from rules.maintenance.mutes import alarms_to_mute, may_mute, mute_until
from rules.maintenance.tickets import Ticket
from tests.support import free_port
from tests.unit.gateway.test_alarm_management import Plant

HOUR = 3600.0

SITE = """
site: {{id: mute-test, name: Mute test, locale: en, timezone: Asia/Shanghai}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: bus, unit: 1}}, depends_on: [meter-1]}}
  - {{id: pump-2, template: booster_pump, modbus: {{bus: bus, unit: 2}}, depends_on: [meter-1]}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: bus, unit: 10}}}}
  - {{id: lift-1, template: lift, modbus: {{bus: bus, unit: 21}}, depends_on: [meter-1]}}
tickets: {{{tickets}}}
maintenance:
  - {{id: pump_weekly, devices: [pump-1], every: 1w, title: Pump weekly check, mutes: true}}
  - {{id: pump_weekly, devices: [pump-2], every: 1w, title: Pump weekly check}}
"""


def make_site(folder: Path, tickets: str = "") -> Site:
    path = folder / "site.yaml"
    path.write_text(SITE.format(mqtt=free_port(), modbus=free_port(), tickets=tickets))
    return load_site(path)


def maint(plant: Plant) -> Maintenance:
    component = plant.gw.capabilities.maintenance
    assert isinstance(component, Maintenance)
    return component


def ticket_events(plant: Plant, action: str) -> list[dict[str, Any]]:
    return [e for e in plant.events if e.get("type") == "ticket" and e.get("action") == action]


def start_work(plant: Plant, device: str, urgency: str = "urgent") -> dict[str, Any]:
    m = maint(plant)
    ticket = m.create_ticket(device, "Noisy bearing", urgency, "duty")
    working = m.transition(ticket["id"], "in_progress", "wang", note="on site")
    plant.drain()
    return working


@pytest.fixture
def plant(tmp_path: Path) -> Any:
    p = Plant(make_site(tmp_path))
    yield p
    p.close()


# ------------------------------------------------------------------ what work may mute


def test_work_never_mutes_life_safety_alarms_nor_comm_loss(plant: Plant) -> None:
    plant.read("lift-1", alarm_button=True, fault_code=7)
    assert plant.state("lift-1.entrapment") == "active_unack"
    working = start_work(plant, "lift-1")
    assert "lift-1.lift_fault" in working["out_of_service"]
    assert "lift-1.entrapment" not in working["out_of_service"]
    assert "lift-1.comm_loss" not in working["out_of_service"]
    assert plant.state("lift-1.entrapment") == "active_unack"  # still there, still escalating
    assert plant.state("lift-1.lift_fault") == "out_of_service"
    plant.status("lift-1", online=False)  # the lift goes silent while someone works on it
    assert plant.state("lift-1.comm_loss") == "active_unack"
    assert plant.shown("lift-1.comm_loss")["priority"] == "critical"
    working = start_work(plant, "pump-2")
    assert "pump-2.comm_loss" not in working["out_of_service"]


def test_a_preventive_ticket_mutes_nothing_unless_its_plan_says_mutes(plant: Plant) -> None:
    m = maint(plant)
    m.check(plant.clock.wall() + 8 * 86400.0)  # both weekly plans fall due
    tickets = {t["device"]: t for t in m.list_tickets() if t["kind"] == "preventive"}
    assert set(tickets) == {"pump-1", "pump-2"}
    quiet = m.transition(tickets["pump-2"]["id"], "in_progress", "wang")
    assert quiet["out_of_service"] == [] and quiet["mute_until"] is None
    assert plant.state("pump-2.pump_fault") == "normal"
    muting = m.transition(tickets["pump-1"]["id"], "in_progress", "wang")
    assert "pump-1.pump_fault" in muting["out_of_service"]
    assert plant.state("pump-1.pump_fault") == "out_of_service"


# ------------------------------------------------------------------ how long


def test_the_mute_ends_at_the_limit_and_the_event_says_the_work_overran(plant: Plant) -> None:
    plant.read("pump-2", fault=True)
    start = plant.clock.wall()
    working = start_work(plant, "pump-2")  # urgent: resolve within 24 h, so the 4 h limit wins
    assert "pump-2.pump_fault" in working["out_of_service"]
    assert working["mute_until"] is not None
    plant.read("pump-2", fault=False)  # followed under the mute
    plant.read("pump-2", running=True, flow=0.0)  # dry run starts under the mute (30 s on-delay)
    plant.advance(4 * HOUR - 60.0, step=30.0)
    assert plant.state("pump-2.pump_fault") == "out_of_service"
    assert not ticket_events(plant, "work_overran")
    plant.read("pump-2", running=True, flow=0.0)  # fresh readings: still dry
    plant.advance(61.0, step=1.0)
    [event] = ticket_events(plant, "work_overran")
    assert event["id"] == working["id"] and f"#{working['id']}" in event["note"]
    assert "overran" in event["note"] and "pump-2.dry_run" in event["detail"]["alarms"]
    assert event["ticket"]["status"] == "in_progress" and event["ticket"]["out_of_service"] == []
    assert plant.gw.clock.wall() - start >= 4 * HOUR
    # back in the state the readings give: the fault cleared under the mute, the dry run is on
    assert plant.state("pump-2.pump_fault") == "rtn_unack"
    assert plant.state("pump-2.dry_run") == "active_unack"
    journal = plant.gw.store.journal("pump-2.dry_run")
    assert journal[-1].by == "system"
    # the work goes on, unmuted; stopping it later puts back nothing twice
    done = maint(plant).transition(working["id"], "assigned", "wang", assignee="wang")
    assert done["out_of_service"] == []


def test_the_resolution_target_ends_the_mute_when_it_is_sooner(tmp_path: Path) -> None:
    plant = Plant(make_site(tmp_path, "mute_limit: 8h"))
    try:
        m = maint(plant)
        ticket = m.create_ticket("pump-1", "Seal leak", "emergency", "duty")  # resolve within 4 h
        plant.advance(3 * HOUR, step=60.0)
        working = m.transition(ticket["id"], "in_progress", "wang")
        assert working["mute_until"] == working["resolution_due"]
        plant.advance(HOUR - 30.0, step=60.0)
        assert plant.state("pump-1.pump_fault") == "out_of_service"
        plant.advance(60.0, step=5.0)
        assert plant.state("pump-1.pump_fault") == "normal"
        assert len(ticket_events(plant, "work_overran")) == 1
        # a ticket already past its target mutes nothing
        late = m.create_ticket("pump-2", "Seal leak", "emergency", "duty")
        plant.advance(5 * HOUR, step=600.0)
        assert m.transition(late["id"], "in_progress", "wang")["out_of_service"] == []
    finally:
        plant.close()


def test_the_mute_limit_holds_across_a_restart(plant: Plant) -> None:
    working = start_work(plant, "pump-1")
    assert working["out_of_service"]
    plant.advance(2 * HOUR, step=60.0)
    plant.restart(kill=True)
    plant.advance(2 * HOUR - 60.0, step=60.0)
    assert plant.state("pump-1.pump_fault") == "out_of_service"
    plant.advance(120.0, step=1.0)
    assert plant.state("pump-1.pump_fault") == "normal"
    assert [e["id"] for e in ticket_events(plant, "work_overran")] == [working["id"]]


def test_alarms_muted_by_older_settings_come_back_at_start(tmp_path: Path) -> None:
    """A store written before this rule: a ticket in progress holds comm_loss out of service."""
    plant = Plant(make_site(tmp_path))
    try:
        m = maint(plant)
        ticket = m.create_ticket("pump-1", "Bearing", "low", "duty")
        m.transition(ticket["id"], "in_progress", "wang")
        stored = m.store.get(ticket["id"])
        plant.gw.remove_from_service("pump-1.comm_loss", "wang", "old rule")
        stored.out_of_service = [*stored.out_of_service, "pump-1.comm_loss"]
        stored.mute_until = None  # as saved before mutes had an end
        m.store.commit(_change(stored), plant.clock.wall())
        plant.restart(kill=False)
        plant.advance(1.0)
        assert plant.state("pump-1.comm_loss") == "normal"
        again = maint(plant).get_ticket(ticket["id"])
        assert "pump-1.comm_loss" not in again["out_of_service"]
        assert again["out_of_service"] and again["mute_until"] is not None
    finally:
        plant.close()


def _change(ticket: Ticket) -> Any:
    from gateway.storage.tickets import Change

    return Change(tickets=[(ticket, [])])


# ------------------------------------------------------------------ the pure policy


class _A:
    def __init__(self, alarm_id: str, life_safety: bool = False, out: bool = False) -> None:
        self.id = alarm_id
        self.device, self.rule = alarm_id.split(".")
        self.life_safety, self.out_of_service = life_safety, out


def test_the_policy_in_plain_terms() -> None:
    alarms = [
        _A("lift-1.entrapment", life_safety=True),
        _A("lift-1.comm_loss", life_safety=True),
        _A("pump-1.comm_loss"),
        _A("pump-1.pump_fault"),
        _A("pump-1.dry_run", out=True),
        _A("pump-2.pump_fault"),
    ]
    assert [a.id for a in alarms if may_mute(a)] == [
        "pump-1.pump_fault", "pump-1.dry_run", "pump-2.pump_fault"
    ]  # fmt: skip
    assert alarms_to_mute(alarms, "pump-1") == ["pump-1.pump_fault"]
    assert alarms_to_mute(alarms, "lift-1") == []
    ticket = Ticket("corrective", "pump-1", "t", "urgent", 0.0, 100.0, 5000.0, {})
    assert mute_until(ticket, 1000.0, 3600.0) == 4600.0  # the limit is sooner
    assert mute_until(ticket, 2000.0, 3600.0) == 5000.0  # the target is sooner
    assert mute_until(ticket, 5000.0, 3600.0) is None  # late already: no mute


# ------------------------------------------------------------------ configuration


def test_mute_limit_and_mutes_are_validated_with_file_and_line(tmp_path: Path) -> None:
    assert make_site(tmp_path).file.tickets.mute_limit == 4 * HOUR  # the default
    site = make_site(tmp_path, "mute_limit: 90m")
    assert site.file.tickets.mute_limit == 90 * 60.0
    path = tmp_path / "site.yaml"
    text = path.read_text()
    bad = text.replace("mute_limit: 90m", "mute_limit: soon").replace(
        "title: Pump weekly check, mutes: true", "title: Pump weekly check, mutes: maybe"
    )
    path.write_text(bad)
    with pytest.raises(SiteError) as caught:
        load_site(path)
    lines = bad.splitlines()
    message = str(caught.value)
    tickets_line = next(i for i, line in enumerate(lines, 1) if "mute_limit" in line)
    plan_line = next(i for i, line in enumerate(lines, 1) if "mutes: maybe" in line)
    assert f"site.yaml:{tickets_line}: tickets.mute_limit" in message
    assert f"site.yaml:{plan_line}: maintenance[0].mutes" in message
