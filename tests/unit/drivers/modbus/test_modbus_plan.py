"""The read planner: every point covered once, limits kept, and no plan with fewer requests exists."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import ModbusPoint, Workarounds
from drivers.modbus.plan import BIT_TABLES, ReadBlock, plan_reads
from tests.support import examples


@st.composite
def modbus_points(
    draw: st.DrawFn, max_points: int = 12, max_address: int = 300
) -> dict[str, ModbusPoint]:
    points: dict[str, ModbusPoint] = {}
    for i in range(draw(st.integers(0, max_points))):
        table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
        address = draw(st.integers(0, max_address))
        if table in BIT_TABLES:
            p = ModbusPoint(register=table, address=address, type="bool")
        else:
            kind = draw(st.sampled_from(["uint16", "int32", "float64", "string", "bit"]))
            if kind == "string":
                p = ModbusPoint(
                    register=table, address=address, type="string", length=draw(st.integers(1, 20))
                )
            elif kind == "bit":
                p = ModbusPoint(
                    register=table, address=address, type="uint16", bit=draw(st.integers(0, 15))
                )
            else:
                p = ModbusPoint(register=table, address=address, type=kind)
        points[f"p{i}"] = p
    return points


def span(points: Sequence[ModbusPoint]) -> tuple[int, int]:
    return min(p.address for p in points), max(p.address + p.register_count for p in points)


def largest_gap(points: Sequence[ModbusPoint]) -> int:
    """The longest run of addresses inside the span that no point covers."""
    intervals = sorted((p.address, p.address + p.register_count) for p in points)
    gap, end = 0, intervals[0][1]
    for start, stop in intervals[1:]:
        gap = max(gap, start - end)
        end = max(end, stop)
    return gap


def valid_group(points: Sequence[ModbusPoint], limit: int, max_gap: int) -> bool:
    return fits_limit(points, limit) and largest_gap(points) <= max_gap


def fits_limit(points: Sequence[ModbusPoint], limit: int) -> bool:
    """Within the limit, or the span of one point longer than the limit (which cannot be split)."""
    start, end = span(points)
    return end - start <= limit or any(
        (p.address, p.address + p.register_count) == (start, end) for p in points
    )


def partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in partitions(rest):
        for i in range(len(smaller)):
            yield [*smaller[:i], [first, *smaller[i]], *smaller[i + 1 :]]
        yield [[first], *smaller]


def fewest_blocks(points: list[ModbusPoint], limit: int, max_gap: int) -> int:
    """Brute force over every way to group the points (small inputs only)."""
    return min(
        len(groups)
        for groups in partitions(list(range(len(points))))
        if all(valid_group([points[i] for i in g], limit, max_gap) for g in groups)
    )


WORKAROUNDS = st.builds(
    Workarounds,
    max_registers=st.sampled_from([125, 40, 8, 3]),
    max_bits=st.sampled_from([2000, 16, 4]),
    no_merge=st.booleans(),
)


@given(points=modbus_points(), workarounds=WORKAROUNDS, max_gap=st.integers(0, 30))
def test_every_point_in_exactly_one_fitting_block(
    points: dict[str, ModbusPoint], workarounds: Workarounds, max_gap: int
) -> None:
    blocks = plan_reads(points, workarounds, max_gap)
    served = [name for block in blocks for name, _ in block.points]
    assert sorted(served) == sorted(points)
    for block in blocks:
        members = [p for _, p in block.points]
        assert all(p.table == block.table for p in members)
        assert (block.address, block.end) == span(
            members
        )  # no register read for nothing at the ends
        limit = workarounds.max_bits if block.is_bits else workarounds.max_registers
        assert fits_limit(members, limit)
        assert largest_gap(members) <= max_gap
        if workarounds.no_merge:
            assert len({(p.address, p.register_count) for p in members}) == 1


@settings(max_examples=examples(300))
@given(
    points=modbus_points(max_points=7, max_address=40),
    limit=st.integers(1, 12),
    max_gap=st.integers(0, 6),
)
def test_block_count_is_minimal(points: dict[str, ModbusPoint], limit: int, max_gap: int) -> None:
    workarounds = Workarounds(max_registers=limit, max_bits=limit)
    blocks = plan_reads(points, workarounds, max_gap)
    by_table: dict[str, list[ModbusPoint]] = {}
    for p in points.values():
        by_table.setdefault(p.table, []).append(p)
    for table, members in by_table.items():
        planned = sum(1 for b in blocks if b.table == table)
        assert planned == fewest_blocks(members, limit, max_gap), table


@given(points=modbus_points(), max_gap=st.integers(0, 30))
def test_slice_gives_each_point_its_own_words(points: dict[str, ModbusPoint], max_gap: int) -> None:
    for block in plan_reads(points, Workarounds(), max_gap):
        response = list(range(block.address, block.end)) + [-1] * 7  # bit responses are padded
        for name, p, raw in block.slice(response):
            assert points[name] is p
            assert list(raw) == list(range(p.address, p.address + p.register_count))


def test_status_word_bits_and_neighbours_share_one_request() -> None:
    points = {
        "running": ModbusPoint(register="holding", address=10, type="uint16", bit=0),
        "fault": ModbusPoint(register="holding", address=10, type="uint16", bit=1),
        "pressure": ModbusPoint(register="holding", address=11, type="float32"),
        "far": ModbusPoint(register="holding", address=40, type="uint16"),
        "zones": ModbusPoint(register="input", address=0, type="uint16"),
        "fire": ModbusPoint(register="discrete", address=0, type="bool"),
        "fault_in": ModbusPoint(register="discrete", address=5, type="bool"),
    }
    blocks = plan_reads(points, Workarounds(), max_gap=16)
    assert [(b.table, b.address, b.count) for b in blocks] == [
        ("holding", 10, 3),
        ("holding", 40, 1),
        ("input", 0, 1),
        ("discrete", 0, 6),
    ]
    assert sorted(n for n, _ in blocks[0].points) == ["fault", "pressure", "running"]
    merged_far = plan_reads(points, Workarounds(), max_gap=30)
    assert [(b.address, b.count) for b in merged_far if b.table == "holding"] == [(10, 31)]


def test_size_limit_and_no_merge() -> None:
    points = {
        f"r{i}": ModbusPoint(register="holding", address=i, type="uint16") for i in range(300)
    }
    assert [(b.address, b.count) for b in plan_reads(points, Workarounds(), 0)] == [
        (0, 125), (125, 125), (250, 50)
    ]  # fmt: skip
    small = plan_reads(points, Workarounds(max_registers=100), 0)
    assert [b.count for b in small] == [100, 100, 100]
    assert len(plan_reads(points, Workarounds(no_merge=True), 16)) == 300


def test_long_string_beyond_a_small_limit_gets_its_own_request() -> None:
    points = {
        "name": ModbusPoint(register="holding", address=0, type="string", length=10),
        "x": ModbusPoint(register="holding", address=10, type="uint16"),
    }
    blocks: list[ReadBlock] = plan_reads(points, Workarounds(max_registers=4), 16)
    assert [(b.address, b.count) for b in blocks] == [(0, 10), (10, 1)]


def test_empty_device_needs_no_request() -> None:
    assert plan_reads({}, Workarounds(), 16) == []
