"""The publisher's ordered outbox: what the gateway has said but the broker has not yet acknowledged.

Alarms and events are QoS 1 and must reach subscribers in order even when the broker was away for an
hour (PRODUCT §6). The publisher therefore never hands a message straight to the network: it `put`s
it here, `peek`s the oldest ones, publishes them and `ack`s them only after the broker's PUBACK. A
crash between publish and ack means the message is sent again (at least once, never lost).

`Outbox` is the seam: `MemoryOutbox` is the in-memory implementation; a SQLite one can replace it
(survives a power cut) without the publisher changing. Readings are *droppable*: their part of the
box is bounded and the oldest is dropped (and counted) when full. Alarms and events are never dropped.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message waiting for the broker.

    Attributes:
        seq: position in the outbox; increases with every `put`.
        topic, payload, qos, retain: as published.
        droppable: may be dropped when the outbox is full (readings); alarms and events never.
    """

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    droppable: bool = False


class Outbox(Protocol):
    """An ordered store of messages waiting for their PUBACK."""

    def put(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, droppable: bool = False
    ) -> int:
        """Queue a message after every message queued before it; returns its `seq`."""
        ...

    def peek(self, limit: int) -> list[OutMessage]:
        """The oldest `limit` messages, in order, without removing them."""
        ...

    def ack(self, seq: int) -> None:
        """The broker has every message up to and including `seq`: forget them."""
        ...

    def __len__(self) -> int:
        """Messages waiting."""
        ...

    @property
    def dropped(self) -> int:
        """Droppable messages dropped so far because the outbox was full."""
        ...


class MemoryOutbox:
    """The outbox in memory: lost on a crash, but bounded for readings and ordered.

    Args:
        max_droppable: droppable messages (readings) kept at most; the oldest go first.
    """

    def __init__(self, max_droppable: int = 1000) -> None:
        if max_droppable < 1:
            raise ValueError("max_droppable must be at least 1")
        self.max_droppable = max_droppable
        self._kept: deque[OutMessage] = deque()
        self._droppable: deque[OutMessage] = deque()
        self._seq = itertools.count(1)
        self._dropped = 0

    def put(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, droppable: bool = False
    ) -> int:
        message = OutMessage(next(self._seq), topic, payload, qos, retain, droppable)
        if not droppable:
            self._kept.append(message)
            return message.seq
        if len(self._droppable) >= self.max_droppable:
            self._droppable.popleft()
            self._dropped += 1
        self._droppable.append(message)
        return message.seq

    def peek(self, limit: int) -> list[OutMessage]:
        heads = (itertools.islice(q, limit) for q in (self._kept, self._droppable))
        return list(itertools.islice(heapq.merge(*heads, key=lambda m: m.seq), limit))

    def ack(self, seq: int) -> None:
        for queue in (self._kept, self._droppable):
            while queue and queue[0].seq <= seq:
                queue.popleft()

    def __len__(self) -> int:
        return len(self._kept) + len(self._droppable)

    @property
    def dropped(self) -> int:
        return self._dropped
