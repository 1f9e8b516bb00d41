"""The inject channel: drive a running simulator into a fault over MQTT (`fgw inject`).

Commands go to `fgw-sim/{site}/{device}/inject` as JSON — `{"fault": "fire", "zone": 3}`,
`{"fault": "clear"}`, `{"set": {"run_hours": 1999.5}}` — with an optional correlation `id`; the
simulator answers on `fgw-sim/{site}/{device}/result` with `{"ok": true, "id": …}` or
`{"ok": false, "error": "…", "id": …}`. MQTT rather than a private socket because the simulators
already speak to the broker for the doors, and anyone can watch the channel with `mosquitto_sub`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import aiomqtt

from simulators.base import DeviceSimulator, InjectError

log = logging.getLogger(__name__)

TOPIC_ROOT = "fgw-sim"


def inject_topic(site_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site_id}/{device_id}/inject"


def result_topic(site_id: str, device_id: str) -> str:
    return f"{TOPIC_ROOT}/{site_id}/{device_id}/result"


def parse_command(payload: bytes | str) -> dict[str, Any]:
    """The JSON object of an inject message.

    Raises:
        InjectError: not JSON, or not an object with `fault` or `set`.
    """
    try:
        command = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InjectError(f"the command is not JSON: {exc}") from None
    if not isinstance(command, dict):
        raise InjectError("the command must be a JSON object with 'fault' or 'set'")
    return command


def apply_command(sim: DeviceSimulator, command: dict[str, Any]) -> None:
    """Do what an inject command asks of one simulator.

    Raises:
        InjectError: an unknown fault or point, a bad value, or a command that is neither.
    """
    body = {k: v for k, v in command.items() if k != "id"}
    if "set" in body:
        values = body.pop("set")
        if body:
            raise InjectError(f"'set' cannot be combined with {sorted(body)}")
        if not isinstance(values, dict) or not values:
            raise InjectError("'set' takes an object of point: value, e.g. {\"run_hours\": 1999.5}")
        for point, value in values.items():
            sim.set(str(point), value)
        return
    fault = body.pop("fault", None)
    if not isinstance(fault, str):
        raise InjectError(
            f"a command needs 'fault' (one of: {', '.join(sim.fault_names())}) or 'set'"
        )
    sim.inject(fault, **body)


def handle_message(
    devices: dict[str, DeviceSimulator], device_id: str, payload: bytes | str
) -> dict[str, Any]:
    """Apply one inject message and build its result; never raises for bad input."""
    correlation: Any = None
    try:
        command = parse_command(payload)
        correlation = command.get("id")
        sim = devices.get(device_id)
        if sim is None:
            raise InjectError(f"no simulated device {device_id!r}: {', '.join(sorted(devices))}")
        apply_command(sim, command)
        result: dict[str, Any] = {"ok": True}
    except InjectError as exc:
        result = {"ok": False, "error": str(exc)}
    except Exception as exc:  # a simulator bug must not take the inject channel down
        log.exception("inject %s %r failed", device_id, payload)
        result = {"ok": False, "error": f"the simulator failed: {exc!r}"}
    if correlation is not None:
        result["id"] = correlation
    return result


async def send_inject(
    host: str,
    port: int,
    site_id: str,
    device_id: str,
    command: dict[str, Any],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Send one inject command to a running `fgw sim` and wait for its result.

    Args:
        host, port: the broker the simulators listen on.
        site_id, device_id: which simulator.
        command: e.g. `{"fault": "trip"}`, `{"fault": "fire", "zone": 3}`, `{"set": {"starts": 0}}`.
        timeout: seconds to wait for the answer.

    Returns:
        The simulator's result: `{"ok": True, ...}` or `{"ok": False, "error": ...}`.

    Raises:
        TimeoutError: no simulator answered (is `fgw sim` running for this site and broker?).
        aiomqtt.MqttError: the broker cannot be reached.
    """
    correlation = uuid.uuid4().hex
    message = json.dumps({**command, "id": correlation})
    try:
        async with asyncio.timeout(timeout):
            return await _round_trip(host, port, site_id, device_id, correlation, message)
    except TimeoutError:
        raise TimeoutError(
            f"no answer from the simulator of {site_id}/{device_id} via {host}:{port} within "
            f"{timeout:g}s: is `fgw sim` running for this site and broker?"
        ) from None


async def _round_trip(
    host: str, port: int, site_id: str, device_id: str, correlation: str, message: str
) -> dict[str, Any]:
    async with aiomqtt.Client(host, port, identifier=f"fgw-inject-{correlation[:8]}") as client:
        await client.subscribe(result_topic(site_id, device_id), qos=1)
        await client.publish(inject_topic(site_id, device_id), message, qos=1)
        async for reply in client.messages:
            try:
                result = json.loads(reply.payload)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            if isinstance(result, dict) and result.pop("id", None) == correlation:
                return result
    raise TimeoutError("the result stream ended")  # pragma: no cover - the loop never ends
