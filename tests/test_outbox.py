"""The outbox contract, run against every implementation of the seam (only memory, for now)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.outbox import MemoryOutbox, Outbox

IMPLEMENTATIONS: list[Callable[[int], Outbox]] = [lambda n: MemoryOutbox(max_droppable=n)]


@pytest.fixture(params=IMPLEMENTATIONS, ids=["memory"])
def make(request: pytest.FixtureRequest) -> Callable[[int], Outbox]:
    return request.param  # type: ignore[no-any-return]


def put(box: Outbox, topic: str, droppable: bool = False) -> None:
    box.put(topic, topic.encode(), qos=0 if droppable else 1, retain=False, droppable=droppable)


def test_order_is_kept_across_kinds_and_ack_removes_a_prefix(make: Callable[[int], Outbox]) -> None:
    box = make(10)
    for topic, droppable in [("a", False), ("r1", True), ("b", False), ("r2", True), ("c", False)]:
        put(box, topic, droppable)
    assert [m.topic for m in box.peek(10)] == ["a", "r1", "b", "r2", "c"]
    assert [m.topic for m in box.peek(2)] == ["a", "r1"]
    assert [m.topic for m in box.peek(10)] == ["a", "r1", "b", "r2", "c"]  # peek removes nothing
    box.ack(box.peek(3)[-1].seq)
    assert [m.topic for m in box.peek(10)] == ["r2", "c"]
    assert len(box) == 2
    box.ack(box.peek(10)[-1].seq)
    assert box.peek(10) == [] and len(box) == 0


def test_readings_are_bounded_alarms_and_events_never_dropped(
    make: Callable[[int], Outbox],
) -> None:
    box = make(3)
    for i in range(100):
        put(box, f"event{i}")
        put(box, f"reading{i}", droppable=True)
    topics = [m.topic for m in box.peek(1000)]
    assert [t for t in topics if t.startswith("event")] == [f"event{i}" for i in range(100)]
    assert [t for t in topics if t.startswith("reading")] == ["reading97", "reading98", "reading99"]
    assert box.dropped == 97
    assert topics[-1] == "reading99"


def test_an_ack_for_a_message_dropped_meanwhile_is_harmless(make: Callable[[int], Outbox]) -> None:
    box = make(1)
    put(box, "r1", droppable=True)
    in_flight = box.peek(1)
    put(box, "r2", droppable=True)  # r1 dropped while it was being published
    box.ack(in_flight[-1].seq)
    assert [m.topic for m in box.peek(5)] == ["r2"]
