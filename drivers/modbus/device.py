"""One device's poll: its read plan, its health and back-off, and the readings a poll yields.

`DevicePoller.poll` makes one pass over the device's read blocks through a `Link` and returns a
`PollOutcome`; scheduling lives in `drivers.modbus.poller`. Keeping a poll a single awaitable with no
loop of its own lets `fgw poll --once` and the service share it.

What counts as an answer: any response, including a Modbus exception response. A device that answers
"illegal data address" is alive — its communication is fine and its comm_loss alarm must not fire —
but the points of that request are `bad` and the answer counts as an error. Only silence (timeout,
refused or lost connection) on the first request of a poll is a failed poll; silence on a later
request of a poll that already got an answer makes that request's points `bad`.

Exception answers, as the hardware means them (PRODUCT §10):
- 02/03 on a merged read: the block spans addresses the device refuses. It is bisected
  (`drivers.modbus.bisect`) until the refused point groups are isolated; the learned blocks replace
  it for later polls, the refused groups' points are `bad` without a request (asked again every
  `REPROBE` seconds, in case the device's map changes), and the split is logged once.
- 06 (busy): that request is asked once more after `workarounds.pause_after`, or `BUSY_PAUSE`.
- 0A/0B arrive as silence (`NoAnswer`, see `drivers.modbus.link`): that unit's comm_loss only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config.models import ModbusBus, ModbusPoint
from drivers.modbus.bisect import groups, learn
from drivers.modbus.blockdecode import BlockDecoder, Undecodable
from drivers.modbus.connection import NoAnswer
from drivers.modbus.frames import BUSY, ILLEGAL_ADDRESS, ILLEGAL_VALUE
from drivers.modbus.health import DeviceHealth
from drivers.modbus.link import ErrorAnswer, Held, Link
from drivers.modbus.plan import ReadBlock, plan_reads
from ground.backoff import Backoff
from ground.model import Quality, Reading

if TYPE_CHECKING:
    from config.site import Device

log = logging.getLogger("drivers.modbus")

BACKOFF_CAP = 10.0
"""Longest wait between attempts at a failing device: a recovered device is seen within this."""

BUSY_PAUSE = 0.1
"""Wait before asking a busy device (exception 06) again, unless its `pause_after` says otherwise."""

REPROBE = 300.0
"""Seconds between attempts at point groups a device refused (exception 02/03)."""

PlanEntry = tuple[ReadBlock, BlockDecoder, str]


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
        self._plan: list[PlanEntry] = [_entry(b) for b in self.blocks]
        self.refused: list[tuple[ReadBlock, float]] = []  # groups refused, when to ask again
        self.clock = clock
        self.wall = wall
        self.health = DeviceHealth(spec.comm_loss_polls, spec.comm_loss_after, now=clock())
        self.backoff = Backoff(initial=self.period, cap=max(self.period, BACKOFF_CAP))
        self._complained: set[str] = set()  # problems logged once, until they go away

    async def poll(self, link: Link) -> PollOutcome:
        """Read every block once; never raises for anything the device or the wire does.

        The device holds one of the endpoint's connections for the whole poll (`Link.hold`).
        """
        async with link.hold() as held:
            return await self._poll(held)

    async def _poll(self, link: Held) -> PollOutcome:
        started = self.clock()
        outcome = PollOutcome()
        readings = outcome.readings
        answered = False
        replaced: dict[int, list[PlanEntry]] = {}
        read, unit, timeout, pause, wall = link.read, self.unit, self.timeout, self.pause, self.wall
        for index, (block, decoder, key) in enumerate(self._plan):
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
                learned = await self._refused(link, block, exc, outcome)
                if learned is not None:
                    replaced[index] = learned
                continue
            answered = True
            failed = decoder.decode(data, self.id, wall(), readings)
            if self._complained or failed:
                self._sort_complaints(key, decoder, failed, outcome)
        if self.refused and outcome.failure is None:
            await self._refused_groups(link, outcome)
        if replaced:
            plan = []
            for index, entry in enumerate(self._plan):
                plan.extend(replaced.get(index, [entry]))
            self._plan = plan
            self.blocks = [entry[0] for entry in plan]
        outcome.duration = self.clock() - started
        if outcome.failure is not None:
            outcome.readings = []
        return outcome

    async def _refused(
        self, link: Held, block: ReadBlock, exc: ErrorAnswer, outcome: PollOutcome
    ) -> list[PlanEntry] | None:
        """A block answered with an exception: retry once if busy, bisect if refused.

        Returns the plan entries that replace the block from now on, or None to keep it.
        """
        if exc.code == BUSY:
            await asyncio.sleep(self.pause or BUSY_PAUSE)
            try:
                data = await link.read(block, self.unit, self.timeout, self.pause)
            except (NoAnswer, ErrorAnswer) as again:
                self._bad_block(block, outcome, f"busy, and again: {again}")
                return None
            entry = _entry(block)
            failed = entry[1].decode(data, self.id, self.wall(), outcome.readings)
            if self._complained or failed:
                self._sort_complaints(entry[2], entry[1], failed, outcome)
            return None
        if exc.code not in (ILLEGAL_ADDRESS, ILLEGAL_VALUE) or len(groups(block)) < 2:
            self._bad_block(block, outcome, str(exc))
            return None
        return await self._bisect(link, block, exc, outcome)

    async def _bisect(
        self, link: Held, block: ReadBlock, exc: ErrorAnswer, outcome: PollOutcome
    ) -> list[PlanEntry] | None:
        """Learn which parts of a refused merged block the device answers (`bisect.learn`)."""
        plan = learn(block)
        parts: dict[tuple[int, int], list[int] | list[bool]] = {}  # (address, count)
        try:
            request = next(plan)
            while True:
                try:
                    data = await link.read(request, self.unit, self.timeout, self.pause)
                except ErrorAnswer:
                    request = plan.send(False)
                    continue
                parts[request.address, request.count] = data
                request = plan.send(True)
        except StopIteration as done:
            learned = done.value
        except NoAnswer as silent:
            self._bad_block(block, outcome, f"no answer while splitting a refused read: {silent}")
            return None
        entries = [_entry(b) for b in learned.blocks]
        ts = self.wall()
        for entry in entries:  # each learned block was answered (a part, or a re-joined trial)
            failed = entry[1].decode(
                parts[entry[0].address, entry[0].count], self.id, ts, outcome.readings
            )
            if failed:
                self._sort_complaints(entry[2], entry[1], failed, outcome)
        due = self.clock() + REPROBE
        for group in learned.refused:
            self.refused.append((group, due))
            self._bad_points(group, outcome, ts)
        log.warning(
            "%s: %s; %s read as %s; refused (points bad): %s",
            self.id,
            exc,
            _span(block),
            ", ".join(_span(b) for b in learned.blocks) or "nothing",
            ", ".join(f"{_span(b)} ({', '.join(n for n, _ in b.points)})" for b in learned.refused),
            extra={"device": self.id},
        )
        return entries

    async def _refused_groups(self, link: Held, outcome: PollOutcome) -> None:
        """Points of refused groups are `bad` without a request, except when a group is due again."""
        now, ts, still = self.clock(), self.wall(), []
        for group, due in self.refused:
            if now >= due:
                try:
                    data = await link.read(group, self.unit, self.timeout, self.pause)
                except (NoAnswer, ErrorAnswer):
                    still.append((group, now + REPROBE))
                else:
                    entry = _entry(group)
                    self._plan.append(entry)
                    self.blocks.append(group)
                    entry[1].decode(data, self.id, ts, outcome.readings)
                    log.info("%s: %s answers again", self.id, _span(group))
                    continue
            else:
                still.append((group, due))
            self._bad_points(group, outcome, ts)
        self.refused = still

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

    def _bad_points(self, block: ReadBlock, outcome: PollOutcome, ts: float) -> None:
        outcome.errors += 1
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


def _entry(block: ReadBlock) -> PlanEntry:
    """A block with its decoder and log key, worked out once rather than on every poll."""
    return block, BlockDecoder(block), f"block:{block.table}:{block.address}"


def _span(block: ReadBlock) -> str:
    """`holding 10..19` — a block's table and inclusive address range, for log lines."""
    return f"{block.table} {block.address}..{block.end - 1}"
