"""Alarm management for real: Mosquitto, the simulators as Modbus TCP servers, and the gateway —
in-process, or as a process that is killed with SIGKILL and started again.

Faults go in as a person injects them (`send_inject`, what `fgw inject` does); what is checked is
what a subscriber sees on the broker and what the journal in SQLite says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.site import Site, load_site
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching
from tests.support import ROOT, Broker, free_port

pytestmark = pytest.mark.integration


SITE = """
site: {{id: {site_id}, name: Alarm integration site, timezone: Asia/Shanghai, locale: en}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}
console: {{enabled: false}}
modbus:
  - {{id: plant-room, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms, retries: 0}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: plant-room, unit: 1}}, poll: 200ms,
     depends_on: [meter-1]}}
  - {{id: pump-2, template: booster_pump, modbus: {{bus: plant-room, unit: 2}}, poll: 200ms,
     depends_on: [meter-1]}}
  - {{id: pump-3, template: booster_pump, modbus: {{bus: plant-room, unit: 3}}, poll: 200ms}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: plant-room, unit: 10}}, poll: 200ms}}
  - {{id: lift-1, template: lift, modbus: {{bus: plant-room, unit: 21}}, poll: 200ms}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: plant-room, unit: 30}}, poll: 200ms}}
alarms:
  chattering: {{activations: 3, window: 60s, quiet: 2s}}
  flood: {{alarms: 4, window: 10m, end_at: 1}}
rules:
  - {{id: dry_run, device: pump-3, for: 6s}}
"""


def write_site(folder: Path, mqtt_port: int) -> Path:
    path = folder / "site.yaml"
    path.write_text(
        SITE.format(
            site_id=f"am-{uuid.uuid4().hex[:8]}", mqtt_port=mqtt_port, modbus_port=free_port()
        )
    )
    return path


@dataclass
class Running:
    site: Site
    watcher: Watcher
    broker: Broker
    gateway: Gateway | None = None

    async def inject(self, device: str, **command: object) -> None:
        result = await send_inject(
            "127.0.0.1", self.broker.port, self.site.id, device, dict(command)
        )
        assert result.get("ok"), result

    def events(self, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.watcher.events if all(e.get(k) == v for k, v in match.items())]


@contextlib.asynccontextmanager
async def simulated(broker: Broker, folder: Path) -> AsyncIterator[Running]:
    """Simulators and a watcher for a fresh site; the gateway is up to the test."""
    site = load_site(write_site(folder, broker.port))
    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=11),
        watching(broker.port, site.topic_prefix) as watcher,
    ):
        yield Running(site, watcher, broker)


@contextlib.asynccontextmanager
async def in_process(broker: Broker, folder: Path) -> AsyncIterator[Running]:
    async with simulated(broker, folder) as run:
        run.gateway = Gateway(run.site)
        stop = asyncio.Event()
        task = asyncio.create_task(run.gateway.run(stop), name="test.gateway")
        try:
            await run.watcher.wait_for(lambda: run.watcher.status == "online")
            yield run
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


async def until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    """Await a condition that is not visible on MQTT (the engine's values, SQLite rows)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := predicate()):
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.05)
    return result


# ------------------------------------------------------------------ suppression by design


async def test_breaker_trip_is_one_critical_alarm_and_the_pumps_are_suppressed(
    broker: Broker, tmp_path: Path
) -> None:
    async with in_process(broker, tmp_path) as run:
        await run.inject("meter-1", fault="breaker_trip")
        trip = await run.watcher.wait_alarm("meter-1", "breaker_trip", "active_unack")
        assert trip["priority"] == "critical"
        # the pumps lose their supply: their controllers trip (the simulators are independent
        # devices, so the consequence is injected as it would happen on site)
        await run.inject("pump-1", fault="trip")
        await run.inject("pump-2", fault="trip")
        for pump in ("pump-1", "pump-2"):
            alarm = await run.watcher.wait_alarm(pump, "pump_fault", "suppressed")
            assert alarm["suppressed_by"] == "meter-1.breaker_trip" and alarm["episode"] == 0
            event = (
                await run.watcher.wait_for(
                    lambda p=pump: run.events(id=f"{p}.pump_fault", to="suppressed")
                )
            )[0]
            assert event["cause"] == "meter-1.breaker_trip"
        announced = run.events(type="alarm", to="active_unack")
        assert [e["id"] for e in announced if e["priority"] == "critical"] == [
            "meter-1.breaker_trip"
        ]
        assert not [e for e in announced if e["id"].startswith(("pump-1.", "pump-2."))]
        # an independent pump is not suppressed by it
        await run.inject("pump-3", fault="trip")
        await run.watcher.wait_alarm("pump-3", "pump_fault", "active_unack")


# ------------------------------------------------------------------ chattering


async def test_a_chattering_input_is_latched_until_quiet(broker: Broker, tmp_path: Path) -> None:
    async with in_process(broker, tmp_path) as run:
        assert run.gateway is not None
        gateway = run.gateway

        def fault_read(value: bool) -> bool:
            return gateway.engine.values("pump-3").get("fault") is value

        for episode in (1, 2, 3):
            await run.inject("pump-3", set={"fault": True})
            await run.watcher.wait_for(
                lambda ep=episode: (
                    (a := run.watcher.alarm("pump-3", "pump_fault"))
                    and a["state"] == "active_unack"
                    and a["episode"] == ep
                )
            )
            await run.inject("pump-3", set={"fault": False})
            await run.watcher.wait_alarm("pump-3", "pump_fault", "rtn_unack")
        await run.inject("pump-3", set={"fault": True})  # the 4th activation within a minute
        alarm = await run.watcher.wait_for(
            lambda: (a := run.watcher.alarm("pump-3", "pump_fault")) and a["chattering"] and a
        )
        assert alarm["state"] == "active_unack" and alarm["episode"] == 4
        await run.inject("pump-3", set={"fault": False})
        await until(lambda: fault_read(False), what="the gateway reading fault=false")
        assert run.watcher.alarm("pump-3", "pump_fault")["state"] == "active_unack"  # latched
        back = await run.watcher.wait_alarm("pump-3", "pump_fault", "rtn_unack")
        assert back["chattering"] is False and back["episode"] == 4
        cleared = [j for j in gateway.journal("pump-3.pump_fault") if j["to"] == "rtn_unack"]
        assert "held while chattering" in cleared[-1]["reason"]


# ------------------------------------------------------------------ floods


async def test_a_flood_is_published_on_events_with_the_first_out_marked(
    broker: Broker, tmp_path: Path
) -> None:
    async with in_process(broker, tmp_path) as run:
        await run.inject("meter-1", fault="undervoltage")  # high, after its 5 s on-delay
        await run.watcher.wait_alarm("meter-1", "undervoltage", "active_unack", timeout=15)
        for device, fault in (("fire-1", "fire"), ("lift-1", "fault"), ("pump-3", "trip")):
            await run.inject(device, fault=fault)
        await run.inject("lift-1", fault="entrapment")
        flood = await run.watcher.wait_for(lambda: run.events(type="flood", state="started"))
        assert flood[0]["first_out"] == "meter-1.undervoltage" and flood[0]["count"] >= 5
        assert flood[0]["alarms"][0] == "meter-1.undervoltage"
        first = await run.watcher.wait_for(
            lambda: (a := run.watcher.alarm("meter-1", "undervoltage")) and a["first_out"] and a
        )
        assert first["state"] == "active_unack"
        assert run.watcher.alarm("fire-1", "fire_alarm")["first_out"] is False


# ------------------------------------------------------------------ SIGKILL and restart


def start(argv: list[str], folder: Path, name: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(folder / f"{name}.log").open("w"),
        text=True,
    )


async def command(child: subprocess.Popen[str], op: str, *args: Any) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
    child.stdin.flush()
    answer = json.loads(await asyncio.to_thread(child.stdout.readline))
    assert answer == {"ok": True}, answer


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)


def read_db(site: Site, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{site.storage_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


async def test_sigkill_mid_episode_restores_state_episode_ack_shelve_and_on_delay(
    broker: Broker, tmp_path: Path
) -> None:
    async with simulated(broker, tmp_path) as run:
        site, watcher = run.site, run.watcher
        fgw_run = [sys.executable, "-m", "gateway.cli", "run", str(site.path)]
        child = start([sys.executable, "-m", "tests.gateway_child", str(site.path)], tmp_path, "g1")
        try:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=20)
            await run.inject("fire-1", fault="fire", zone=2)
            await watcher.wait_alarm("fire-1", "fire_alarm", "active_unack")
            await command(child, "acknowledge", "fire-1.fire_alarm", "ann", "brigade called")
            await watcher.wait_alarm("fire-1", "fire_alarm", "active_ack")
            await run.inject("pump-1", fault="trip")
            await watcher.wait_alarm("pump-1", "pump_fault", "active_unack")
            await command(child, "shelve", "pump-1.pump_fault", "bob", 10, "parts on order")
            shelved = await watcher.wait_alarm("pump-1", "pump_fault", "shelved")
            await run.inject("pump-3", fault="dry_run")  # its 6 s on-delay starts
            timer = await until(
                lambda: read_db(site, "SELECT kind, started FROM engine_timers WHERE alarm_id=?",
                                "pump-3.dry_run"),
                what="the on-delay saved",
            )  # fmt: skip
        finally:
            kill(child)
        await watcher.wait_for(lambda: watcher.status == "offline", timeout=20)  # the will

        second = start(fgw_run, tmp_path, "g2")
        try:
            seen_timers: list[Any] = []

            def dry_run_raised() -> Any:
                seen_timers.append(
                    read_db(site, "SELECT kind, started FROM engine_timers WHERE alarm_id=?",
                            "pump-3.dry_run")
                )  # fmt: skip
                alarm = watcher.alarm("pump-3", "dry_run")
                return alarm if alarm and alarm["state"] == "active_unack" else None

            raised = await until(dry_run_raised, timeout=20, what="dry_run raised after restart")
            # the delay was resumed, never started over: its start never changed on disk
            assert {tuple(t[0]) for t in seen_timers if t} <= {tuple(timer[0])}
            assert raised["episode"] == 1
            raised_at = read_db(
                site, "SELECT at FROM alarm_journal WHERE alarm_id=? AND to_state='active_unack'",
                "pump-3.dry_run",
            )  # fmt: skip
            from rules.alarm_load import epoch

            assert epoch(raised_at[0][0]) >= timer[0][1] + 6.0 - 0.01
            fire = watcher.alarm("fire-1", "fire_alarm")
            assert (fire["state"], fire["episode"], fire["acked_by"]) == ("active_ack", 1, "ann")
            pump = watcher.alarm("pump-1", "pump_fault")
            assert pump["state"] == "shelved" and pump["shelved_until"] == shelved["shelved_until"]
        finally:
            kill(second)
        await watcher.wait_for(lambda: watcher.status == "offline", timeout=20)

        third = start(fgw_run, tmp_path, "g3")
        try:
            async with watching(broker.port, site.topic_prefix) as fresh:
                await fresh.wait_for(lambda: fresh.status == "online", timeout=20)
                await fresh.wait_alarm("pump-3", "dry_run", "active_unack")
                last = read_db(
                    site,
                    "SELECT alarm_id, to_state FROM alarm_journal WHERE seq IN "
                    "(SELECT MAX(seq) FROM alarm_journal GROUP BY alarm_id)",
                )
                for alarm_id, state in last:
                    device, rule = alarm_id.split(".")
                    shown = await fresh.wait_for(
                        lambda d=device, r=rule, s=state: (
                            f"{site.topic_prefix}/alarms/{d}/{r}" in fresh.retained or s == "normal"
                        )
                    )
                    retained = fresh.alarm(device, rule)
                    assert shown and (retained["state"] if retained else "normal") == state
            starts = read_db(
                site,
                "SELECT alarm_id, episode, COUNT(*) FROM alarm_journal "
                "WHERE to_state='active_unack' AND from_state IN ('normal', 'rtn_unack') "
                "GROUP BY alarm_id, episode HAVING COUNT(*) > 1",
            )
            assert starts == [], "an episode was started twice"
            episodes = dict(
                read_db(site, "SELECT alarm_id, MAX(episode) FROM alarm_journal GROUP BY alarm_id")
            )
            assert episodes["fire-1.fire_alarm"] == 1 and episodes["pump-3.dry_run"] == 1
            assert episodes["pump-1.pump_fault"] == 1
        finally:
            third.send_signal(signal.SIGTERM)
            assert third.wait(20) == 0
