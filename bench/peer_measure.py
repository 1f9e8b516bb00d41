"""Figures from what the uplink counted: poll rates, jitter, and a process tree's CPU and memory.

Pure functions over `Delivered` and /proc, so the scenarios in `bench.peers` stay short.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

from bench.peer_uplink import Delivered
from bench.support import cpu_seconds, median, percentile, rss_mb


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (the peer may start helpers; count them too)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            total += cpu_seconds(p)
        except (OSError, IndexError):
            pass
    return total


def tree_rss(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            total += rss_mb(p)
        except OSError:
            pass
    return total


def polls_in(data: Delivered, start: float, end: float) -> dict[str, list[float]]:
    """Each device's distinct poll times within [start, end), sorted."""
    return {d: sorted({t for t in ts if start <= t < end}) for d, ts in data.polls.items()}


def rates(polls: dict[str, list[float]], devices: Iterable[str], window: float) -> list[float]:
    """Polls per second of each device in `devices` (0 for one that delivered nothing)."""
    return [len(polls.get(d, [])) / window for d in devices]


def jitter_ms(polls: dict[str, list[float]], period: float) -> tuple[float, float, int]:
    """p50 and p99 of |interval - period| between a device's consecutive polls, in ms, and how
    many intervals were longer than 1.5 periods (a missed poll)."""
    deviations, missed = [], 0
    for times in polls.values():
        for a, b in pairwise(times):
            deviations.append(abs(b - a - period) * 1000)
            missed += b - a > 1.5 * period
    return percentile(deviations, 0.5), percentile(deviations, 0.99), missed


def ratio(a: float | None, b: float | None) -> float:
    """a / b, NaN where either is missing or b is 0 (a tiny window can count no CPU tick)."""
    if a is None or b is None or b == 0:
        return float("nan")
    return a / b


def summary(values: Sequence[float]) -> str:
    if not values:
        return "none"
    return f"median {median(values):.3f}, min {min(values):.3f}"
