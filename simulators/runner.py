"""`SiteSimulator`: every device of a site simulated on the real wire, started and stopped as one.

One Modbus TCP server per `tcp` bus, one MQTT connection for the doors' messages and the inject
channel, and a physics loop that steps every simulator and copies the register images into the
servers. Everything runs in one TaskGroup with named tasks; leaving the `async with` stops the tasks,
closes the servers and the MQTT connection, and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from types import TracebackType
from typing import Any, Self

import aiomqtt

from config.models import ModbusBus
from config.site import Site
from ground.backoff import Backoff
from simulators.base import DeviceSimulator
from simulators.control import TOPIC_ROOT, handle_message, result_topic
from simulators.converter import ConverterServer, PtyLine, line_for
from simulators.door import AccessDoorSimulator
from simulators.modbus_server import BusServer
from simulators.registry import simulator_for
from simulators.water import LeakSensorSimulator

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 1000
"""Door messages kept while the broker is away; older ones are dropped (a controller's small buffer)."""


def pty_refusal(bus: ModbusBus) -> str:
    """Why an `rtu` bus cannot be served on a pseudo-terminal here, or "" when it can.

    A path under /dev is a real serial device on a real machine: a simulator never makes links there.
    """
    if bus.transport != "rtu":
        return ""
    if str(bus.port).startswith("/dev/"):
        return (
            f"bus {bus.id} is the serial device {bus.port}: give the bus a path outside /dev"
            " (e.g. /tmp/fgw-tty0) to simulate it on a pseudo-terminal"
        )
    if shutil.which("socat") is None:
        return f"bus {bus.id} is rtu and socat is not installed (apt-get install socat)"
    return ""


class SiteSimulator:
    """The simulators of one site, on the wire.

    Args:
        site: the loaded site (`config.site.load_site`).
        broker_host, broker_port: the MQTT broker for the doors and the inject channel; default the
            site's own `mqtt` section. `mqtt=False` runs without MQTT (Modbus only).
        seed: a fixed seed makes every device's physics reproducible (each device gets its own stream).
        tick: seconds between physics steps (and register refreshes).
    """

    def __init__(
        self,
        site: Site,
        broker_host: str | None = None,
        broker_port: int | None = None,
        *,
        seed: int | None = None,
        tick: float = 0.2,
        mqtt: bool = True,
    ) -> None:
        self.site = site
        self.broker = (broker_host or site.file.mqtt.host, broker_port or site.file.mqtt.port)
        self.use_mqtt = mqtt
        self.tick = tick
        self.devices: dict[str, DeviceSimulator] = {
            device_id: simulator_for(
                device_id,
                device.spec.template,
                device.points,
                seed=None if seed is None else f"{seed}:{device_id}",
            )
            for device_id, device in site.devices.items()
        }
        self.servers: dict[str, BusServer | ConverterServer | PtyLine] = {}
        self.skipped: dict[str, str] = {}
        self._plan_buses()
        self.mqtt_ready = asyncio.Event()
        """Set while the inject channel is subscribed (tests wait on it instead of sleeping)."""
        self.dropped_messages = 0
        self._outgoing: asyncio.Queue[tuple[str, str, bool]] = asyncio.Queue(OUTBOX_LIMIT)
        self._stack: contextlib.AsyncExitStack | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._children: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def name(self) -> str:
        return f"fgw-sim[{self.site.id}]"

    def _plan_buses(self) -> None:
        """One server per bus: pymodbus for a plain `tcp` bus, a simulated converter for a `tcp`
        bus with `sim.converter` and for `rtu-over-tcp`, a pseudo-terminal line for `rtu`."""
        units: dict[str, dict[int, DeviceSimulator]] = {}
        for device_id, device in self.site.devices.items():
            if device.spec.modbus is None:
                continue
            bus = self.site.buses[device.spec.modbus.bus]
            why = pty_refusal(bus)
            if why:
                self.skipped[device_id] = why
                continue
            units.setdefault(bus.id, {})[device.spec.modbus.unit] = self.devices[device_id]
        for bus_id, bus_units in units.items():
            bus = self.site.buses[bus_id]
            if bus.transport == "rtu":
                self.servers[bus_id] = PtyLine(bus, line_for(bus, bus_units))
            elif bus.transport == "rtu-over-tcp" or bus.sim.converter:
                framing = "mbap" if bus.transport == "tcp" else "rtu"
                line = line_for(bus, bus_units)
                self.servers[bus_id] = ConverterServer(bus, line, framing, bus.sim.connections)
            else:
                self.servers[bus_id] = BusServer(bus, bus_units)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("a SiteSimulator is not re-entrant")
        for device_id, why in self.skipped.items():
            log.warning("%s: not simulating %s: %s", self.name, device_id, why)
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        self._stopping = False
        try:
            for server in self.servers.values():
                await server.start()
                stack.push_async_callback(server.stop)
            group = await stack.enter_async_context(asyncio.TaskGroup())
            stack.callback(self._cancel_tasks)  # runs before the group waits for its tasks
            self._tasks.append(group.create_task(self._physics(), name=f"{self.name}.physics"))
            if self.use_mqtt:
                self._tasks.append(group.create_task(self._mqtt(), name=f"{self.name}.mqtt"))
        except BaseException:
            await stack.aclose()
            self._stack = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        try:
            try:
                await self._stop_tasks()
            finally:
                await self._stack.aclose()
        finally:
            self._stack = None
            self.mqtt_ready.clear()

    def _cancel_tasks(self) -> None:
        self._stopping = True
        for task in [*self._tasks, *self._children]:
            task.cancel()

    async def _stop_tasks(self) -> None:
        """Cancel our tasks until they are all done.

        Once is not enough on Python 3.11: aiomqtt's publish awaits `asyncio.wait_for`, which can
        swallow a cancellation that arrives as the PUBACK does; a task that lost its cancel would
        wait for the next message forever and the TaskGroup with it.
        """
        while live := [t for t in (*self._tasks, *self._children) if not t.done()]:
            self._cancel_tasks()
            await asyncio.wait(live, timeout=0.5)
        self._tasks.clear()

    # ------------------------------------------------------------------ physics

    def step(self, dt: float) -> None:
        """Advance every simulator by `dt` and queue the doors' messages."""
        for sim in self.devices.values():
            sim.step(dt)
        self._collect_messages()

    async def refresh(self) -> None:
        """Copy the simulators' register images into the Modbus servers now."""
        for server in self.servers.values():
            await server.refresh()

    async def _physics(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            self.step(min(now - last, 5 * self.tick))  # a stalled loop does not jump the physics
            last = now
            await self.refresh()

    def _collect_messages(self) -> None:
        for device_id, sim in self.devices.items():
            if not isinstance(sim, AccessDoorSimulator | LeakSensorSimulator):
                continue
            device = self.site.devices[device_id]
            if device.spec.mqtt is None:
                continue
            base = self.site.device_topic(device)  # under mqtt.device_base, as the gateway reads it
            for message in sim.take_outbox():
                sub = message.subtopic
                # an empty sub-topic is the device's own topic (the leak sensor)
                topic = sub[1:] if sub.startswith("/") else f"{base}/{sub}".rstrip("/")
                try:
                    self._outgoing.put_nowait((topic, json.dumps(message.payload), message.retain))
                except asyncio.QueueFull:
                    self.dropped_messages += 1

    # ------------------------------------------------------------------ MQTT

    async def _mqtt(self) -> None:
        """Keep one MQTT connection: inject commands in, door messages out; reconnect with back-off."""
        host, port = self.broker
        backoff = Backoff(initial=0.2, cap=5.0)
        identifier = f"fgw-sim-{self.site.id}-{os.getpid()}-{id(self):x}"
        lost = False
        while not self._stopping:
            try:
                async with aiomqtt.Client(host, port, identifier=identifier) as client:
                    await client.subscribe(f"{TOPIC_ROOT}/{self.site.id}/+/inject", qos=1)
                    backoff.reset()
                    if lost:
                        log.info("%s: broker %s:%d is back", self.name, host, port)
                    lost = False
                    for sim in self.devices.values():
                        if isinstance(sim, AccessDoorSimulator | LeakSensorSimulator):
                            sim.announce()
                    self.mqtt_ready.set()
                    async with asyncio.TaskGroup() as group:
                        self._children = {
                            group.create_task(
                                self._publish(client), name=f"{self.name}.mqtt.publish"
                            ),
                            group.create_task(
                                self._listen(client), name=f"{self.name}.mqtt.inject"
                            ),
                        }
            except* aiomqtt.MqttError as errors:
                self.mqtt_ready.clear()
                if self._stopping:
                    # The client's disconnect failed while we were being cancelled and its
                    # MqttError replaced the CancelledError: swallowing it would loop forever.
                    # (A flag, not Task.cancelling(): 3.11's TaskGroup leaves that count stale.)
                    raise asyncio.CancelledError from None
                if not lost:
                    why = "; ".join(str(e) or type(e).__name__ for e in errors.exceptions)
                    log.warning("%s: broker %s:%d unreachable: %s", self.name, host, port, why)
                lost = True
            await asyncio.sleep(backoff.next_delay())

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            topic, payload, retain = await self._outgoing.get()
            await client.publish(topic, payload, qos=1, retain=retain)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = message.topic.value.split("/")
            if len(parts) != 4 or parts[3] != "inject":
                continue
            device_id = parts[2]
            payload: Any = message.payload
            if not isinstance(payload, bytes | str):
                payload = b""
            result = handle_message(self.devices, device_id, payload)
            log.info("%s: inject %s %s -> %s", self.name, device_id, payload, result)
            self._collect_messages()
            await self.refresh()
            await client.publish(result_topic(self.site.id, device_id), json.dumps(result), qos=1)


async def run_until_cancelled(
    site: Site,
    broker_host: str | None = None,
    broker_port: int | None = None,
    *,
    seed: int | None = None,
) -> None:
    """`fgw sim SITE`: serve the site's simulators until the task is cancelled (Ctrl-C) or SIGTERM.

    SIGTERM ends it cleanly, like Ctrl-C: the servers close and the socat pairs of `rtu` buses
    are stopped rather than left behind.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform / thread
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await _serve(site, broker_host, broker_port, seed, stop)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _serve(
    site: Site,
    broker_host: str | None,
    broker_port: int | None,
    seed: int | None,
    stop: asyncio.Event,
) -> None:
    async with SiteSimulator(site, broker_host, broker_port, seed=seed) as sim:
        for bus_id, server in sim.servers.items():
            where = site.buses[bus_id].endpoint
            log.info("fgw sim: bus %s on %s, units %s", bus_id, where, sorted(server.units))
        host, port = sim.broker
        log.info(
            "fgw sim: doors and inject channel via MQTT %s:%d (%s/%s/DEVICE/inject)",
            host,
            port,
            TOPIC_ROOT,
            site.id,
        )
        await stop.wait()
