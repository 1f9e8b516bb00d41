"""The live-event hub and the reading-rate counter: pure, no sockets, an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from gateway.api.events import CLIENT_QUEUE, MAX_CLIENTS, EventHub, StreamClosed
from gateway.api.live import RATE_WINDOW, LiveState
from ground.model import Quality, Reading


async def test_every_client_gets_every_event_enriched() -> None:
    hub = EventHub(lambda e: {"seen": e["id"]})
    a, b = hub.join(), hub.join()
    assert a is not None and b is not None
    hub.publish({"type": "alarm", "id": "pump-1.dry_run"})
    for client in (a, b):
        assert await client.get() == {
            "type": "alarm",
            "id": "pump-1.dry_run",
            "seen": "pump-1.dry_run",
        }


async def test_a_failing_enricher_does_not_lose_the_event() -> None:
    def broken(_: object) -> dict[str, object]:
        raise RuntimeError("boom")

    hub = EventHub(broken)
    client = hub.join()
    assert client is not None
    hub.publish({"type": "ticket", "id": 3})
    assert await client.get() == {"type": "ticket", "id": 3}


async def test_a_slow_client_is_told_to_resync_instead_of_buffering_without_end() -> None:
    hub = EventHub()
    slow, fast = hub.join(), hub.join()
    assert slow is not None and fast is not None
    for n in range(CLIENT_QUEUE + 5):
        hub.publish({"type": "alarm", "n": n})
        if fast.queue.qsize():
            await fast.get()
    assert slow.queue.qsize() <= CLIENT_QUEUE
    events = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert events[0] == {"type": "resync"}
    assert events[-1] == {"type": "alarm", "n": CLIENT_QUEUE + 4}  # newer events follow it
    assert hub.resyncs == 1 and fast.resyncs == 0


async def test_clients_are_bounded_and_leave_and_close() -> None:
    hub = EventHub()
    clients = [hub.join() for _ in range(MAX_CLIENTS)]
    assert all(clients) and hub.join() is None
    clients[0].close()  # type: ignore[union-attr]
    assert hub.client_count == MAX_CLIENTS - 1
    waiting = asyncio.create_task(clients[1].get())  # type: ignore[union-attr]
    await asyncio.sleep(0)
    hub.close()
    with pytest.raises(StreamClosed):
        await waiting
    assert hub.join() is None and hub.client_count == 0


def test_readings_per_second_over_the_window() -> None:
    now = [100.0]
    live = LiveState(EventHub(), monotonic=lambda: now[0])
    batch = [Reading("pump-1", "flow", 1.0, Quality.GOOD, 0.0)] * 5
    for second in range(int(RATE_WINDOW)):
        now[0] = 100.0 + second
        live.add(batch)
    assert live.readings_per_second() == pytest.approx(5.0)
    assert live.latest["pump-1"]["flow"].value == 1.0 and live.readings_total == 50
    now[0] += RATE_WINDOW + 1
    assert live.readings_per_second() == 0.0
