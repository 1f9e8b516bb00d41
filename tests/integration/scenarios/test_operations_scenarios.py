"""Energy and shift handover end to end: simulators, a real Mosquitto, the gateway, API and CLI."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.cli import main
from tests.api_support import eventually, login
from tests.integration.scenarios.test_incidents_scenarios import running
from tests.support import Broker

pytestmark = pytest.mark.integration


async def test_energy_from_known_counter_values_with_one_reset(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(broker, tmp_path) as live, httpx.AsyncClient(base_url=live.url) as c:
        await login(c, "vera")
        await live.inject("meter-1", fault="breaker_trip")  # no load: the counter stands still
        history = live.gateway.history

        async def recorded(value: float, within: float = 0.0) -> bool:
            now = live.clock()
            rows = history.query("meter-1", "energy_import", now - 600, now + 60)
            return bool(rows) and abs(rows[-1].get("value", rows[-1].get("last")) - value) <= within

        async def standing() -> float | None:
            value = live.gateway.engine.values("meter-1").get("energy_import")
            return (
                None
                if value is None or not live.gateway.engine.values("meter-1").get("breaker_tripped")
                else float(value)
            )

        initial = await eventually(standing)
        # stored on change beyond the point's deadband (1 kWh): the standing value within it
        await eventually(lambda: recorded(initial, within=1.0))
        # the first reading ever (the load ran a moment before the trip), then by hand: -> 1000,
        # 1000 -> 1012.5 (12.5 kWh), a reset to 3 (nothing), 3 -> 7.5 (4.5 kWh)
        now = live.clock()
        first = history.query("meter-1", "energy_import", now - 600, now + 60)[0]["value"]
        expected = (1000.0 - first) + 12.5 + 4.5
        for value in (1000.0, 1012.5, 3.0, 7.5):
            await live.inject("meter-1", set={"energy_import": value})
            await eventually(lambda value=value: recorded(value))

        now = datetime.fromtimestamp(live.clock(), ZoneInfo("Asia/Shanghai"))
        month, today = f"{now:%Y-%m}", f"{now:%Y-%m-%d}"
        report = (await c.get(f"/api/v1/energy?month={month}")).json()
        meter = next(m for m in report["meters"] if m["meter"] == "meter-1")
        assert meter["kwh"] == pytest.approx(expected, abs=1e-3)
        day = next(d for d in meter["days"] if d["day"] == today)
        assert day["kwh"] == pytest.approx(expected, abs=1e-3)
        bad = await c.get("/api/v1/energy?month=2026-13")
        assert bad.status_code == 422

        live.gateway.history.flush()
        assert main(["report", "energy", str(live.site.path), "--month", month, "--csv"]) == 0
        rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
        assert rows[0] == ["meter", "day", "kwh", "peak_kw", "night_kw"]
        assert rows[-1][:2] == ["meter-1", "total"] and float(rows[-1][2]) == pytest.approx(
            expected, abs=1e-3
        )
        assert main(["report", "energy", str(live.site.path), "--month", "nope"]) == 2
        assert "YYYY-MM" in capsys.readouterr().err


async def test_handover_after_a_scripted_shift(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(broker, tmp_path) as live, httpx.AsyncClient(base_url=live.url) as c:
        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        # the shift: a trapped passenger, a low tank shelved while the mains are repaired,
        # a fire-panel fault acknowledged, a lift controller that stops answering
        await live.inject("lift-1", fault="entrapment")
        await live.inject("tank-1", fault="tank_low")
        await live.inject("fire-1", fault="fault")
        await live.inject("lift-2", fault="offline")

        async def all_raised() -> bool:
            states = {a.id: str(a.state) for a in live.gateway.book.non_normal()}
            wanted = ("lift-1.entrapment", "tank-1.tank_low", "fire-1.panel_fault",
                      "lift-2.comm_loss")  # fmt: skip
            return all(states.get(w) == "active_unack" for w in wanted)

        await eventually(all_raised, timeout=30)
        r = await c.post(
            "/api/v1/alarms/tank-1.tank_low/shelve",
            json={"minutes": 120, "reason": "市政停水维修 / mains repair"},
            headers=h,
        )
        assert r.status_code == 200, r.text
        r = await c.post("/api/v1/alarms/fire-1.panel_fault/ack", json={}, headers=h)
        assert r.status_code == 200, r.text
        r = await c.post(
            "/api/v1/tickets", json={"device": "lift-1", "title": "门锁检查"}, headers=h
        )
        assert r.status_code == 201, r.text
        live.clock.offset += 6 * 60  # the intercom step is overdue

        await live.watcher.wait_for(lambda: live.incident_events("step_overdue"))
        report: dict[str, Any] = (await c.get("/api/v1/handover?since=8h")).json()
        raised = {a["id"] for a in report["raised"]}
        assert {"lift-1.entrapment", "tank-1.tank_low", "fire-1.panel_fault"} <= raised
        unacked = {a["id"] for a in report["unacknowledged"]}
        assert "lift-1.entrapment" in unacked and "fire-1.panel_fault" not in unacked
        [shelved] = report["shelved"]
        assert shelved["id"] == "tank-1.tank_low" and shelved["by"] == "eddie"
        assert shelved["reason"] == "市政停水维修 / mains repair" and shelved["until"]
        assert report["comm_lost"] == ["lift-2"]
        incidents = {i["playbook"]: i for i in report["incidents"]}
        assert set(incidents) == {"lift_entrapment", "water_outage"}
        incident = incidents["lift_entrapment"]
        assert "intercom" in incident["overdue_steps"]
        assert any(t["title"] == "门锁检查" for t in report["tickets"])
        assert report["open"][0]["priority"] == "critical"
        viewer_denied = await c.get("/api/v1/handover?since=nope")
        assert viewer_denied.status_code == 422

        assert main(["report", "shift", str(live.site.path), "--since", "8h"]) == 0
        text = capsys.readouterr().out
        assert "交接班 / Shift handover" in text and "OVERDUE: intercom" in text
        assert "tank-1.tank_low  by eddie" in text and "lift-2" in text
        assert "UTC+8" in text and "Z " not in text  # people read site time, with its zone

        # the owners' monthly page gains the operations part
        live.gateway.history.flush()
        page = tmp_path / "report.html"
        now = datetime.fromtimestamp(live.clock(), ZoneInfo("Asia/Shanghai"))
        args = ["report", "maintenance", str(live.site.path), "--month", f"{now:%Y-%m}"]
        assert main([*args, "--html", str(page)]) == 0
        html = page.read_text()
        for heading in ("能耗 / Energy", "报警负荷 / Alarm load", "应急事件与演练", "设备可用率"):
            assert heading in html
        assert "电梯困人 / Person trapped in a lift" in html and "intercom" in html
        assert "1号楼1号梯" in html
