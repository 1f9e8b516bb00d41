"""Tickets for real: simulators as Modbus TCP servers, a real Mosquitto, the gateway in-process, and
a subscriber on `P/events`. Values and faults go in the way a person injects them (`send_inject`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from config.site import Site, load_site
from gateway.maintenance import Maintenance
from gateway.service import Gateway
from gateway.storage.tickets import TicketStore
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching, write_site
from tests.support import Broker

pytestmark = pytest.mark.integration


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Await a condition on the gateway's own state (not published on MQTT) within `timeout`."""
    async with asyncio.timeout(timeout):
        while not (result := predicate()):  # noqa: ASYNC110 - state with no event to wait on
            await asyncio.sleep(0.05)
        return result


@contextlib.asynccontextmanager
async def gateway_running(site: Site, watcher: Watcher) -> AsyncIterator[Gateway]:
    gateway = Gateway(site)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="e2e.gateway")
    try:
        await watcher.wait_for(lambda: watcher.status == "online", timeout=15)
        yield gateway
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        watcher.status = None


def maint(gateway: Gateway) -> Maintenance:
    component = gateway.capabilities.maintenance
    assert isinstance(component, Maintenance)
    return component


def ticket_events(watcher: Watcher, action: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in watcher.events
        if e.get("type") == "ticket"
        and e.get("action") == action
        and all(
            e["ticket"].get(k) == v or e["ticket"]["origin"].get(k) == v for k, v in match.items()
        )
    ]


async def test_run_hours_across_2000_open_one_service_ticket_and_a_restart_adds_none(
    broker: Broker, tmp_path: Path
) -> None:
    site = load_site(write_site(tmp_path, broker.port))

    async def inject(command: dict[str, Any]) -> None:
        result = await send_inject("127.0.0.1", broker.port, site.id, "pump-1", command)
        assert result.get("ok"), result

    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=7),
        watching(broker.port, site.topic_prefix) as watcher,
    ):
        async with gateway_running(site, watcher) as gateway:
            meter = maint(gateway).meters[("pump-1", "run_hours")]
            await inject({"set": {"run_hours": 1999.9}})
            await until(lambda: meter.total is not None and 1999.9 <= meter.total < 2000)
            assert maint(gateway).list_tickets(device="pump-1") == []
            await inject({"set": {"run_hours": 2000.1}})
            await watcher.wait_for(
                lambda: ticket_events(watcher, "created", plan="pump_service_2000h"), timeout=10
            )
            [event] = ticket_events(watcher, "created", plan="pump_service_2000h")
            assert event["ticket"]["kind"] == "preventive" and event["ticket"]["device"] == "pump-1"
            # published after the commit: another reader of the file sees it already
            reader = TicketStore(site.storage_dir, source="test")
            try:
                assert reader.get(event["id"]).origin["plan"] == "pump_service_2000h"
            finally:
                reader.close()
            seen = meter.raw_ts
            await until(lambda: meter.raw_ts is not None and meter.raw_ts > (seen or 0) + 1)
            services = [
                t for t in maint(gateway).list_tickets(device="pump-1")
                if t["origin"].get("plan") == "pump_service_2000h"
            ]  # fmt: skip
            assert len(services) == 1
        async with gateway_running(site, watcher) as again:
            meter = maint(again).meters[("pump-1", "run_hours")]
            assert meter.total is not None and meter.total >= 2000.1  # restored from SQLite
            started = meter.raw_ts or 0
            await until(lambda: meter.raw_ts is not None and meter.raw_ts > started + 1)
            maint(again).check(maint(again).clock())
            services = [
                t for t in maint(again).list_tickets(device="pump-1")
                if t["origin"].get("plan") == "pump_service_2000h"
            ]  # fmt: skip
            assert len(services) == 1 and services[0]["id"] == event["id"]
        assert len(ticket_events(watcher, "created", plan="pump_service_2000h")) == 1


async def test_dry_run_opens_one_urgent_ticket_and_a_repeat_counts_on_it(
    broker: Broker, tmp_path: Path
) -> None:
    site = load_site(write_site(tmp_path, broker.port))

    async def inject(**command: Any) -> None:
        result = await send_inject("127.0.0.1", broker.port, site.id, "pump-2", command)
        assert result.get("ok"), result

    async with (
        SiteSimulator(site, "127.0.0.1", broker.port, seed=7),
        watching(broker.port, site.topic_prefix) as watcher,
        gateway_running(site, watcher) as gateway,
    ):
        await inject(fault="dry_run")
        await watcher.wait_alarm("pump-2", "dry_run", "active_unack", timeout=15)
        await watcher.wait_for(
            lambda: ticket_events(watcher, "created", alarm="pump-2.dry_run"), timeout=10
        )
        [created] = ticket_events(watcher, "created", alarm="pump-2.dry_run")
        assert (
            created["ticket"]["urgency"] == "urgent" and created["ticket"]["kind"] == "corrective"
        )
        assert created["ticket"]["count"] == 1 and created["ticket"]["status"] == "open"

        await inject(fault="clear")
        await watcher.wait_alarm("pump-2", "dry_run", "rtn_unack", timeout=15)
        await inject(fault="dry_run")
        alarm = await watcher.wait_alarm("pump-2", "dry_run", "active_unack", timeout=15)
        assert alarm["episode"] == 2
        await watcher.wait_for(
            lambda: ticket_events(watcher, "repeat", alarm="pump-2.dry_run"), timeout=10
        )
        [repeat] = ticket_events(watcher, "repeat", alarm="pump-2.dry_run")
        assert repeat["id"] == created["id"] and repeat["ticket"]["count"] == 2
        tickets = [
            t for t in maint(gateway).list_tickets(device="pump-2")
            if t["origin"].get("alarm") == "pump-2.dry_run"
        ]  # fmt: skip
        assert len(tickets) == 1 and tickets[0]["count"] == 2
        await inject(fault="clear")
