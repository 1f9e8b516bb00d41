"""The Modbus driver: every device of one bus polled on its own fixed-rate schedule.

Shape: `ModbusBusDriver` is an async context manager. Entering it starts one task per device in a
`TaskGroup` it owns (named `fgw[modbus:BUS].poll[DEVICE]`); leaving it cancels them, waits for them and
closes the connections — nothing is left running. `await driver.run()` is the same thing for callers
that want one awaitable to put in their own TaskGroup: it runs until cancelled.

    async with ModbusBusDriver(bus, devices, sink) as driver:
        ...                      # readings and device statuses flow into `sink`
        driver.stats()           # per-device counters for /metrics

The key property: **one dead device must not slow its bus neighbours more than its own, rare
attempts do.** The devices of a bus share its endpoint's connections (`drivers.modbus.link`), one
request at a time on each, as a serial-to-Ethernet converter or an RS-485 line demands. A device that
has lost communication is tried on an exponential back-off (`ground.backoff.Backoff`, up to
`BACKOFF_CAP` seconds), so it costs the line one timeout now and then instead of one per poll; the
same back-off paces reconnects to a restarted server.

Schedule: attempts happen on the grid `start + k × poll`; a slow poll skips the slots it overran
rather than bursting to catch up, and the schedule never drifts.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from config.models import ModbusBus
from drivers.modbus.device import DevicePoller, PollOutcome
from drivers.modbus.health import DeviceStats
from drivers.modbus.link import Endpoint, Link
from ground.model import DeviceStatus, Reading, ReadingSink
from ground.tasks import cancel_and_wait

if TYPE_CHECKING:
    from config.site import Device, Site

log = logging.getLogger("drivers.modbus")


def _reraise_swallowed_cancel() -> None:
    """Re-raise a cancellation that a library swallowed.

    On Python 3.11, `asyncio.wait_for` drops a cancellation that arrives as the awaited result does
    (gh-86296), and libraries' waits may use it. The task is then "cancelling" but runs on, and the
    task group waiting for it never ends: shutdown hangs. Checking after each poll fixes that.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def next_slot(due: float, period: float, not_before: float) -> float:
    """The first time on the grid `due + k × period` (k ≥ 1) that is later than `not_before`."""
    if due + period > not_before:
        return due + period
    return due + (math.floor((not_before - due) / period) + 1) * period


class SlotTimer:
    """Wakes every device due at one time with a single timer, instead of one `sleep` each.

    The devices of a bus share one schedule origin, so devices of the same poll period are due at
    exactly the same times (`origin + k × poll`). `asyncio.sleep` per device per cycle makes a timer
    handle each time and pushes it through the loop's heap (whose ordering is Python code); here a
    slot gets one `call_at` and each waiting device only a bare future, resolved together when the
    slot comes. A device waits for its own future, so cancelling one waiter touches no other.

    Args:
        loop: the running loop (its clock is the schedule's clock).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[float, list[asyncio.Future[None]]] = {}

    def wait_until(self, when: float) -> asyncio.Future[None]:
        """A future resolved at `when` (loop time), by the slot's one timer."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        waiters = self._slots.get(when)
        if waiters is None:
            self._slots[when] = [waiter]
            self._loop.call_at(when, self._release, when)
        else:
            waiters.append(waiter)
        return waiter

    def _release(self, when: float) -> None:
        for waiter in self._slots.pop(when, ()):
            if not waiter.done():  # a cancelled waiter (shutdown) is skipped
                waiter.set_result(None)


class ModbusBusDriver:
    """Polls the devices of one Modbus bus and hands readings to a sink.

    Args:
        bus: the bus (TCP host:port, or RTU serial line).
        devices: the devices on that bus (each with `spec.modbus.bus == bus.id`).
        sink: receives `Reading` batches (one per poll) and `DeviceStatus` changes.
    """

    def __init__(self, bus: ModbusBus, devices: Sequence[Device], sink: ReadingSink) -> None:
        for device in devices:
            if device.spec.modbus is None or device.spec.modbus.bus != bus.id:
                raise ValueError(f"device {device.id} is not on Modbus bus {bus.id}")
        self.bus = bus
        self.sink = sink
        self.name = f"fgw[modbus:{bus.id}]"
        self.pollers = {d.id: DevicePoller(d, bus) for d in devices}
        self._links: dict[str, Link] = {}
        self.bus_silent = False
        self._endpoint: Endpoint | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._group is not None:
            raise RuntimeError(f"{self.name} is already running (the driver is not re-entrant)")
        self._open_links()
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        slots = SlotTimer(asyncio.get_running_loop())
        origin = time.monotonic()  # one grid for the bus: same-period devices share their slots
        for device_id, poller in self.pollers.items():
            task = self._group.create_task(
                self._run_device(poller, self._links[device_id], slots, origin),
                name=f"{self.name}.poll[{device_id}]",
            )
            self._tasks.append(task)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._group = self._group, None
        await cancel_and_wait(self._tasks)  # once is not always enough on 3.11 (ground.tasks)
        self._tasks.clear()
        try:
            if group is not None:
                await group.__aexit__(exc_type, exc, tb)
        finally:
            self._close_links()

    async def run(self) -> None:
        """Poll until cancelled (for callers that want a single awaitable)."""
        async with self:
            await asyncio.Future()

    def stats(self) -> dict[str, DeviceStats]:
        """Per-device counters (polls, errors, last_seen, last_poll_seconds, online)."""
        return {i: p.health.stats() for i, p in self.pollers.items()}

    # ------------------------------------------------------------------------------ polling

    async def _run_device(
        self, poller: DevicePoller, link: Link, slots: SlotTimer, origin: float
    ) -> None:
        due, period, health, monotonic = origin, poller.period, poller.health, time.monotonic
        health.start(monotonic())
        while True:
            if due > monotonic():
                await slots.wait_until(due)
            # the poll, then its report: a plain call, not a coroutine of its own per poll
            answered = self._report(poller, await poller.poll(link))
            _reraise_swallowed_cancel()
            now = monotonic()
            if answered:
                poller.backoff.reset()
                due = next_slot(due, period, now)
            else:  # silent: on a shared line its every attempt costs its neighbours a timeout
                due = next_slot(due, period, now + poller.backoff.next_delay())

    async def _poll_and_report(self, poller: DevicePoller, link: Link) -> bool:
        """One poll; report readings and status changes to the sink. True if the device answered."""
        return self._report(poller, await poller.poll(link))

    def _report(self, poller: DevicePoller, outcome: PollOutcome) -> bool:
        """Report a poll's readings and status change to the sink. True if the device answered."""
        now, wall = time.monotonic(), time.time()
        if outcome.failure is None:
            change = poller.health.record_ok(now, wall, outcome.duration, outcome.errors)
            if change is not None:
                self._status(poller, change.online, change.reason, wall)
            elif self.bus_silent:  # back before any device was declared offline
                self._bus_status("answers again", wall)
            self._deliver(outcome.readings)
            return True
        change = poller.health.record_failure(now, outcome.failure, outcome.duration)
        if not self.bus_silent and self._endpoint is not None and self._endpoint.unreachable:
            self._bus_status(outcome.failure, wall)  # the endpoint first: it is the root cause
        if change is not None:
            self._status(poller, change.online, change.reason, wall)
            self._deliver(poller.stale_readings())
        return False

    def _status(self, poller: DevicePoller, online: bool, reason: str, wall: float) -> None:
        level = logging.INFO if online else logging.WARNING
        state = "online" if online else "offline"
        log.log(
            level,
            "%s %s (bus %s, %s): %s",
            poller.id,
            state,
            self.bus.id,
            self.bus.endpoint,
            reason,
            extra={"device": poller.id},
        )
        status = DeviceStatus(poller.id, online, wall, reason)
        self._sink_call(lambda: self.sink.device_status(status))
        self._bus_status(reason, wall)

    def _bus_status(self, reason: str, wall: float) -> None:
        """The whole bus went silent (every device offline, or the endpoint refuses connections
        `UNREACHABLE_AFTER` times in a row — then before the devices' own comm_loss, so that the
        bus is their root cause), or a device on it answers again.

        Reported once per change as the status of the bus's `alarm_device`, the root cause the
        devices' comm_loss is linked to (the converter, its network or its power); only for a bus
        of two devices or more, where it says more than the one device's comm_loss.
        """
        if len(self.pollers) < 2:
            return
        endpoint_down = self._endpoint is not None and self._endpoint.unreachable
        silent = endpoint_down or all(p.health.online is False for p in self.pollers.values())
        if silent == self.bus_silent:
            return
        self.bus_silent = silent
        where = f"bus {self.bus.id} ({self.bus.endpoint})"
        if silent:
            why = f"no unit on {self.bus.endpoint} answers; last: {reason}"
            log.warning("%s silent: %s", where, why, extra={"bus": self.bus.id})
        else:
            why = f"a unit on {self.bus.endpoint} answers again"
            log.info("%s answers again", where, extra={"bus": self.bus.id})
        status = DeviceStatus(self.bus.alarm_device, not silent, wall, why)
        self._sink_call(lambda: self.sink.device_status(status))

    def _deliver(self, readings: list[Reading]) -> None:
        if readings:  # `_sink_call` written out: this runs once a poll
            try:
                self.sink.readings(readings)
            except Exception:
                log.exception("%s: the reading sink failed", self.name)

    def _sink_call(self, deliver: Callable[[], None]) -> None:
        """A failing sink is its owner's bug; it must not stop the polling of a bus."""
        try:
            deliver()
        except Exception:
            log.exception("%s: the reading sink failed", self.name)

    def _open_links(self) -> None:
        """The bus's one `Endpoint`, shared by its devices (made on entry: it belongs to the loop)."""
        shared = Endpoint(self.bus)
        self._endpoint = shared
        self._links = dict.fromkeys(self.pollers, shared)

    def _close_links(self) -> None:
        for link in {id(link): link for link in self._links.values()}.values():
            link.close()
        self._links = {}
        self._endpoint = None

    # ------------------------------------------------------------------------------ one-shot

    async def read_once(self, device_ids: Iterable[str] | None = None) -> list[Reading]:
        """Poll each (selected) device once, without starting the schedule.

        A device that does not answer within its timeout gives `stale` readings and a logged error;
        no request waits longer than its device's timeout once it has the line (devices take turns
        on the bus's connections, so a dead unit delays the others by its timeout).
        """
        ids = list(self.pollers) if device_ids is None else list(device_ids)
        self._open_links()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(
                        self.pollers[i].poll(self._links[i]), name=f"{self.name}.once[{i}]"
                    )
                    for i in ids
                ]
        finally:
            self._close_links()
        readings: list[Reading] = []
        for device_id, task in zip(ids, tasks, strict=True):
            outcome, poller = task.result(), self.pollers[device_id]
            if outcome.failure is not None:
                log.error("%s: %s", device_id, outcome.failure, extra={"device": device_id})
                readings.extend(poller.stale_readings())
            else:
                readings.extend(outcome.readings)
        return readings


async def poll_once(
    buses: Mapping[str, ModbusBus],
    devices: Iterable[Device],
    device_ids: Iterable[str] | None = None,
) -> list[Reading]:
    """Read every selected Modbus device once (`fgw poll SITE --once [--device ID]`).

    Args:
        buses: the site's Modbus buses by id.
        devices: the site's devices; those without a Modbus connection are skipped.
        device_ids: only these devices (all Modbus devices when None).

    Returns:
        The readings, grouped by device in the order given; a silent device's points are `stale`.

    Raises:
        ValueError: a selected id is not a Modbus device among `devices`.
    """
    modbus = [d for d in devices if d.spec.modbus is not None]
    if device_ids is not None:
        wanted = list(device_ids)
        known = {d.id for d in modbus}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise ValueError(f"not a Modbus device: {', '.join(unknown)}")
        modbus = [d for d in modbus if d.id in set(wanted)]
    by_bus: dict[str, list[Device]] = {}
    for device in modbus:
        assert device.spec.modbus is not None
        by_bus.setdefault(device.spec.modbus.bus, []).append(device)
    sink = _Discard()
    async with asyncio.TaskGroup() as group:
        tasks = {
            bus_id: group.create_task(
                ModbusBusDriver(buses[bus_id], devs, sink).read_once(),
                name=f"fgw[modbus:{bus_id}].once",
            )
            for bus_id, devs in by_bus.items()
        }
    by_device: dict[str, list[Reading]] = {}
    for task in tasks.values():
        for reading in task.result():
            by_device.setdefault(reading.device, []).append(reading)
    return [r for d in modbus for r in by_device.get(d.id, [])]


async def poll_site_once(site: Site, device_ids: Iterable[str] | None = None) -> list[Reading]:
    """`poll_once` for a loaded site."""
    return await poll_once(site.buses, site.devices.values(), device_ids)


class _Discard:
    """`read_once` returns its readings; nothing is streamed."""

    def readings(self, batch: Sequence[Reading]) -> None:
        pass

    def device_status(self, status: DeviceStatus) -> None:
        pass
