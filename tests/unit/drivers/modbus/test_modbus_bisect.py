"""The bisecting planner (`drivers.modbus.bisect.learn`) against devices with arbitrary holes.

A device here is its set of readable addresses: a request is answered iff every address it spans is
readable. After learning, the points read are exactly the readable ones (point groups judged as a
whole), every learned request is answered, and there are as few of them as can cover the readable
points without spanning an unreadable address.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import ModbusPoint, Workarounds
from drivers.modbus.bisect import Learned, groups, learn
from drivers.modbus.plan import ReadBlock, plan_reads
from tests.support import examples


def run(block: ReadBlock, readable: frozenset[int]) -> tuple[Learned, int]:
    """Drive `learn` against the device; return what it learned and how many requests it made."""

    def answered(request: ReadBlock) -> bool:
        return all(a in readable for a in range(request.address, request.end))

    plan = learn(block)
    requests = 0
    try:
        request = next(plan)
        while True:
            requests += 1
            request = plan.send(answered(request))
    except StopIteration as done:
        return done.value, requests


def fewest(block: ReadBlock, readable: frozenset[int]) -> int:
    """Runs of readable groups with every address between them readable: the least requests."""
    runs, previous_end = 0, None
    for run_ in groups(block):
        start = min(p.address for _, p in run_)
        end = max(p.address + p.register_count for _, p in run_)
        if not all(a in readable for a in range(start, end)):
            previous_end = None
            continue
        if previous_end is None or not all(a in readable for a in range(previous_end, start)):
            runs += 1
        previous_end = end
    return runs


points_strategy = st.dictionaries(
    st.from_regex(r"p[0-9]{1,3}", fullmatch=True),
    st.tuples(st.integers(0, 60), st.sampled_from(["uint16", "uint32", "float64"])),
    min_size=2,
    max_size=14,
)


@settings(max_examples=examples(300), deadline=None)
@given(points_strategy, st.sets(st.integers(0, 70), max_size=12))
def test_learned_plan_reads_exactly_the_readable_points_in_the_fewest_requests(
    spec: dict[str, tuple[int, str]], holes: set[int]
) -> None:
    points = {
        name: ModbusPoint(register="holding", address=address, type=kind)  # type: ignore[arg-type]
        for name, (address, kind) in spec.items()
    }
    readable = frozenset(range(0, 80)) - holes
    for block in plan_reads(points, Workarounds(), max_gap=8):
        whole_answered = all(a in readable for a in range(block.address, block.end))
        if whole_answered:
            continue  # the poller bisects only a refused block
        learned, requests = run(block, readable)
        read = {name for b in learned.blocks for name, _ in b.points}
        refused = {name for b in learned.refused for name, _ in b.points}
        expected_readable = {
            name
            for run_ in groups(block)
            if all(
                a in readable
                for _, p in run_
                for a in range(p.address, p.address + p.register_count)
            )
            for name, _ in run_
        }
        assert read == expected_readable
        assert refused == {name for name, _ in block.points} - expected_readable
        assert not read & refused
        for b in learned.blocks:
            assert all(a in readable for a in range(b.address, b.end)), "a learned read is refused"
        assert len(learned.blocks) == fewest(block, readable)
        assert [b.address for b in learned.blocks] == sorted(b.address for b in learned.blocks)
        n = len(groups(block))
        assert requests <= 3 * n, "bisecting costs a bounded number of requests, once"


def test_a_single_refused_group_is_not_split() -> None:
    point = ModbusPoint(register="holding", address=3, type="uint32")
    block = ReadBlock("holding", 3, 2, (("x", point),))
    learned, requests = run(block, frozenset({3}))
    assert learned == Learned((), (block,)) and requests == 0
