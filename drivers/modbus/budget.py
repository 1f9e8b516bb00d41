"""The time budget of a serial line: does a bus's configured polling fit it? Pure.

A request on an RS-485 line (directly, or behind a converter) costs line time, whatever the gateway
does (11 bits a character: start, 8 data, parity or a second stop, stop):

    transaction = (request bytes + answer bytes) × 11 / baud + turnaround + 2 × 3.5 characters

(3.5 characters of silence end the request and end the answer.) The **budget**: every second, the
live units' polls (the sum over devices of their requests' transactions divided by their poll
period) plus one dead unit's attempts (its timeout once per back-off cap, `BACKOFF_CAP`, the steady
state of a unit that stays dead) must fit in that second, with `HEADROOM` to spare. `fgw check`
warns for a bus that does not fit (`budget_warnings`). A `tcp` bus has a line only if it states its
`baudrate` (a Modbus TCP converter in front of RS-485); a plain Ethernet device has no such limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.models import ModbusBus, ModbusPoint
from drivers.modbus.frames import FUNCTION_OF_TABLE, answer_bytes
from drivers.modbus.plan import plan_reads

if TYPE_CHECKING:
    from config.site import Device, Site

BITS_PER_CHAR = 11
REQUEST_BYTES = 8
"""An RTU read request: unit, function, address, count, CRC (MBAP converters send the same RTU
frame on their line)."""
TURNAROUND = 0.005
"""A typical unit's time to start answering, when the budget does not know better."""
HEADROOM = 0.9
"""The share of the line a configuration may plan to use; the rest absorbs jitter and retries."""
DEAD_ATTEMPT_EVERY = 10.0
"""Seconds between a dead unit's attempts in steady state (the poller's back-off cap)."""


def transaction_time(
    request_bytes: int, answer_bytes_: int, baudrate: int, turnaround: float = TURNAROUND
) -> float:
    """Seconds one request and its answer hold the line (see the module's formula)."""
    char = BITS_PER_CHAR / baudrate
    return (request_bytes + answer_bytes_) * char + turnaround + 2 * 3.5 * char


@dataclass(frozen=True, slots=True)
class LineLoad:
    """What a bus's configuration asks of its line, per second of line time."""

    bus: str
    baudrate: int
    devices: int
    requests_per_second: float
    live: float  # seconds of line time per second for the live units' polls
    dead: float  # seconds per second for one dead unit's attempts

    @property
    def total(self) -> float:
        return self.live + self.dead

    @property
    def fits(self) -> bool:
        return self.total <= HEADROOM


def device_line_time(points: dict[str, ModbusPoint], device: Device, bus: ModbusBus) -> float:
    """Seconds of line time one poll of the device takes (every request answered)."""
    blocks = plan_reads(points, device.spec.workarounds, bus.max_gap)
    return sum(
        transaction_time(
            REQUEST_BYTES,
            3 + answer_bytes(FUNCTION_OF_TABLE[b.table], b.count),
            bus.line_baudrate or bus.baudrate,
        )
        for b in blocks
    )


def line_load(bus: ModbusBus, devices: Iterable[Device]) -> LineLoad | None:
    """The load of a bus with a serial line, or None (a tcp bus without a stated baudrate)."""
    baud = bus.line_baudrate
    if baud is None:
        return None
    live = requests = 0.0
    longest_timeout = 0.0
    count = 0
    for device in devices:
        points = {n: p for n, p in device.points.items() if isinstance(p, ModbusPoint)}
        period = device.spec.poll
        live += device_line_time(points, device, bus) / period
        requests += len(plan_reads(points, device.spec.workarounds, bus.max_gap)) / period
        timeout = device.spec.timeout if device.spec.timeout is not None else bus.timeout
        longest_timeout = max(longest_timeout, timeout)
        count += 1
    dead = longest_timeout / DEAD_ATTEMPT_EVERY if count > 1 else 0.0
    return LineLoad(bus.id, baud, count, requests, live, dead)


def budget_warnings(site: Site) -> list[tuple[tuple[str | int, ...], str]]:
    """`(location, message)` for each bus whose configured load cannot fit its line."""
    index = {bus.id: i for i, bus in enumerate(site.file.modbus)}
    warnings: list[tuple[tuple[str | int, ...], str]] = []
    for bus_id, bus in site.buses.items():
        devices = [
            d
            for d in site.devices.values()
            if d.spec.modbus is not None and d.spec.modbus.bus == bus_id
        ]
        load = line_load(bus, devices)
        if load is None or load.fits:
            continue
        warnings.append(
            (
                ("modbus", index.get(bus_id, 0), "baudrate"),
                f"bus {bus_id}: {load.devices} devices need {load.live:.2f} s of line time a second"
                f" at {load.baudrate} baud ({load.requests_per_second:.0f} requests a second)"
                f" plus {load.dead:.2f} s for a dead unit's attempts: more than"
                f" {HEADROOM:.0%} of the line; poll less often, read fewer registers, raise the"
                " baud rate or split the line",
            )
        )
    return warnings
