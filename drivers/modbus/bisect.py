"""Learning how to read a merged block that a device refused (exception 02/03): bisect, then re-join.

Real meters have holes in their register maps, and a merged read that spans one is refused as a
whole. `learn(block)` is a pure generator that asks for requests and is told whether each was
answered; it returns the plan to use from then on:

    plan = learn(block)
    request = next(plan)
    while True:
        try:
            request = plan.send(answered(request))
        except StopIteration as done:
            learned = done.value
            break

1. Split: a refused part is cut in two halves of its point *groups* (points sharing a register —
   the bits of a status word — stay together: reading one register twice is never cheaper), until
   each part is answered or is one refused group.
2. Re-join: neighbouring answered parts with no refused group between them are tried as one
   request; where the unused addresses between them are readable, they are read together again.

Result: the readable points are exactly those read, refused groups are isolated, and the learned
blocks are the fewest requests that cover the readable points without spanning an address the
device refuses (the property test checks both against the device's readable addresses).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

from config.models import ModbusPoint, Register
from drivers.modbus.plan import ReadBlock

Member = tuple[str, ModbusPoint]


@dataclass(frozen=True, slots=True)
class Learned:
    """What learning gave: blocks to read from now on, and refused groups (their points `bad`)."""

    blocks: tuple[ReadBlock, ...]
    refused: tuple[ReadBlock, ...]


def groups(block: ReadBlock) -> list[list[Member]]:
    """The block's points in runs that overlap (share at least one address), in address order."""
    runs: list[list[Member]] = []
    end = -1
    for name, point in block.points:
        start = point.address
        if runs and start < end:
            runs[-1].append((name, point))
            end = max(end, start + point.register_count)
        else:
            runs.append([(name, point)])
            end = start + point.register_count
    return runs


def block_of(table: Register, runs: Sequence[Sequence[Member]]) -> ReadBlock:
    """The smallest request covering these point groups."""
    members = [m for run in runs for m in run]
    start = min(p.address for _, p in members)
    end = max(p.address + p.register_count for _, p in members)
    return ReadBlock(table, start, end - start, tuple(members))


def learn(block: ReadBlock) -> Generator[ReadBlock, bool, Learned]:
    """Learn to read `block`, which the device refused as a whole (see the module's contract)."""
    outcome: list[tuple[bool, ReadBlock]] = []  # (answered, part) in address order
    todo: list[list[list[Member]]] = []
    whole = groups(block)
    if len(whole) == 1:
        return Learned((), (block,))
    half = len(whole) // 2
    todo = [whole[half:], whole[:half]]  # the first half is popped first: address order
    while todo:
        runs = todo.pop()
        part = block_of(block.table, runs)
        if (yield part):
            outcome.append((True, part))
        elif len(runs) == 1:
            outcome.append((False, part))
        else:
            half = len(runs) // 2
            todo.append(runs[half:])
            todo.append(runs[:half])
    joined: list[ReadBlock] = []
    refused: list[ReadBlock] = []
    joinable = False  # the last joined block is next to this part, nothing refused between
    for answered, part in outcome:
        if not answered:
            refused.append(part)
            joinable = False
            continue
        if joinable:
            trial = ReadBlock(
                part.table,
                joined[-1].address,
                part.end - joined[-1].address,
                joined[-1].points + part.points,
            )
            if (yield trial):
                joined[-1] = trial
                continue
        joined.append(part)
        joinable = True
    return Learned(tuple(joined), tuple(refused))
