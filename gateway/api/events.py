"""Live events for the console: everything the gateway publishes on `P/events`, fanned out to SSE clients.

Why observe the publisher: `P/events` is already the one place where every alarm transition and every
ticket change is announced (PRODUCT §6), whoever makes them. The hub sees each event as it is queued
for MQTT, so the console and MQTT subscribers tell the same story.

Each client has a bounded queue. A client that cannot keep up (a phone on a bad link) does not make
the gateway hold memory for it: its queue is emptied and it is told to `resync` (re-read the lists),
which is always correct because the API can give the current state at any time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("fgw.api.events")

CLIENT_QUEUE = 256
"""Events held for one slow client before it is asked to resync instead."""

MAX_CLIENTS = 64
"""More live streams than an engineering team has screens: past this, new ones are refused (503)."""

RESYNC: dict[str, Any] = {"type": "resync"}
_CLOSE: dict[str, Any] = {"type": "_close"}


class StreamClosed(Exception):
    """The hub is shutting down: the stream ends."""


class Client:
    """One connected stream. `get()` waits for the next event."""

    def __init__(self, hub: EventHub, number: int) -> None:
        self.hub = hub
        self.number = number
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(CLIENT_QUEUE)
        self.resyncs = 0

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            self.resyncs += 1
            self.hub.resyncs += 1

    async def get(self) -> dict[str, Any]:
        event = await self.queue.get()
        if event is _CLOSE:
            raise StreamClosed
        return event

    def close(self) -> None:
        self.hub.leave(self)


class EventHub:
    """Fan-out of events to bounded per-client queues. Lives on the gateway's event loop.

    Args:
        enrich: called with each event; may return extra fields (e.g. the alarm's current payload).
    """

    def __init__(self, enrich: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None) -> None:
        self._clients: dict[int, Client] = {}
        self._numbers = itertools.count(1)
        self._enrich = enrich
        self.published = 0
        self.resyncs = 0
        self.closed = False

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def queue_depths(self) -> list[int]:
        return [c.queue.qsize() for c in self._clients.values()]

    def join(self) -> Client | None:
        """A new client, or None when the hub is closed or full."""
        if self.closed or len(self._clients) >= MAX_CLIENTS:
            return None
        client = Client(self, next(self._numbers))
        self._clients[client.number] = client
        return client

    def leave(self, client: Client) -> None:
        self._clients.pop(client.number, None)

    def publish(self, event: Mapping[str, Any]) -> None:
        """Offer one event to every client; never blocks, never raises into the caller."""
        out = dict(event)
        if self._enrich is not None:
            try:
                out.update(self._enrich(event))
            except Exception:  # an event must reach clients even if enrichment fails
                log.exception("could not enrich event %s", event.get("type"))
        self.published += 1
        for client in list(self._clients.values()):
            client.offer(out)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self.closed = True
        for client in list(self._clients.values()):
            while not client.queue.empty():
                client.queue.get_nowait()
            client.queue.put_nowait(_CLOSE)
        self._clients.clear()
