"""`fgw poll SITE --once`: read every (or one) device once, for commissioning a new device.

Modbus devices are read with the driver's own request plan; MQTT devices are listened to for a few
seconds (retained and heartbeat messages arrive at once, events only when they happen).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from config.models import MqttPoint
from config.site import Device, Site
from drivers.modbus.poller import poll_site_once as poll_modbus_once
from drivers.mqtt import point_topic
from drivers.mqtt_payload import PayloadError, parse_point
from ground.model import Quality, Reading

log = logging.getLogger("fgw.poll")


async def listen_mqtt_once(site: Site, devices: list[Device], wait: float) -> list[Reading]:
    """The latest value of each MQTT point heard within `wait` seconds; unheard points are stale."""
    import aiomqtt

    latest: dict[tuple[str, str], Reading] = {}
    routes: dict[str, list[tuple[Device, str, MqttPoint]]] = {}
    for device in devices:
        for name, point in device.points.items():
            assert isinstance(point, MqttPoint)
            routes.setdefault(point_topic(site.device_topic(device), point), []).append(
                (device, name, point)
            )
    if routes:
        mqtt = site.file.mqtt
        try:  # unheard points stay stale
            async with (
                asyncio.timeout(wait),
                aiomqtt.Client(mqtt.host, mqtt.port, identifier=f"fgw-{site.id}-poll") as client,
            ):
                for topic in routes:
                    await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    for device, name, point in routes.get(str(message.topic), []):
                        try:
                            value, quality = parse_point(point, bytes(message.payload or b""))
                        except PayloadError:
                            value, quality = None, Quality.BAD
                        latest[(device.id, name)] = Reading(
                            device.id, name, value, quality, time.time()
                        )
        except TimeoutError:
            pass
        except aiomqtt.MqttError as exc:
            log.warning(
                "MQTT broker %s:%d not reachable (%s): the MQTT devices read as stale; "
                "is Mosquitto running? check mqtt: in the site file",
                mqtt.host,
                mqtt.port,
                exc,
            )
    now = time.time()
    return [
        latest.get((d.id, name), Reading(d.id, name, None, Quality.STALE, now))
        for d in devices
        for name in d.points
    ]


async def poll_site_once(
    site: Site, device_ids: Iterable[str] | None, *, mqtt_wait: float = 3.0
) -> list[dict[str, Any]]:
    """Every selected device read once, as the JSON lines `fgw poll` prints."""
    wanted = list(device_ids) if device_ids is not None else list(site.devices)
    modbus_ids = [i for i in wanted if site.devices[i].spec.modbus is not None]
    mqtt_devices = [site.devices[i] for i in wanted if site.devices[i].spec.mqtt is not None]
    readings: list[Reading] = []
    if modbus_ids:
        readings.extend(await poll_modbus_once(site, modbus_ids))
    if mqtt_devices:
        readings.extend(await listen_mqtt_once(site, mqtt_devices, mqtt_wait))
    return [to_json(site, r) for r in readings]


def to_json(site: Site, reading: Reading) -> dict[str, Any]:
    """PRODUCT §8: `{"device", "point", "value", "unit", "quality", "ts"}`."""
    point = site.devices[reading.device].points[reading.point]
    return {
        "device": reading.device,
        "point": reading.point,
        "value": reading.value,
        "unit": point.unit,
        "quality": str(reading.quality),
        "ts": datetime.fromtimestamp(reading.ts, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
