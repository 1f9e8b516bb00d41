"""The MQTT link against a real Mosquitto: QoS 1 messages are acknowledged, not sent again on the
next connection.

The fast read path against paho's own client: tests/unit/drivers/test_mqtt_link.py.
"""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from config.mqtt_settings import BrokerSettings
from drivers.mqtt_link import Message, MqttLink
from tests.support import Broker


class Inbox:
    """Collects batches from a link; tests await a count, never sleep."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = asyncio.Event()

    def __call__(self, batch: list[Message]) -> None:
        self.messages.extend(batch)
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.integration
async def test_qos1_messages_are_acknowledged_and_not_sent_again(broker: Broker) -> None:
    settings = BrokerSettings("127.0.0.1", broker.port, f"t{uuid.uuid4().hex[:8]}")
    topic = f"{settings.client_id_base}/level"
    async with MqttLink(settings, "in", Inbox(), clean_session=False) as link:
        await link.subscribe([(topic, 1)])
    async with aiomqtt.Client("127.0.0.1", broker.port) as device:  # while the link is away
        for n in range(300):
            await device.publish(topic, str(n), qos=1)

    first = Inbox()
    async with MqttLink(settings, "in", first, clean_session=False) as link:
        await first.until(300)  # queued by the broker for the session, sent after CONNACK
        # a round trip behind the PUBACKs: once SUBACK is back, the broker has read them (else a
        # quick reconnect may take the session over before the broker reads the old connection)
        await link.subscribe([(topic, 1)])
    assert [bytes(p) for _, p, _ in first.messages] == [str(n).encode() for n in range(300)]

    second = Inbox()
    async with MqttLink(settings, "in", second, clean_session=False) as link:
        await link.subscribe([(topic, 1)])
        async with aiomqtt.Client("127.0.0.1", broker.port) as device:
            await device.publish(topic, b"marker", qos=1)
        await second.until(1)
    assert second.messages == [(topic, b"marker", False)]  # nothing of the first 300 again
