"""The publisher's ordered outbox: what the gateway has said but the broker has not yet acknowledged.

Alarms and events are QoS 1 and must reach subscribers in order even when the broker was away for an
hour (PRODUCT §6). The publisher therefore never hands a message straight to the network: it `put`s
it here, `peek`s the oldest ones, publishes them and `ack`s them only after the broker's PUBACK. A
crash between publish and ack means the message is sent again (at least once, never lost).

`Outbox` is the seam: `MemoryOutbox` is the in-memory implementation; a SQLite one can replace it
(survives a power cut) without the publisher changing. Readings are *droppable*: their part of the
box is bounded in bytes and the oldest is dropped (and counted) when full. Alarms and events are
never dropped.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from config.models.services import MqttConfig

READINGS_QUEUE_BYTES = MqttConfig().readings_queue_bytes
"""Default bound of the readings waiting for the broker: the site file's `mqtt.readings_queue_mb`."""

MESSAGE_OVERHEAD = 200
"""Bytes a queued message costs beyond its topic and payload (the objects holding them)."""


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


class DroppableQueue:
    """The readings part of an outbox: in memory, at most `max_bytes`, the oldest dropped first.

    A message's cost is its topic and payload plus `MESSAGE_OVERHEAD`, so the bound is the memory
    it holds. The newest message is always kept, whatever its size.
    """

    def __init__(self, max_bytes: int = READINGS_QUEUE_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("the readings queue needs at least 1 byte")
        self.max_bytes = max_bytes
        self.messages: deque[OutMessage] = deque()
        self.size_bytes = 0
        self.dropped = 0

    def append(self, message: OutMessage) -> None:
        self.messages.append(message)
        self.size_bytes += _cost(message)
        while self.size_bytes > self.max_bytes and len(self.messages) > 1:
            self.size_bytes -= _cost(self.messages.popleft())
            self.dropped += 1

    def ack(self, seq: int) -> None:
        messages = self.messages
        while messages and messages[0].seq <= seq:
            self.size_bytes -= _cost(messages.popleft())

    def __len__(self) -> int:
        return len(self.messages)


def _cost(message: OutMessage) -> int:
    return len(message.topic) + len(message.payload) + MESSAGE_OVERHEAD


def merged(kept: deque[OutMessage], droppable: DroppableQueue, limit: int) -> list[OutMessage]:
    """The oldest `limit` messages of both parts, in `seq` order."""
    heads = (itertools.islice(q, limit) for q in (kept, droppable.messages))
    return list(itertools.islice(heapq.merge(*heads, key=lambda m: m.seq), limit))


class MemoryOutbox:
    """The outbox in memory: lost on a crash, but bounded for readings and ordered.

    Args:
        max_droppable_bytes: memory the droppable messages (readings) may hold; the oldest go first.
    """

    def __init__(self, max_droppable_bytes: int = READINGS_QUEUE_BYTES) -> None:
        self._kept: deque[OutMessage] = deque()
        self._droppable = DroppableQueue(max_droppable_bytes)
        self._seq = itertools.count(1)

    def put(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, droppable: bool = False
    ) -> int:
        message = OutMessage(next(self._seq), topic, payload, qos, retain, droppable)
        (self._droppable if droppable else self._kept).append(message)
        return message.seq

    def peek(self, limit: int) -> list[OutMessage]:
        return merged(self._kept, self._droppable, limit)

    def ack(self, seq: int) -> None:
        while self._kept and self._kept[0].seq <= seq:
            self._kept.popleft()
        self._droppable.ack(seq)

    def __len__(self) -> int:
        return len(self._kept) + len(self._droppable)

    @property
    def dropped(self) -> int:
        return self._droppable.dropped
