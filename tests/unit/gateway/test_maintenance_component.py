"""The maintenance component inside a real `Gateway` (no sockets): alarms to tickets, plans on an
injected clock, service targets, alarms out of service during work, restarts, and what reaches the
outbox for `P/events` — always after the change is in SQLite.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from config.site import Site, load_site
from gateway.maintenance import Maintenance
from gateway.service import Gateway
from gateway.storage.tickets import Change, TicketStore
from ground.model import Quality, Reading
from rules.engine import ConditionChange
from rules.maintenance import TicketTransitionRefused
from tests.e2e import write_site

T0 = 1_793_462_400.0  # 2026-11-01T00:00:00+08:00 (Asia/Shanghai, the e2e site's zone)
DAY = 86400.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return load_site(write_site(tmp_path, 1883))


@contextmanager
def gateway_for(site: Site, clock: Clock) -> Iterator[Gateway]:
    gateway = Gateway(site, wall=clock, monotonic=clock)
    try:
        yield gateway
    finally:
        asyncio.run(gateway.close())


def maint(gateway: Gateway) -> Maintenance:
    component = gateway.capabilities.maintenance
    assert isinstance(component, Maintenance)
    return component


def ticket_events(gateway: Gateway) -> list[dict[str, Any]]:
    events = []
    for message in gateway.outbox.peek(100_000):
        if message.topic.endswith("/events"):
            body = json.loads(message.payload)
            if body.get("type") == "ticket":
                events.append(body)
    return events


def condition(gateway: Gateway, alarm_id: str, active: bool, at: float) -> None:
    """Drive an alarm condition through the book and the gateway's commit+publish path."""
    device, rule = alarm_id.split(".")
    change = ConditionChange(alarm_id, device, rule, active, False, 0.1, {"flow": 0.1}, at, "test")
    gateway._emit(gateway.book.apply(change))


def test_an_alarm_with_ticket_opens_one_corrective_ticket_and_repeats_count_on_it(
    site: Site,
) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        condition(gateway, "pump-2.dry_run", True, clock.now)
        [ticket] = m.list_tickets()
        assert ticket["kind"] == "corrective" and ticket["urgency"] == "urgent"
        assert ticket["origin"] == {
            "kind": "alarm", "alarm": "pump-2.dry_run", "episode": 1, "priority": "high"
        }  # fmt: skip
        assert ticket["count"] == 1 and ticket["status"] == "open"
        # service targets of `urgent`: respond in 2 h, resolve in 24 h (defaults)
        assert ticket["response_due"] == "2026-10-31T18:00:00Z"
        assert ticket["resolution_due"] == ticket["due"] == "2026-11-01T16:00:00Z"
        clock.now += 60
        condition(gateway, "pump-2.dry_run", False, clock.now)
        clock.now += 60
        condition(gateway, "pump-2.dry_run", True, clock.now)  # rtn_unack -> active: episode 2
        [again] = m.list_tickets()
        assert again["id"] == ticket["id"] and again["count"] == 2
        shown = m.get_ticket(ticket["id"])
        assert [e["action"] for e in shown["timeline"]] == ["created", "repeat"]
        events = ticket_events(gateway)
        assert [e["action"] for e in events] == ["created", "repeat"]
        assert events[1]["ticket"]["count"] == 2 and events[0]["id"] == ticket["id"]


def test_a_rule_without_ticket_opens_none(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        condition(gateway, "pump-2.low_pressure", True, clock.now)  # no `ticket:` in the template
        assert maint(gateway).list_tickets() == []


def test_resolve_waits_for_the_alarm_and_work_takes_alarms_out_of_service(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        condition(gateway, "pump-2.dry_run", True, clock.now)
        [ticket] = m.list_tickets()
        clock.now += 600
        m.transition(ticket["id"], "assigned", "duty", assignee="wang")
        clock.now += 600
        working = m.transition(str(ticket["id"]), "in_progress", "wang", note="on site")
        out = working["out_of_service"]
        assert "pump-2.dry_run" in out and "pump-2.comm_loss" not in out  # comm_loss: never muted
        assert all(gateway.book.get(a).state == "out_of_service" for a in out)
        journal = gateway.store.journal("pump-2.dry_run")
        assert journal[-1].to_state == "out_of_service" and journal[-1].by == "wang"
        assert "ticket #1" in journal[-1].reason
        assert gateway.book.get("pump-1.dry_run").state == "normal"  # other devices untouched
        with pytest.raises(TicketTransitionRefused, match="not returned to normal"):
            m.transition(ticket["id"], "resolved", "wang", note="primed the pump")
        clock.now += 600
        condition(gateway, "pump-2.dry_run", False, clock.now)  # followed under the overlay
        done = m.transition(ticket["id"], "resolved", "wang", note="primed the pump")
        assert done["status"] == "resolved" and done["out_of_service"] == []
        assert all(gateway.book.get(a).state != "out_of_service" for a in out)
        assert gateway.store.journal("pump-2.dry_run")[-1].by == "wang"
        actions = [e["action"] for e in done["timeline"]]
        assert actions == [
            "created", "transition", "transition", "alarms_out_of_service", "transition",
            "alarms_returned",
        ]  # fmt: skip
        assert done["responded_at"] is not None and done["resolved_by"] == "wang"
        assert [n["text"] for n in done["notes"]][-1] == "primed the pump"


def test_critical_alarms_stay_in_service_during_work(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        ticket = m.create_ticket("lift-1", "Door sticks", "normal", "duty", note="reported")
        assert ticket["origin"] == {"kind": "manual", "by": "duty"}
        working = m.transition(ticket["id"], "in_progress", "li")
        assert working["assignee"] == "li"
        assert "lift-1.entrapment" not in working["out_of_service"]  # life-safety
        assert "lift-1.comm_loss" not in working["out_of_service"]
        assert "lift-1.lift_fault" in working["out_of_service"]
        assert gateway.book.get("lift-1.entrapment").state == "normal"


def test_bad_requests_are_value_errors_and_unknown_ids_key_errors(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        with pytest.raises(ValueError, match="unknown device"):
            m.create_ticket("pump-9", "x", "normal", "duty")
        with pytest.raises(ValueError, match="urgency"):
            m.create_ticket("pump-1", "x", "soon", "duty")
        ticket = m.create_ticket("pump-1", "Leak", "low", "duty")
        with pytest.raises(ValueError, match="status"):
            m.transition(ticket["id"], "done", "duty")
        with pytest.raises(ValueError, match="assignee"):
            m.transition(ticket["id"], "assigned", "duty")
        with pytest.raises(TicketTransitionRefused):
            m.transition(ticket["id"], "closed", "duty")
        with pytest.raises(KeyError):
            m.get_ticket(999)
        with pytest.raises(KeyError):
            m.transition("abc", "assigned", "duty", assignee="x")
        with pytest.raises(ValueError, match="status"):
            m.list_tickets(status="bogus")
        assert [t["id"] for t in m.list_tickets(status="active", device="pump-1")] == [1]


def test_calendar_plans_fall_due_on_the_injected_clock_and_move_on_after_the_work(
    site: Site,
) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        m.check(clock.now)
        assert m.list_tickets() == []
        lift = next(p for p in m.assets()[3]["plans"] if p["id"] == "lift_half_monthly")
        assert lift["next_due_date"] == "2026-11-16"  # 1 Nov + 15 days, due by the end of it
        clock.now += 12 * DAY + 3600  # 13 Nov 01:00: not yet
        m.check(clock.now)
        assert m.list_tickets() == []
        clock.now += DAY  # 14 Nov 01:00: within the 3 days' lead before the 16th ends
        maint(gateway).on_tick(clock.now, clock.now)
        lift_tickets = m.list_tickets(device="lift-1")
        assert [t["title"] for t in lift_tickets] == ["Lift half-monthly service"]
        assert lift_tickets[0]["due"] == "2026-11-16T16:00:00Z"  # end of 16 Nov, Shanghai
        m.check(clock.now + 3600)
        assert len(m.list_tickets(device="lift-1")) == 1, "one active ticket per plan and device"
        clock.now += DAY  # done on 15 Nov: next due 30 Nov
        tid = lift_tickets[0]["id"]
        m.transition(tid, "in_progress", "li")
        m.transition(tid, "resolved", "li", note="done per TSG T5002")
        plan = next(p for p in m.assets()[3]["plans"] if p["id"] == "lift_half_monthly")
        assert plan["next_due_date"] == "2026-11-30" and plan["last_done_by"] == "li"
        assert plan["open_ticket"] is None
        history = m.assets()[3]["history"]
        assert history[0]["id"] == tid and history[0]["on_time"] is True


def test_overdue_is_flagged_and_published_once(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        ticket = m.create_ticket("pump-1", "Leak at the flange", "emergency", "duty")
        clock.now += 20 * 60  # respond within 15 min missed
        m.check(clock.now)
        m.check(clock.now + 1)
        assert m.get_ticket(ticket["id"])["overdue"] is True
        overdue = [e for e in ticket_events(gateway) if e["action"] == "overdue"]
        assert len(overdue) == 1 and overdue[0]["detail"]["target"] == "response"
        m.transition(ticket["id"], "in_progress", "wang")
        clock.now += 4 * 3600  # resolve within 4 h missed
        m.check(clock.now)
        overdue = [e for e in ticket_events(gateway) if e["action"] == "overdue"]
        assert [e["detail"]["target"] for e in overdue] == ["response", "resolution"]
        assert overdue[-1]["ticket"]["overdue"] is True


def test_meter_plan_fires_once_and_not_again_after_a_restart(site: Site) -> None:
    clock = Clock()

    def feed(gateway: Gateway, value: float) -> None:
        clock.now += 1
        batch = [Reading("pump-1", "run_hours", value, Quality.GOOD, clock.now)]
        maint(gateway).on_readings(batch)

    with gateway_for(site, clock) as gateway:
        for value in (1999.0, 1999.9, 1999.9):
            feed(gateway, value)
        assert maint(gateway).list_tickets() == []
        for value in (2000.1, 2000.1, 2000.2):
            feed(gateway, value)
        [ticket] = maint(gateway).list_tickets()
        assert ticket["origin"]["plan"] == "pump_service_2000h" and ticket["kind"] == "preventive"
        assert ticket["due"] is not None
    with gateway_for(site, clock) as gateway:  # a restart: meters and plan state from SQLite
        assert maint(gateway).meters[("pump-1", "run_hours")].total == pytest.approx(2000.2)
        for value in (2000.3, 2000.4):
            feed(gateway, value)
        maint(gateway).check(clock.now)
        assert len(maint(gateway).list_tickets()) == 1


def test_device_counter_reset_does_not_fire_a_count_plan(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)

        def feed(*values: int) -> None:
            for value in values:
                clock.now += 10
                m.on_readings([Reading("lift-1", "door_cycles", value, Quality.GOOD, clock.now)])

        feed(99_990, 99_995, 0, 0, 3)  # a controller reset in between
        assert m.list_tickets(device="lift-1") == []
        meter = m.meters[("lift-1", "door_cycles")]
        assert meter.total == pytest.approx(99_998) and meter.resets == 1  # 99,995 + 3
        feed(4_000, 4)  # 4,000 door cycles in ten seconds is a glitch: held, then dropped
        assert m.list_tickets(device="lift-1") == [] and meter.total == pytest.approx(99_999)
        feed(6)  # the real 100,000th cycle
        [ticket] = m.list_tickets(device="lift-1")
        assert ticket["origin"]["plan"] == "lift_door_service"


def test_gateway_kept_run_hours_fire_a_plan_when_a_device_has_none(tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "site.yaml").write_text(
        """
site: {id: kept, timezone: Europe/Berlin}
storage: {path: ./state}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502}]
devices:
  - id: fan-1
    modbus: {bus: bus, unit: 1}
    points: {running: {register: coil, address: 0, type: bool}}
maintenance:
  - {id: belt_check, devices: [fan-1], every_run_hours: 1, title: Belt check}
"""
    )
    site = load_site(folder / "site.yaml")
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        assert m.meters[("fan-1", "run_hours")].source == "gateway"
        running = False
        for _ in range(150):  # 75 minutes of 30-second readings, running after the first
            clock.now += 30
            m.on_readings([Reading("fan-1", "running", running, Quality.GOOD, clock.now)])
            running = True
        assert m.meters[("fan-1", "starts")].total == 1
        assert m.meters[("fan-1", "run_hours")].total == pytest.approx(148 * 30 / 3600)
        [ticket] = m.list_tickets()
        assert ticket["title"] == "Belt check"


def test_a_change_made_by_the_command_line_is_published_and_followed(site: Site) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        ticket = m.create_ticket("pump-1", "Noise", "normal", "duty")
        before = len(ticket_events(gateway))
        cli = TicketStore(site.storage_dir, source="cli")
        try:
            stored = cli.get(ticket["id"])
            entry = stored.transition("in_progress", "zhao", clock.now)
            cli.commit(Change(tickets=[(stored, [entry])]), clock.now)
        finally:
            cli.close()
        assert m.publish_pending() >= 1
        events = ticket_events(gateway)[before:]
        assert events[0]["action"] == "transition" and events[0]["to"] == "in_progress"
        assert events[0]["by"] == "zhao"
        assert gateway.book.get("pump-1.dry_run").state == "out_of_service"
        assert "pump-1.dry_run" in m.get_ticket(ticket["id"])["out_of_service"]


def test_ledger_flags_a_warranty_ending_within_sixty_days(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text(
        """
site: {id: ledger, timezone: Asia/Shanghai}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502}]
devices:
  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 1},
     asset: {location: B1, model: CR 10-6, installed: 2021-05-01, warranty_until: 2026-12-20}}
  - {id: pump-2, template: booster_pump, modbus: {bus: bus, unit: 2},
     asset: {warranty_until: 2027-06-01}}
"""
    )
    site = load_site(tmp_path / "site.yaml")
    with gateway_for(site, Clock()) as gateway:
        rows = {row["device"]: row for row in maint(gateway).assets()}
        assert rows["pump-1"]["warranty"] == {
            "until": "2026-12-20", "days_left": 49, "expiring": True, "expired": False
        }  # fmt: skip
        assert rows["pump-2"]["warranty"]["expiring"] is False
        assert rows["pump-1"]["asset"]["location"] == "B1"
        assert set(rows["pump-1"]["meters"]) == {"run_hours", "starts"}
        assert {p["id"] for p in rows["pump-1"]["plans"]} == {
            "pump_service_2000h", "pump_monthly_inspection"
        }  # fmt: skip


def test_a_refused_write_is_counted_never_raised_and_retried(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    with gateway_for(site, clock) as gateway:
        m = maint(gateway)
        commit = m.store.commit

        def disk_full(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def feed(value: float) -> None:
            clock.now += 1
            m.on_readings([Reading("pump-1", "run_hours", value, Quality.GOOD, clock.now)])

        feed(1999.9)
        feed(1999.9)
        monkeypatch.setattr(m.store, "commit", disk_full)
        feed(2000.1)  # due now, but the disk is full: the reading loop goes on
        condition(gateway, "pump-2.dry_run", True, clock.now)
        m.on_tick(clock.now + 60, clock.now + 60)
        assert m.errors >= 2
        monkeypatch.setattr(m.store, "commit", commit)
        feed(2000.2)  # space again: the plan opens its ticket on the next occasion
        assert [t["origin"]["plan"] for t in m.list_tickets()] == ["pump_service_2000h"]
