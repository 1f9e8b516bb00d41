"""Fault injection: the broker is killed for 30 s during a fault storm (issue 6).

Every alarm transition the gateway journaled must arrive on `P/events` afterwards, in journal order,
and none may be journaled twice. The storm goes on while the broker is away: faults injected and
cleared on five devices, alarms acknowledged by an operator. The subscriber holds a persistent
session on a broker that saves sessions every second, so it misses nothing that was queued for it.

The recovery time (broker back -> last queued event delivered) is printed as a figure for
docs/reliability.md; it is dominated by the publisher's reconnect back-off (capped at 5 s).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from config.site import load_site
from gateway.service import Gateway
from rules.alarms import TransitionRefused
from simulators.runner import SiteSimulator
from tests.reliability_support import (
    STORM,
    EventCollector,
    PersistentBroker,
    kill_broker,
    until,
    write_fault_site,
)
from tests.support import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

OUTAGE = 30.0


async def wait_journal(gateway: Gateway, predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    await until(lambda: predicate(gateway.store.journal(limit=100_000)), timeout, "journal rows")


async def test_broker_killed_for_30s_during_a_fault_storm(tmp_path: Path) -> None:
    broker = PersistentBroker(free_port(), tmp_path / "broker")
    broker.workdir.mkdir()
    broker.start()
    site = load_site(write_fault_site(tmp_path, broker.port))
    collector = EventCollector(broker.port, site.topic_prefix, f"rel-collector-{free_port()}")
    gateway = Gateway(site)
    stop = asyncio.Event()
    collecting = asyncio.create_task(collector.run(), name="test.collector")
    try:
        async with SiteSimulator(site, mqtt=False, seed=3) as sims:
            run = asyncio.create_task(gateway.run(stop), name="test.gateway")
            await until(lambda: collector.subscribed and gateway.publisher.connected, 10)
            await broker.saved(collector.client_id, f"{site.topic_prefix}/events")

            kill_broker(broker)
            killed = time.monotonic()
            rounds = 0
            while time.monotonic() - killed < OUTAGE:
                before = len(gateway.store.journal(limit=100_000))
                for device, fault in STORM:
                    sims.devices[device].inject(fault, **({"zone": 2} if fault == "fire" else {}))
                await wait_journal(gateway, lambda j, n=before: len(j) >= n + len(STORM))
                middle = len(gateway.store.journal(limit=100_000))
                for device, _ in STORM:
                    sims.devices[device].clear()
                await wait_journal(gateway, lambda j, n=middle: len(j) >= n + len(STORM))
                for alarm in list(gateway.book.non_normal()):
                    try:
                        gateway.acknowledge(alarm.id, "operator", "storm drill")
                    except TransitionRefused:
                        pass
                rounds += 1
            journal_at_restart = len(gateway.store.journal(limit=100_000))
            assert not gateway.publisher.connected
            assert gateway.health()["checks"]["publishing"]["status"] == "degraded"

            broker.start()
            restarted = time.monotonic()
            await until(
                lambda: alarm_events(collector) >= journal_at_restart,
                60,
                lambda: (
                    f"replay: {alarm_events(collector)} of {journal_at_restart} alarm events "
                    f"received; publisher {gateway.publisher.stats()}"
                ),
            )
            recovery = time.monotonic() - restarted
            stop.set()
            await asyncio.wait_for(run, 30)
    finally:
        stop.set()
        collecting.cancel()
        await asyncio.gather(collecting, return_exceptions=True)
        broker.stop()

    journal = gateway_journal(site)
    keys = [(e["id"], e["episode"], e["from"], e["to"], e["at"], e["reason"]) for e in journal]
    assert len(keys) == len(set(keys)), "a transition was journaled twice"
    received = [e for e in collector.events if e.get("type") == "alarm"]  # tickets come too
    deduplicated = [e for i, e in enumerate(received) if i == 0 or e != received[i - 1]]
    assert deduplicated[: len(journal)] == journal, "events missing or out of order"
    print(
        f"\nFIGURE broker outage {OUTAGE:.0f}s: {rounds} storm rounds, {journal_at_restart} "
        f"transitions queued, {len(journal)} journaled, {len(received)} received "
        f"({len(received) - len(deduplicated)} duplicates), lost 0, recovery {recovery:.1f}s"
    )


def alarm_events(collector: EventCollector) -> int:
    return sum(1 for e in collector.events if e.get("type") == "alarm")


def gateway_journal(site) -> list[dict]:  # type: ignore[no-untyped-def]
    from gateway.storage.sqlite import AlarmStore

    store = AlarmStore(site.storage_dir)
    try:
        return [entry.event for entry in store.journal(limit=100_000)]
    finally:
        store.close()
