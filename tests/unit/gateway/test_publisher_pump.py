"""The publisher's pump hands a backlog over a turn at a time: the loop's other work (polls, rules,
the next alarm) runs between turns. A link stand-in that writes at once, as a socket with room does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from config.site import load_site
from gateway.publisher import PUMP_TURN, MqttPublisher
from ground.model import Quality, Reading


class WritingLink:
    """Takes every publish and, for QoS 0, reports it written at once (paho's `on_publish`)."""

    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher
        self.topics: list[str] = []

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> int:
        self.topics.append(topic)
        mid = len(self.topics)
        if qos == 0:
            self.publisher._published(mid)
        return mid


def publisher(tmp_path: Path) -> MqttPublisher:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: pump}\nmqtt: {host: 127.0.0.1, port: 1, publish_readings: true}\n"
        "devices:\n  - {id: tank, mqtt: {topic: tanks/1}, points: {level: {topic: level}}}\n"
    )
    return MqttPublisher(load_site(path), snapshot=list)


async def test_a_backlog_of_readings_goes_out_a_turn_at_a_time(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    for n in range(3 * PUMP_TURN + 7):
        pub.publish_readings("pump-1", [Reading("pump-1", "flow", float(n), Quality.GOOD, 1.8e9)])
    link = WritingLink(pub)
    pub._link = link  # type: ignore[assignment]
    turns: list[int] = []
    pub.send_now()
    turns.append(len(link.topics))
    while len(pub.outbox):
        before = len(link.topics)
        await asyncio.sleep(0)  # the loop's other work runs here
        turns.append(len(link.topics) - before)
    assert turns[0] == PUMP_TURN and max(turns) <= PUMP_TURN
    assert sum(turns) == 3 * PUMP_TURN + 7 and pub.stats()["dropped"] == 0


async def test_an_event_queued_behind_the_backlog_leaves_in_its_turn(tmp_path: Path) -> None:
    pub = publisher(tmp_path)
    for n in range(PUMP_TURN):
        pub.publish_readings("pump-1", [Reading("pump-1", "flow", float(n), Quality.GOOD, 1.8e9)])
    pub.publish_event({"type": "alarm", "id": "fire-1.fire_alarm"})
    link: Any = WritingLink(pub)
    pub._link = link
    pub.send_now()
    await asyncio.sleep(0)
    assert link.topics[-1].endswith("/events")  # in order, one turn later
    assert len(link.topics) == PUMP_TURN + 1
