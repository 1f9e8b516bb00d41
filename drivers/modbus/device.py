"""One device's poll: its read plan, its health and back-off, and the readings a poll yields.

`DevicePoller.poll` makes one pass over the device's read blocks through a `Link` and returns a
`PollOutcome`; scheduling lives in `drivers.modbus.poller`. Keeping a poll a single awaitable with no
loop of its own lets `fgw poll --once` and the service share it.

What counts as an answer: any response, including a Modbus exception response. A device that answers
"illegal data address" is alive — its communication is fine and its comm_loss alarm must not fire —
but the points of that request are `bad` and the answer counts as an error. Only silence (timeout,
refused or lost connection) on the first request of a poll is a failed poll; silence on a later
request of a poll that already got an answer makes that request's points `bad`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drivers.modbus.blockdecode import BlockDecoder, Undecodable
from drivers.modbus.health import DeviceHealth
from drivers.modbus.link import ErrorAnswer, Link, NoAnswer
from drivers.modbus.plan import ReadBlock, plan_reads
from gateway.backoff import Backoff
from gateway.config.models import ModbusBus, ModbusPoint
from gateway.model import Quality, Reading

if TYPE_CHECKING:
    from gateway.config.site import Device

log = logging.getLogger("drivers.modbus")

BACKOFF_CAP = 10.0
"""Longest wait between attempts at a failing device: a recovered device is seen within this."""


@dataclass(slots=True)
class PollOutcome:
    """What one poll of one device gave."""

    readings: list[Reading] = field(default_factory=list)
    failure: str | None = None  # set when the device did not answer at all
    errors: int = 0  # error answers within an answered poll
    duration: float = 0.0


class DevicePoller:
    """Everything the driver keeps about one Modbus device.

    Args:
        device: the resolved device (its Modbus points; MQTT points are ignored).
        bus: the device's bus (timeout default, `max_gap`).
        clock: monotonic clock, for the health timer.
        wall: wall clock, for reading timestamps.
    """

    def __init__(
        self,
        device: Device,
        bus: ModbusBus,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        spec = device.spec
        if spec.modbus is None:
            raise ValueError(f"device {spec.id} has no modbus connection")
        self.id = spec.id
        self.unit = spec.modbus.unit
        self.period = spec.poll
        self.timeout = spec.timeout if spec.timeout is not None else bus.timeout
        self.pause = spec.workarounds.pause_after
        self.points: dict[str, ModbusPoint] = {
            name: p for name, p in device.points.items() if isinstance(p, ModbusPoint)
        }
        self.blocks: list[ReadBlock] = plan_reads(self.points, spec.workarounds, bus.max_gap)
        # Each block's decoding and its log keys, worked out once rather than on every poll.
        self._plan: list[tuple[ReadBlock, BlockDecoder, str]] = [
            (b, BlockDecoder(b), f"block:{b.table}:{b.address}") for b in self.blocks
        ]
        self.clock = clock
        self.wall = wall
        self.health = DeviceHealth(spec.comm_loss_polls, spec.comm_loss_after, now=clock())
        self.backoff = Backoff(initial=self.period, cap=max(self.period, BACKOFF_CAP))
        self._complained: set[str] = set()  # problems logged once, until they go away

    async def poll(self, link: Link) -> PollOutcome:
        """Read every block once; never raises for anything the device or the wire does."""
        started = self.clock()
        outcome = PollOutcome()
        readings = outcome.readings
        answered = False
        read, unit, timeout, pause, wall = link.read, self.unit, self.timeout, self.pause, self.wall
        for block, decoder, key in self._plan:
            try:
                data = await read(block, unit, timeout, pause)
            except NoAnswer as exc:
                if not answered:
                    outcome.failure = str(exc)
                    break
                self._bad_block(block, outcome, f"no answer to a later request: {exc}")
                continue
            except ErrorAnswer as exc:
                answered = True
                self._bad_block(block, outcome, str(exc))
                continue
            answered = True
            failed = decoder.decode(data, self.id, wall(), readings)
            if self._complained or failed:
                self._sort_complaints(key, decoder, failed, outcome)
        outcome.duration = self.clock() - started
        if outcome.failure is not None:
            outcome.readings = []
        return outcome

    def _sort_complaints(
        self, key: str, decoder: BlockDecoder, failed: Sequence[Undecodable], outcome: PollOutcome
    ) -> None:
        """After an answered block: count and log its undecodable points, forget what went away.

        Only called when something was or is wrong, so that a healthy poll pays nothing for it.
        """
        self._settled(key)
        bad = {name for name, _ in failed}
        for name, raw in failed:
            outcome.errors += 1
            self._complain(f"point:{name}", "cannot decode %s from %s", name, raw)
        for name in decoder.names:
            if name not in bad:
                self._settled(f"point:{name}")

    def stale_readings(self) -> list[Reading]:
        """Every point as `stale`: what consumers get once when the device stops answering."""
        ts = self.wall()
        return [Reading(self.id, name, None, Quality.STALE, ts) for name in self.points]

    def _bad_block(self, block: ReadBlock, outcome: PollOutcome, why: str) -> None:
        outcome.errors += 1
        self._complain(f"block:{block.table}:{block.address}", "%s", why)
        ts = self.wall()
        outcome.readings.extend(
            Reading(self.id, name, None, Quality.BAD, ts) for name, _ in block.points
        )

    def _complain(self, key: str, message: str, *args: object) -> None:
        """Log a problem the first time it happens, not on every poll."""
        if key not in self._complained:
            self._complained.add(key)
            log.warning("%s: " + message, self.id, *args, extra={"device": self.id})

    def _settled(self, key: str) -> None:
        self._complained.discard(key)
