"""The incidents component inside a gateway, on injected clocks, without a broker: fire zones as they
are added, a restart that keeps incidents and announces nothing twice, a failure kept off the alarm
path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.site import load_site
from gateway.incidents import IncidentsComponent
from gateway.service import Gateway
from ground.model import Quality, Reading
from tests.support import free_port

WALL0 = 1_800_000_000.0

SITE = """
site: {{id: inc, name: 河畔花园, timezone: Asia/Shanghai}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
modbus: [{{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}]
devices:
  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 30}}}}
  - {{id: lift-1, template: lift, modbus: {{bus: bus, unit: 21}}}}
"""


class Clock:
    def __init__(self) -> None:
        self.mono = 10.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return WALL0 + self.mono


def gateway(path: Path, clock: Clock) -> Gateway:
    return Gateway(load_site(path), monotonic=clock.monotonic, wall=clock.wall)


def incidents_of(gw: Gateway) -> IncidentsComponent:
    return next(c for c in gw.components if isinstance(c, IncidentsComponent))


def events(gw: Gateway) -> list[dict[str, Any]]:
    import json

    out = []
    for message in gw.outbox.peek(10_000):
        if message.topic.endswith("/events"):
            event = json.loads(message.payload)
            if event.get("type") == "incident":
                out.append(event)
    return out


def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(mqtt=free_port(), modbus=free_port()))
    return path


def test_fire_zones_grow_as_they_are_added_and_the_pump_state_follows(tmp_path: Path) -> None:
    clock = Clock()
    gw = gateway(site_file(tmp_path), clock)

    def read(**values: Any) -> None:
        gw.readings(
            [Reading("fire-1", p, v, Quality.GOOD, clock.wall()) for p, v in values.items()]
        )
        gw.process_queued()

    read(fire=False, zones=0, fire_pump_ready=True)
    read(fire=True, zones=0b100, fire_pump_ready=True)
    [incident] = incidents_of(gw).listing()
    assert incident["playbook"] == "fire" and incident["context"]["zones"] == [3]
    read(fire=True, zones=0b10100, fire_pump_ready=False)
    [incident] = incidents_of(gw).listing()
    assert incident["context"]["zones"] == [3, 5]
    assert incident["context"]["fire_pump_ready"] is False
    read(fire=True, zones=0b10000, fire_pump_ready=False)  # zone 3 reset: still listed
    assert incidents_of(gw).listing()[0]["context"]["zones"] == [3, 5]
    assert [e["action"] for e in events(gw)] == ["opened", "updated"]
    gw.store.close()


def test_a_restart_keeps_incidents_and_announces_an_overdue_step_once(tmp_path: Path) -> None:
    path = site_file(tmp_path)
    clock = Clock()
    gw = gateway(path, clock)
    gw.readings([Reading("lift-1", "alarm_button", True, Quality.GOOD, clock.wall())])
    gw.process_queued()
    [incident] = incidents_of(gw).listing()
    incidents_of(gw).complete_step(incident["id"], "intercom", "wang", "ok")
    clock.mono += 301
    gw.tick_once()
    overdue = [e for e in events(gw) if e["action"] == "step_overdue"]
    assert [e["step"] for e in overdue] == ["call_maintainer"]
    gw.store.close()

    again = gateway(path, clock)  # a restart: the same file, later
    clock.mono += 60
    again.tick_once()
    [restored] = incidents_of(again).listing()
    assert restored["id"] == incident["id"]
    assert restored["steps"][0]["done_by"] == "wang"
    assert not [e for e in events(again) if e["action"] == "step_overdue"
                and e["step"] == "call_maintainer" and e["at"] > overdue[0]["at"]]  # fmt: skip
    journal = incidents_of(again).get(incident["id"])["journal"]
    assert [r["action"] for r in journal] == ["opened", "step_done", "step_overdue"]
    again.store.close()


def test_a_failing_incident_hook_never_stands_in_the_alarms_way(tmp_path: Path) -> None:
    clock = Clock()
    gw = gateway(site_file(tmp_path), clock)
    component = incidents_of(gw)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    component.book.trigger = broken  # type: ignore[method-assign]
    gw.readings([Reading("lift-1", "alarm_button", True, Quality.GOOD, clock.wall())])
    gw.process_queued()
    assert str(gw.book.get("lift-1.entrapment").state) == "active_unack"
    assert component.errors == 1
    gw.store.close()


NOTIFY = """
notify:
  drills: {drills}
  channels: [{{id: hook, kind: webhook, url: "http://127.0.0.1:{port}/hook"}}]
  escalation: {{critical: {{after: 10m, notify: [hook]}}, high: {{after: 0s, notify: [hook]}}}}
"""


def test_an_overdue_step_goes_to_the_trigger_prioritys_channels_a_drills_only_if_asked(
    tmp_path: Path,
) -> None:
    for drills in (False, True):
        folder = tmp_path / str(drills)
        folder.mkdir()
        path = site_file(folder)
        path.write_text(
            path.read_text() + NOTIFY.format(drills=str(drills).lower(), port=free_port())
        )
        clock = Clock()
        gw = gateway(path, clock)
        notify = next(c for c in gw.components if c.name == "notify")
        incidents = incidents_of(gw)
        incidents.drill("lift_entrapment", "lift-1", "wang")
        gw.readings([Reading("lift-1", "alarm_button", True, Quality.GOOD, clock.wall())])
        gw.process_queued()
        clock.mono += 301  # the two 5-minute steps of both incidents are overdue
        gw.tick_once()
        gw.tick_once()  # the notify component commits what was announced on its next tick
        gw.tick_once()  # and nothing is announced twice
        queued = notify.stats()["channels"]["hook"]["pending"]  # type: ignore[attr-defined]
        # the real incident: two messages (its critical escalation has the hook, even though
        # its first step is 10 min away); the drill's two only with notify.drills: true
        assert queued == (4 if drills else 2), (drills, queued)
        gw.store.close()
