"""Support for end-to-end tests: a site on free loopback ports, and an MQTT watcher.

The watcher is a real subscriber on the test broker that keeps the last retained payload of every
topic and every event, so tests wait for *conditions* (an alarm in a state) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt

from tests.support import free_port

SITE_TEMPLATE = """
site: {{id: {site_id}, name: End-to-end site, timezone: Asia/Shanghai, locale: en}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}
modbus:
  - {{id: plant-room, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 300ms, retries: 0}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: plant-room, unit: 1}}, poll: 200ms,
     depends_on: [meter-1]}}
  - {{id: pump-2, template: booster_pump, modbus: {{bus: plant-room, unit: 2}}, poll: 200ms}}
  - {{id: meter-1, template: energy_meter, modbus: {{bus: plant-room, unit: 10}}, poll: 200ms,
     comm_loss_after: 2s}}
  - {{id: lift-1, template: lift, modbus: {{bus: plant-room, unit: 21}}, poll: 200ms}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: plant-room, unit: 30}}, poll: 200ms}}
  - {{id: door-lobby, template: access_door, mqtt: {{topic: doors/lobby}}}}
rules:
  # shorter on-delays than the templates', so the tests do not wait minutes
  - {{id: dry_run, device: pump-2, for: 1s}}
  - {{id: undervoltage, device: meter-1, for: 1s}}
"""


def write_site(folder: Path, mqtt_port: int) -> Path:
    """A site on free ports with an id of its own: retained topics of other tests never mix in."""
    path = folder / "site.yaml"
    site_id = f"e2e-{uuid.uuid4().hex[:8]}"
    path.write_text(
        SITE_TEMPLATE.format(site_id=site_id, mqtt_port=mqtt_port, modbus_port=free_port())
    )
    return path


class Watcher:
    """Remembers what the gateway published: retained state per topic, and the event stream."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.retained: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.status: str | None = None
        self.last: dict[str, bytes] = {}  # every topic under the prefix, its last payload
        self._changed = asyncio.Condition()

    async def _feed(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the broker went away: stop watching
            await self._consume(client)

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = bytes(message.payload or b"")
            self.last[topic] = payload
            if topic == f"{self.prefix}/status":
                self.status = payload.decode()
            elif topic == f"{self.prefix}/events":
                self.events.append(json.loads(payload))
            elif topic.startswith(f"{self.prefix}/alarms/"):
                self.retained[topic] = json.loads(payload) if payload else None
            async with self._changed:
                self._changed.notify_all()

    def alarm(self, device: str, rule: str) -> dict[str, Any] | None:
        return self.retained.get(f"{self.prefix}/alarms/{device}/{rule}")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy; return its value or fail with what was seen."""

        async def _wait() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"not seen within {timeout}s; status={self.status!r} "
                f"retained={json.dumps(self.retained, ensure_ascii=False)[:2000]}"
            ) from None

    async def wait_alarm(
        self, device: str, rule: str, state: str | tuple[str, ...], timeout: float = 10.0
    ) -> dict[str, Any]:
        states = (state,) if isinstance(state, str) else state

        def seen() -> dict[str, Any] | None:
            alarm = self.alarm(device, rule)
            return alarm if alarm and alarm["state"] in states else None

        return await self.wait_for(seen, timeout)


@contextlib.asynccontextmanager
async def watching(port: int, prefix: str) -> AsyncIterator[Watcher]:
    """A `Watcher` subscribed to everything under `prefix` on the broker at 127.0.0.1:port."""
    watcher = Watcher(prefix)
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"e2e-watch-{free_port()}") as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        task = asyncio.create_task(watcher._feed(client), name="e2e.watch")
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
