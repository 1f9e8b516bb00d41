"""The API on a running gateway: simulators over real Modbus TCP and MQTT, a real Mosquitto, and the
console served by uvicorn inside the gateway on a free loopback port (real HTTP, real SSE).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.api_support import LiveSite, eventually, live_site, login
from tests.support import Broker


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Parse a Server-Sent Events body into (event, data) pairs."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def test_fire_is_seen_acknowledged_and_journaled_through_the_api(
    broker: Broker, tmp_path: Path
) -> None:
    async with (
        live_site(broker.port, tmp_path) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as c,
    ):
        csrf = await login(c, "eddie")
        await live.inject("fire-1", fault="fire", zone=3)
        await live.inject("pump-2", fault="trip")

        async def fire_listed() -> list[dict[str, Any]] | None:
            alarms = (await c.get("/api/v1/alarms")).json()["alarms"]
            ids = [a["id"] for a in alarms]
            ready = "fire-1.fire_alarm" in ids and "pump-2.pump_fault" in ids
            return alarms if ready else None

        alarms = await eventually(fire_listed)
        # sorted by priority: the critical fire first, the high pump fault after it
        assert alarms[0]["id"] == "fire-1.fire_alarm" and alarms[0]["state"] == "active_unack"
        ranks = [["critical", "high", "medium", "low"].index(a["priority"]) for a in alarms]
        assert ranks == sorted(ranks)
        only_critical = (await c.get("/api/v1/alarms?priority=critical")).json()["alarms"]
        assert {a["priority"] for a in only_critical} == {"critical"}

        acked = await c.post(
            "/api/v1/alarms/fire-1.fire_alarm/ack",
            json={"comment": "zone 3 checked: burnt toast"},
            headers={"x-csrf-token": csrf},
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "active_ack" and acked.json()["acked_by"] == "eddie"
        await live.watcher.wait_alarm("fire-1", "fire_alarm", "active_ack")
        again = await c.post(
            "/api/v1/alarms/fire-1.fire_alarm/ack", json={}, headers={"x-csrf-token": csrf}
        )
        assert again.status_code == 409

        shelved = await c.post(
            "/api/v1/alarms/pump-2.pump_fault/shelve",
            json={"minutes": 60, "reason": "pump isolated for repair"},
            headers={"x-csrf-token": csrf},
        )
        assert shelved.json()["state"] == "shelved"
        back = await c.post(
            "/api/v1/alarms/pump-2.pump_fault/unshelve", headers={"x-csrf-token": csrf}
        )
        assert back.json()["state"] == "active_unack"

        journal = (await c.get("/api/v1/alarms/fire-1.fire_alarm/journal")).json()["journal"]
        steps = [(e["from"], e["to"], e["by"], e["reason"]) for e in journal]
        assert steps[0][:2] == ("normal", "active_unack")
        assert ("active_unack", "active_ack", "eddie", "zone 3 checked: burnt toast") in steps

        # the fire opened an emergency ticket (maintenance component), visible on the board
        async def fire_ticket() -> dict[str, Any] | None:
            tickets = (await c.get("/api/v1/tickets?device=fire-1")).json()["tickets"]
            return tickets[0] if tickets else None

        ticket = await eventually(fire_ticket)
        assert ticket["urgency"] == "emergency" and ticket["origin"]["alarm"] == "fire-1.fire_alarm"


async def test_devices_readings_history_and_metrics_are_live(
    broker: Broker, tmp_path: Path
) -> None:
    async with (
        live_site(broker.port, tmp_path) as live,
        httpx.AsyncClient(base_url=live.url, timeout=10) as c,
    ):
        await login(c, "vera")

        async def polled() -> dict[str, Any] | None:
            devices = {d["id"]: d for d in (await c.get("/api/v1/devices")).json()["devices"]}
            pump, door = devices["pump-1"]["health"], devices["door-lobby"]["health"]
            ok = pump["polls"] and pump["last_seen"] and door["polls"] and door["last_seen"]
            return devices if ok else None

        devices = await eventually(polled)
        pump = devices["pump-1"]["health"]
        assert pump["online"] is True and pump["driver"] == "modbus:plant-room"
        assert pump["errors"] == 0 and pump["last_poll_seconds"] is not None
        assert devices["door-lobby"]["health"]["driver"].startswith("mqtt")

        detail = (await c.get("/api/v1/devices/pump-1")).json()
        points = {p["point"]: p for p in detail["points"]}
        assert points["outlet_pressure"]["unit"] == "bar"
        assert points["outlet_pressure"]["quality"] == "good"
        assert isinstance(points["outlet_pressure"]["value"], float)
        assert points["outlet_pressure"]["ts"].endswith("Z")

        async def history() -> list[dict[str, Any]] | None:
            body = (await c.get("/api/v1/points/pump-1/outlet_pressure/history")).json()
            return body["points"] if len(body["points"]) >= 3 else None

        samples = await eventually(history)
        assert all(isinstance(s["v"], float) and s["t"].endswith("Z") for s in samples)
        assert [s["t"] for s in samples] == sorted(s["t"] for s in samples)

        metrics = (await c.get("/metrics")).text
        polls = next(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith('fgw_device_polls_total{device="pump-1"}')
        )
        rate = next(
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("fgw_readings_per_second ")
        )
        assert polls > 0 and rate > 0
        assert "fgw_mqtt_connected 1" in metrics


async def test_stream_delivers_alarm_and_ticket_events_live(broker: Broker, tmp_path: Path) -> None:
    async with live_site(broker.port, tmp_path) as live:
        _, token = live.component.accounts.create_token("vera", by="test")
        headers = {"authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(base_url=live.url, timeout=None) as c,
            c.stream("GET", "/api/v1/stream", headers=headers) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
            kind, hello = await anext(events)
            assert (kind, hello["user"]) == ("hello", "vera")
            assert live.component.live.hub.client_count == 1
            await live.inject("lift-1", fault="entrapment")
            seen: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(20):
                async for kind, data in events:
                    seen.setdefault(kind, data)
                    if "alarm" in seen and "ticket" in seen:
                        break
            alarm = seen["alarm"]
            assert alarm["id"] == "lift-1.entrapment" and alarm["to"] == "active_unack"
            assert alarm["alarm"]["priority"] == "critical"  # the whole current alarm rides along
            assert seen["ticket"]["ticket"]["device"] == "lift-1"
        # the stream ended with the connection: the hub forgot the client
        await eventually(_no_clients(live))


def _no_clients(live: LiveSite) -> Any:
    async def probe() -> bool:
        return live.component.live.hub.client_count == 0

    return probe


async def test_a_console_that_cannot_bind_leaves_the_alarm_path_running(
    broker: Broker, tmp_path: Path
) -> None:
    import socket

    from config.site import load_site
    from gateway.service import Gateway
    from tests.api_support import component_of, console_site

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    path = console_site(tmp_path, broker.port)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{taken}"))
    gateway = Gateway(load_site(path))
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="test.gateway")
    try:
        await eventually(_connected(gateway))
        assert component_of(gateway).port is None and not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        blocker.close()


def _connected(gateway: Any) -> Any:
    async def probe() -> bool:
        return bool(gateway.publisher.connected)

    return probe
