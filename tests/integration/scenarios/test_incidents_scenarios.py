"""Incidents end to end: simulators on Modbus TCP, a real Mosquitto, the gateway and its HTTP API.

The gateway's wall clock is the real one plus an offset the test moves: due times and overdue steps
run on it, while the simulators and the rule engine's timers keep real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.site import Site, load_site
from gateway.incidents import IncidentsComponent
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.api_support import add_users, component_of, eventually, login
from tests.e2e import Watcher, watching
from tests.support import Broker, free_port

pytestmark = pytest.mark.integration

SITE = """
site: {{id: {site_id}, name: 河畔花园, timezone: Asia/Shanghai, locale: zh-CN}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{listen: '127.0.0.1:0'}}
modbus:
  - {{id: plant-room, transport: tcp, host: 127.0.0.1, port: {modbus}, timeout: 300ms, retries: 0}}
devices:
  - {{id: meter-1, name: 1号楼电梯回路, template: energy_meter, modbus: {{bus: plant-room, unit: 10}},
     poll: 200ms}}
  - {{id: lift-1, name: 1号楼1号梯, template: lift, modbus: {{bus: plant-room, unit: 21}}, poll: 200ms,
     depends_on: [meter-1]}}
  - {{id: lift-2, name: 1号楼2号梯, template: lift, modbus: {{bus: plant-room, unit: 22}}, poll: 200ms,
     depends_on: [meter-1]}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: plant-room, unit: 30}}, poll: 200ms}}
  - {{id: tank-1, template: water_tank, modbus: {{bus: plant-room, unit: 40}}, poll: 200ms}}
  - {{id: leak-b1, template: leak_sensor, mqtt: {{topic: leaks/b1}}}}
rules:
  - {{id: tank_low, device: tank-1, for: 1s}}
"""


class Clock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Live:
    site: Site
    gateway: Gateway
    watcher: Watcher
    mqtt_port: int
    clock: Clock
    url: str

    async def inject(self, device: str, **command: Any) -> None:
        result = await send_inject("127.0.0.1", self.mqtt_port, self.site.id, device, command)
        assert result.get("ok"), result

    def incident_events(self, action: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.watcher.events
            if e.get("type") == "incident" and (action is None or e["action"] == action)
        ]


@contextlib.asynccontextmanager
async def running(broker: Broker, folder: Path, extra: str = "") -> AsyncIterator[Live]:
    path = folder / "site.yaml"
    site_id = f"ops-{uuid.uuid4().hex[:8]}"
    path.write_text(SITE.format(site_id=site_id, mqtt=broker.port, modbus=free_port()) + extra)
    site = load_site(path)
    clock = Clock()
    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=5),
        watching(broker.port, site.topic_prefix) as watcher,
    ):
        gateway = Gateway(site, wall=clock)
        add_users(component_of(gateway).accounts)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="test.gateway")
        try:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=15)
            api = component_of(gateway)
            await asyncio.wait_for(api.serving.wait(), 10)
            assert api.url is not None
            yield Live(site, gateway, watcher, broker.port, clock, api.url.rstrip("/"))
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def test_entrapment_incident_steps_overdue_and_close(broker: Broker, tmp_path: Path) -> None:
    async with running(broker, tmp_path) as live, httpx.AsyncClient(base_url=live.url) as c:
        await live.inject("lift-1", fault="entrapment")
        opened = await live.watcher.wait_for(lambda: live.incident_events("opened"), timeout=15)
        incident = opened[0]["incident"]
        assert incident["playbook"] == "lift_entrapment" and incident["drill"] is False
        assert incident["alarms"] == ["lift-1.entrapment"]
        assert incident["context"]["lift"] == "lift-1" and incident["context"]["occupied"] is True
        assert isinstance(incident["context"]["floor"], int)
        iid = incident["id"]

        viewer = httpx.AsyncClient(base_url=live.url)
        async with viewer:
            vcsrf = await login(viewer, "vera")
            for url, body in (
                (f"/api/v1/incidents/{iid}/steps/intercom", {"done": True}),
                (f"/api/v1/incidents/{iid}/close", {"cause": "x"}),
                ("/api/v1/drills", {"playbook": "fire"}),
            ):
                denied = await viewer.post(url, json=body, headers={"x-csrf-token": vcsrf})
                assert denied.status_code == 403, (url, denied.text)
            listed = (await viewer.get("/api/v1/incidents")).json()["incidents"]
            assert [i["id"] for i in listed] == [iid]

        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        done = await c.post(
            f"/api/v1/incidents/{iid}/steps/intercom",
            json={"done": True, "note": "两人, 情绪稳定"},
            headers=h,
        )
        assert done.status_code == 200, done.text
        step = done.json()["steps"][0]
        assert step["done_by"] == "eddie" and step["note"] == "两人, 情绪稳定"
        again = await c.post(f"/api/v1/incidents/{iid}/steps/intercom", json={}, headers=h)
        assert again.status_code == 409
        unknown = await c.post(f"/api/v1/incidents/{iid}/steps/nope", json={}, headers=h)
        assert unknown.status_code == 404
        await live.watcher.wait_for(lambda: live.incident_events("step_done"))

        # 6 minutes later (on the gateway's clock) the second 5-minute step is overdue: once
        live.clock.offset += 6 * 60
        overdue = await live.watcher.wait_for(lambda: live.incident_events("step_overdue"))
        assert [e["step"] for e in overdue] == ["call_maintainer"]
        assert overdue[0]["incident"]["steps"][1]["overdue"] is True

        refused = await c.post(
            f"/api/v1/incidents/{iid}/close", json={"cause": "door lock"}, headers=h
        )
        assert refused.status_code == 409 and "still active" in refused.text
        await live.inject("lift-1", fault="clear")

        async def closed() -> Any:
            r = await c.post(
                f"/api/v1/incidents/{iid}/close", json={"cause": "门锁回路故障"}, headers=h
            )
            return r.json() if r.status_code == 200 else None

        result = await eventually(closed)
        assert result["state"] == "closed" and result["cause"] == "门锁回路故障"
        await live.watcher.wait_for(lambda: live.incident_events("closed"))
        assert len(live.incident_events("step_overdue")) == 1
        journal = (await c.get(f"/api/v1/incidents/{iid}")).json()["journal"]
        assert [r["action"] for r in journal][:2] == ["opened", "step_done"]
        assert journal[-1]["action"] == "closed" and journal[-1]["by"] == "eddie"


async def test_breaker_trip_lists_both_lifts_behind_it_moving_one_first(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(broker, tmp_path) as live:
        # pinned by hand: lift-2 moving with a passenger, lift-1 parked empty with doors shut
        await live.inject("lift-2", set={"moving": True, "occupied": True, "floor": 9})
        await live.inject(
            "lift-1", set={"moving": False, "occupied": False, "door_open": False, "floor": 0}
        )

        async def pinned() -> bool:
            v1, v2 = (live.gateway.engine.values(d) for d in ("lift-1", "lift-2"))
            return v2.get("moving") is True and v2.get("floor") == 9 and v1.get("moving") is False

        await eventually(pinned)
        await live.inject("meter-1", fault="breaker_trip")
        opened = await live.watcher.wait_for(lambda: live.incident_events("opened"), timeout=15)
        incident = opened[0]["incident"]
        assert incident["playbook"] == "power_outage"
        lifts = incident["context"]["lifts"]
        assert [lift["device"] for lift in lifts] == ["lift-2", "lift-1"]
        assert lifts[0]["moving"] is True and lifts[0]["occupied"] is True
        assert lifts[0]["floor"] == 9 and lifts[0]["name"] == "1号楼2号梯"
        assert lifts[1]["moving"] is False and lifts[1]["doors_shut"] is True


async def test_a_drill_pages_nobody_and_says_so(broker: Broker, tmp_path: Path) -> None:
    hook_port = free_port()
    extra = (
        "notify:\n"
        f"  channels: [{{id: hook, kind: webhook, url: 'http://127.0.0.1:{hook_port}/x'}}]\n"
        "  escalation: {critical: {after: 0s, notify: [hook]}}\n"
    )
    async with running(broker, tmp_path, extra) as live, httpx.AsyncClient(base_url=live.url) as c:
        csrf = await login(c, "eddie")
        r = await c.post(
            "/api/v1/drills",
            json={"playbook": "lift_entrapment", "device": "lift-1"},
            headers={"x-csrf-token": csrf},
        )
        assert r.status_code == 201, r.text
        drill = r.json()
        assert drill["drill"] is True and drill["alarms"] == [] and drill["opened_by"] == "eddie"
        opened = await live.watcher.wait_for(lambda: live.incident_events("opened"))
        assert opened[0]["drill"] is True
        live.clock.offset += 40 * 60
        await live.watcher.wait_for(lambda: len(live.incident_events("step_overdue")) == 3)
        assert all(e["drill"] for e in live.incident_events())
        notify = next(comp for comp in live.gateway.components if comp.name == "notify")
        stats = notify.stats()["channels"]["hook"]  # type: ignore[attr-defined]
        assert stats["pending"] == 0 and stats["sent"] == 0 and stats["failed_attempts"] == 0
        incidents = live.gateway.capabilities.incidents
        assert isinstance(incidents, IncidentsComponent) and incidents.announced == 0
        # no alarm was raised by the drill
        assert not [a for a in live.gateway.book.non_normal() if a.device == "lift-1"]
        bad = await c.post(
            "/api/v1/drills", json={"playbook": "nope"}, headers={"x-csrf-token": csrf}
        )
        assert bad.status_code == 404


async def test_a_drill_from_the_command_line_is_published_and_followed(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    async with running(broker, tmp_path) as live, httpx.AsyncClient(base_url=live.url) as c:
        site_file = str(live.site.path)
        assert main(["drill", site_file, "fire", "--device", "fire-1", "--by", "wang"]) == 0
        assert "演练 / DRILL" in capsys.readouterr().out
        opened = await live.watcher.wait_for(lambda: live.incident_events("opened"), timeout=15)
        assert opened[0]["drill"] is True and opened[0]["incident"]["opened_by"] == "wang"
        iid = opened[0]["incident"]["id"]
        assert opened[0]["incident"]["context"]["fire_pump_ready"] is None  # the CLI cannot know
        updated = await live.watcher.wait_for(lambda: live.incident_events("updated"))
        assert updated[0]["incident"]["context"]["fire_pump_ready"] is True  # the gateway does
        csrf = await login(c, "eddie")
        done = await c.post(
            f"/api/v1/incidents/{iid}/steps/confirm",
            json={"note": "drill: smoke in B1"},
            headers={"x-csrf-token": csrf},
        )
        assert done.status_code == 200, done.text
        assert main(["incidents", "show", site_file, str(iid)]) == 0
        report = capsys.readouterr().out
        assert "DRILL" in report and "confirm" in report and "eddie" in report
        assert main(["drill", site_file, "nope"]) == 2
        assert "no playbook 'nope'" in capsys.readouterr().err


async def test_water_tank_low_and_a_leak_open_their_playbooks(
    broker: Broker, tmp_path: Path
) -> None:
    async with running(broker, tmp_path) as live:
        await live.inject("tank-1", fault="tank_low")
        await live.inject("leak-b1", fault="leak")
        opened = await live.watcher.wait_for(
            lambda: len(live.incident_events("opened")) == 2 and live.incident_events("opened"),
            timeout=20,
        )
        by_playbook = {e["incident"]["playbook"]: e["incident"] for e in opened}
        assert by_playbook["water_outage"]["alarms"] == ["tank-1.tank_low"]
        assert by_playbook["water_outage"]["priority"] == "high"
        assert by_playbook["water_outage"]["context"]["values"]["level"] == 15.0
        assert by_playbook["water_leak"]["alarms"] == ["leak-b1.leak"]
        leak = live.watcher.alarm("leak-b1", "leak")
        assert leak is not None and leak["priority"] == "critical" and leak["life_safety"] is True
        await live.inject("leak-b1", fault="battery_low")

        # battery_low waits 1 min: its value is seen, the rule is not active yet
        async def battery_seen() -> bool:
            return live.gateway.engine.values("leak-b1").get("battery") == 12.0

        await eventually(battery_seen)
