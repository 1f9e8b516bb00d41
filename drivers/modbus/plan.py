"""Merging a device's points into as few Modbus read requests as the protocol allows.

Pure code: `plan_reads` runs once per device at start-up, and the poller replays its `ReadBlock`s on
every poll. Each request costs a round trip (and on RS-485, bus time shared with every other device),
so adjacent points — and points separated by a few unused addresses — are read together.

Rules:
- one request reads one table: holding or input registers, coils or discrete inputs;
- at most `workarounds.max_registers` registers (≤125) or `workarounds.max_bits` bits (≤2000);
- points are merged across at most `max_gap` unused addresses (reading a few unused registers is
  cheaper than another round trip, but some devices reject reads of unmapped addresses);
- points on the same register (bits of a status word) share it;
- `workarounds.no_merge`: one request per point, for devices that reject merged reads (points that
  occupy exactly the same addresses still share their request — it is the same request).
A single point longer than the limit (a string on a device with a small `max_registers`) gets a request
of its own (shared only with points inside it): a point cannot be split across requests.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from config.models import ModbusPoint, Register, Workarounds

TABLES: tuple[Register, ...] = ("holding", "input", "coil", "discrete")
BIT_TABLES = frozenset({"coil", "discrete"})


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request and the points it serves.

    Attributes:
        table: which Modbus table (and so which function code) is read.
        address: first address (0-based, as on the wire).
        count: registers or bits requested.
        points: `(name, point)` pairs served by this request, in address order.
    """

    table: Register
    address: int
    count: int
    points: tuple[tuple[str, ModbusPoint], ...]

    @property
    def is_bits(self) -> bool:
        return self.table in BIT_TABLES

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.address + self.count

    def slice(
        self, data: Sequence[int] | Sequence[bool]
    ) -> Iterator[tuple[str, ModbusPoint, Sequence[int] | Sequence[bool]]]:
        """Each point's words (or bit) out of this block's response.

        `data` may be longer than `count` (bit responses are padded to whole bytes); a short
        response gives the points past its end an empty or short slice, which decoding turns into a
        `bad` reading rather than an exception.
        """
        for name, point in self.points:
            start = point.address - self.address
            yield name, point, data[start : start + point.register_count]


def plan_reads(
    points: Mapping[str, ModbusPoint], workarounds: Workarounds, max_gap: int
) -> list[ReadBlock]:
    """Group a device's points into read requests, fewest first-fit blocks per table.

    Greedy in address order (the longest point first at equal addresses): a block grows while the
    next point lies inside it, or keeps it within the size limit and starts at most `max_gap` unused
    addresses after its end. Greedy is minimal here — the first block must hold the lowest point,
    and taking every point that fits leaves the fewest for the rest; the property test checks this
    against a brute-force search.

    Args:
        points: the device's Modbus points by name.
        workarounds: the device's quirks (size limits, `no_merge`).
        max_gap: unused addresses a block may span between two points (the bus's `max_gap`).

    Returns:
        Blocks ordered by table (holding, input, coil, discrete) and address.
    """
    blocks: list[ReadBlock] = []
    for table in TABLES:
        members = sorted(
            ((name, p) for name, p in points.items() if p.table == table),
            key=lambda item: (item[1].address, -item[1].register_count, item[0]),
        )
        limit = workarounds.max_bits if table in BIT_TABLES else workarounds.max_registers
        blocks.extend(_blocks_of_table(table, members, limit, max_gap, workarounds.no_merge))
    return blocks


def _blocks_of_table(
    table: Register,
    members: list[tuple[str, ModbusPoint]],
    limit: int,
    max_gap: int,
    no_merge: bool,
) -> Iterator[ReadBlock]:
    current: list[tuple[str, ModbusPoint]] = []
    start = end = 0
    for name, point in members:
        p_start, p_end = point.address, point.address + point.register_count
        if current and _fits(start, end, p_start, p_end, limit, max_gap, no_merge):
            current.append((name, point))
            end = max(end, p_end)
            continue
        if current:
            yield ReadBlock(table, start, end - start, tuple(current))
        current, start, end = [(name, point)], p_start, p_end
    if current:
        yield ReadBlock(table, start, end - start, tuple(current))


def _fits(
    start: int, end: int, p_start: int, p_end: int, limit: int, max_gap: int, no_merge: bool
) -> bool:
    """Can the block [start, end) take the point [p_start, p_end) (p_start >= start)?"""
    if no_merge:
        return (p_start, p_end) == (start, end)
    if p_end <= end:  # inside the block already (perhaps one point longer than the limit)
        return True
    return p_start - end <= max_gap and p_end - start <= limit
