"""The peer's configuration generated from the same site file the gateway runs.

`write_peer_config(site, folder, broker_port)` writes `tb_gateway.json` (platform connection to a
private Mosquitto, remote configuration and remote shell off, memory storage), `modbus.json` (one
slave per Modbus device: same host, port, framing, unit, registers, types, scale, poll period,
timeout and retries as the site) and, when the site has doors, `mqtt.json` (one mapping per door
topic), plus a quiet `logs.json`. What the peer's settings cannot say the same way is returned as
notes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from config.models import ModbusPoint, MqttPoint
from config.site import Site

FUNCTION_CODE = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
PEER_TYPE = {
    "int16": "16int", "uint16": "16uint", "int32": "32int", "uint32": "32uint",
    "int64": "64int", "uint64": "64uint", "float32": "32float", "float64": "64float",
    "string": "string",
}  # fmt: skip


def modbus_point(name: str, point: ModbusPoint) -> dict[str, Any]:
    """One entry of a slave's `timeseries`: the peer reads each point with its own request."""
    entry: dict[str, Any] = {
        "tag": name,
        "functionCode": FUNCTION_CODE[point.table],
        "address": point.address,
        "objectsCount": point.register_count,
    }
    if point.table in ("coil", "discrete"):
        entry.update(type="bits", bitTargetType="bool")
    elif point.bit is not None:
        entry.update(type="bits", bit=point.bit, bitTargetType="int")
    else:
        entry["type"] = PEER_TYPE[point.type]
    if point.scale != 1.0:
        entry["multiplier"] = point.scale
    return entry


BYTE_SWAPPED = ("BA", "BADC", "DCBA", "BADCFEHG", "HGFEDCBA")
"""Orders the peer could only follow with byteOrder LITTLE for the whole slave."""


def _word_order(point: ModbusPoint) -> str:
    """The peer's wordOrder for a point: ABCD/ABCDEFGH (the default) BIG, word-swapped LITTLE."""
    return "LITTLE" if point.order in ("CDAB", "GHEFCDAB") else "BIG"


def slave_word_order(points: Iterable[ModbusPoint]) -> str:
    """The wordOrder most of a device's multi-register points need (BIG when there are none)."""
    wide = [_word_order(p) for p in points if p.register_count > 1 and p.type != "string"]
    return max(("BIG", "LITTLE"), key=wide.count)


FRAMER = {"tcp": "socket", "rtu-over-tcp": "rtu"}
"""The peer's `method` ("type of a framer: socket or RTU") on a `tcp` slave: MBAP, or RTU frames
over TCP (a transparent converter)."""


def modbus_config(site: Site, notes: list[str]) -> dict[str, Any]:
    slaves = []
    orders = set()
    buses: set[str] = set()
    for device_id, device in site.devices.items():
        ref = device.spec.modbus
        if ref is None:
            continue
        bus = site.buses[ref.bus]
        if bus.transport == "rtu":
            notes.append(f"{device_id}: bus {bus.id} is rtu (a serial port); only tcp and "
                         "rtu-over-tcp are generated")  # fmt: skip
            continue
        buses.add(bus.id)
        points = {n: p for n, p in device.points.items() if isinstance(p, ModbusPoint)}
        word_order = slave_word_order(points.values())
        orders |= {f"{device_id}.{n} ({p.order or 'big-endian'})" for n, p in points.items()
                   if p.order in BYTE_SWAPPED
                   or (p.register_count > 1 and p.table in ("holding", "input")
                       and p.type != "string" and _word_order(p) != word_order)}  # fmt: skip
        slaves.append({
            "host": bus.host, "port": bus.port, "type": "tcp", "method": FRAMER[bus.transport],
            "unitId": ref.unit, "deviceName": device_id,
            "deviceType": device.spec.template or "default",
            "timeout": device.spec.timeout or bus.timeout, "retries": bus.retries,
            "byteOrder": "BIG", "wordOrder": word_order,
            "pollPeriod": round(device.spec.poll * 1000),
            "attributes": [],
            "timeseries": [modbus_point(n, p) for n, p in points.items()],
            "attributeUpdates": [], "rpc": [],
        })  # fmt: skip
    for bus_id in sorted(buses):
        bus = site.buses[bus_id]
        if bus.max_connections != 1:
            notes.append(
                f"bus {bus_id}: max_connections {bus.max_connections}; the peer has no such "
                "setting and opens one connection per host:port, shared by its slaves"
            )
    if orders:
        notes.append(
            "byte/word order is per slave in the peer, per point in the site; these points have "
            f"another order than their slave's and decode differently there: {', '.join(sorted(orders))}"
        )
    return {"master": {"slaves": slaves}}


def mqtt_config(site: Site, broker_port: int) -> dict[str, Any] | None:
    """One mapping per door topic (`{topic}/{sub}`), JSON fields to time series."""
    mapping = []
    for device_id, device in site.devices.items():
        if device.spec.mqtt is None:
            continue
        by_topic: dict[str, list[dict[str, str]]] = {}
        for name, point in device.points.items():
            if isinstance(point, MqttPoint):
                field = point.field or name
                kind = {"bool": "boolean", "string": "string"}.get(point.type, "double")
                by_topic.setdefault(point.topic, []).append(
                    {"type": kind, "key": name, "value": f"${{{field}}}"}
                )
        for sub, series in by_topic.items():
            topic = f"{device.spec.mqtt.topic}/{sub}" if sub else device.spec.mqtt.topic
            mapping.append({
                "topicFilter": topic, "subscriptionQos": 1,
                "converter": {
                    "type": "json",
                    "deviceInfo": {
                        "deviceNameExpressionSource": "constant", "deviceNameExpression": device_id,
                        "deviceProfileExpressionSource": "constant",
                        "deviceProfileExpression": device.spec.template or "default",
                    },
                    "sendDataOnlyOnChange": False, "timeout": 60000,
                    "attributes": [], "timeseries": series,
                },
            })  # fmt: skip
    if not mapping:
        return None
    return {
        "broker": {
            "host": "127.0.0.1", "port": broker_port, "clientId": f"tb-peer-doors-{broker_port}",
            "version": 5, "maxMessageNumberPerWorker": 10, "maxNumberOfWorkers": 100,
            "cleanSession": True, "cleanStart": True, "sessionExpiryInterval": 0,
            "security": {"type": "anonymous"},
        },
        "mapping": mapping,
        "requestsMapping": {},
    }  # fmt: skip


def gateway_config(broker_port: int, connectors: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "thingsboard": {
            "host": "127.0.0.1", "port": broker_port,
            "remoteShell": False, "remoteConfiguration": False, "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600,
                           "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 8196, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600, "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "bench"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 100000},
        "grpc": {"enabled": False},
        "connectors": connectors,
    }  # fmt: skip


def logs_config(folder: Path, level: str = "WARNING") -> dict[str, Any]:
    """The peer's loggers to one file at `level` (shipped: INFO to the console and 7 files), the
    root logger at ERROR as shipped (pymodbus 3.9 warns on every decode by the peer)."""
    handler = {"class": "logging.FileHandler", "formatter": "plain",
               "filename": str(folder / "peer.log"), "encoding": "utf-8"}  # fmt: skip
    names = ("database", "service", "connector", "converter", "tb_connection", "storage",
             "extension")  # fmt: skip
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"file": handler},
        "loggers": {n: {"handlers": ["file"], "level": level, "propagate": False} for n in names},
        "root": {"level": "ERROR", "handlers": ["file"]},
    }


def write_peer_config(
    site: Site, folder: Path, broker_port: int, doors_port: int | None = None
) -> list[str]:
    """Write the peer's config files into `folder`; returns notes on what differs from the site.

    Args:
        broker_port: the "platform" Mosquitto the peer sends its telemetry to.
        doors_port: the broker the doors publish on (default: the same).
    """
    folder.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    connectors = []
    modbus = modbus_config(site, notes)
    if modbus["master"]["slaves"]:
        (folder / "modbus.json").write_text(json.dumps(modbus, indent=1))
        connectors.append({"type": "modbus", "name": "Modbus", "configuration": "modbus.json"})
    doors = mqtt_config(site, doors_port or broker_port)
    if doors is not None:
        (folder / "mqtt.json").write_text(json.dumps(doors, indent=1))
        connectors.append({"type": "mqtt", "name": "Doors", "configuration": "mqtt.json"})
    (folder / "tb_gateway.json").write_text(json.dumps(gateway_config(broker_port, connectors),
                                                       indent=1))  # fmt: skip
    (folder / "logs.json").write_text(json.dumps(logs_config(folder), indent=1))
    return notes
