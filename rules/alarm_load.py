"""The alarm-load figures of EEMUA 191 / ISA-18.2, computed from the alarm journal. Pure code.

What an alarm-system owner looks at once a week: how many alarms an operator got per 10 minutes
(average and peak; EEMUA 191 aims for about one, and calls more than 10 a flood), how long the site
spent in flood, which alarms are the most frequent (the top ten usually make most of the load),
which chatter, and which stand (active for more than 24 h: an alarm nobody acts on is noise).

An *activation* is an alarm announced to the operator: a new episode reaching `active_unack` (the
same rule as the live flood detector, `rules.floods.Activations`). Floods and chattering are found
by replaying the activations through the same detectors the gateway runs live, so the report and
the `P/events` flood messages agree.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.floods import Activations, ChatterSettings, FloodDetector, FloodSettings

INTERVAL = 600.0
"""EEMUA 191 counts alarms per 10 minutes."""

STANDING_AFTER = 24 * 3600.0
ACTIVE = ("active_unack", "active_ack")
DEFAULT_CHATTER = ChatterSettings()
DEFAULT_FLOOD = FloodSettings()


@dataclass(frozen=True, slots=True)
class Row:
    """What the report needs of one journal row."""

    alarm_id: str
    episode: int
    from_state: str
    to_state: str
    at: float
    priority: str = ""
    chattering: bool = False  # the event said the alarm was flagged chattering


@dataclass(frozen=True, slots=True)
class Ranked:
    alarm_id: str
    priority: str
    count: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FloodSpan:
    started: float
    ended: float
    first_out: str
    alarms: int


@dataclass(slots=True)
class AlarmLoad:
    since: float
    until: float
    activations: int = 0
    intervals: int = 0
    average_per_interval: float = 0.0
    peak_per_interval: int = 0
    peak_at: float | None = None
    intervals_over: int = 0  # 10-minute intervals with more than the flood threshold
    floods: list[FloodSpan] = field(default_factory=list)
    time_in_flood: float = 0.0
    top: list[Ranked] = field(default_factory=list)
    chattering: list[Ranked] = field(default_factory=list)
    standing: list[Ranked] = field(default_factory=list)
    buckets: dict[float, int] = field(default_factory=dict)  # interval start -> activations

    @property
    def percent_in_flood(self) -> float:
        span = self.until - self.since
        return 100.0 * self.time_in_flood / span if span > 0 else 0.0


def epoch(iso: str) -> float:
    """`2026-11-01T08:00:00.000Z` -> epoch seconds."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def compute(
    rows: Iterable[Row],
    alarms: Sequence[Mapping[str, Any]],
    *,
    since: float,
    until: float,
    announced_before: Mapping[str, int] | None = None,
    chatter: ChatterSettings = DEFAULT_CHATTER,
    flood: FloodSettings = DEFAULT_FLOOD,
) -> AlarmLoad:
    """The alarm load between `since` and `until` (epoch seconds).

    Args:
        rows: journal rows from `since` on, oldest first.
        alarms: the current alarm records (`Alarm.record()`), for standing alarms.
        announced_before: alarm id -> the last episode announced before `since`, so that an
            episode raised before the period and announced again (after a shelve) is not counted.
        chatter, flood: the site's thresholds.
    """
    load = AlarmLoad(since=since, until=until)
    tracker = Activations(dict(announced_before or {}))
    times: list[tuple[float, str]] = []
    priorities: dict[str, str] = {}
    flagged: set[str] = set()
    for row in rows:
        if not since <= row.at <= until:
            continue
        if row.priority:
            priorities[row.alarm_id] = row.priority
        if row.chattering:
            flagged.add(row.alarm_id)
        if row.from_state != row.to_state and tracker.is_new(
            row.alarm_id, row.to_state, row.episode
        ):
            times.append((row.at, row.alarm_id))
    times.sort()
    load.activations = len(times)
    load.intervals = max(1, math.ceil((until - since) / INTERVAL))
    load.average_per_interval = load.activations / load.intervals
    buckets: Counter[float] = Counter(math.floor(t / INTERVAL) * INTERVAL for t, _ in times)
    load.buckets = dict(sorted(buckets.items()))
    if buckets:
        peak_at, peak = max(buckets.items(), key=lambda kv: (kv[1], -kv[0]))
        load.peak_per_interval, load.peak_at = peak, peak_at
    load.intervals_over = sum(1 for n in buckets.values() if n > flood.alarms)
    load.floods = _floods(times, flood, until)
    load.time_in_flood = sum(f.ended - f.started for f in load.floods)

    counts = Counter(alarm_id for _, alarm_id in times)
    for alarm in alarms:
        priorities.setdefault(str(alarm.get("id")), str(alarm.get("priority", "")))
    load.top = [
        Ranked(a, priorities.get(a, ""), n, f"{100.0 * n / load.activations:.1f}%")
        for a, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    ]
    load.chattering = _chattering(times, chatter, flagged, priorities)
    load.standing = _standing(alarms, until)
    return load


def _floods(
    times: Sequence[tuple[float, str]], settings: FloodSettings, until: float
) -> list[FloodSpan]:
    """Replay activations through the live detector, ending floods at the exact window expiry."""
    detector = FloodDetector(settings)
    spans: list[FloodSpan] = []
    recent: deque[float] = deque()

    def expire(upto: float) -> None:
        while recent and recent[0] + settings.window <= upto:
            at = recent.popleft() + settings.window
            for state, f in detector.tick(at, at):
                if state == "ended":
                    spans.append(FloodSpan(f.started, at, f.first_out, len(f.alarms)))

    for t, alarm_id in times:
        expire(t)
        recent.append(t)
        detector.observe(alarm_id, t, t)
    expire(until)
    f = detector.current
    if f is not None:
        spans.append(FloodSpan(f.started, until, f.first_out, len(f.alarms)))
    return spans


def _chattering(
    times: Sequence[tuple[float, str]],
    settings: ChatterSettings,
    flagged: set[str],
    priorities: Mapping[str, str],
) -> list[Ranked]:
    by_alarm: dict[str, list[float]] = {}
    for t, alarm_id in times:
        by_alarm.setdefault(alarm_id, []).append(t)
    out: list[Ranked] = []
    for alarm_id in sorted(set(by_alarm) | flagged):
        ts = by_alarm.get(alarm_id, [])
        most, left = 0, 0
        for right, t in enumerate(ts):
            while ts[left] <= t - settings.window:
                left += 1
            most = max(most, right - left + 1)
        if most > settings.activations or alarm_id in flagged:
            detail = f"max {most} within {settings.window:g}s"
            out.append(Ranked(alarm_id, priorities.get(alarm_id, ""), len(ts), detail))
    out.sort(key=lambda r: (-r.count, r.alarm_id))
    return out


def _standing(alarms: Sequence[Mapping[str, Any]], until: float) -> list[Ranked]:
    out: list[tuple[float, Ranked]] = []
    for alarm in alarms:
        raised = alarm.get("raised_at")
        active = alarm.get("state") in ACTIVE or (
            alarm.get("condition_active") and alarm.get("state") not in ("normal", "rtn_unack")
        )
        if not active or raised is None or until - float(raised) <= STANDING_AFTER:
            continue
        hours = (until - float(raised)) / 3600.0
        ranked = Ranked(
            str(alarm.get("id")),
            str(alarm.get("priority", "")),
            int(alarm.get("episode", 0)),
            f"{hours:.1f}h {alarm.get('state')}",
        )
        out.append((-hours, ranked))
    out.sort(key=lambda pair: (pair[0], pair[1].alarm_id))
    return [ranked for _, ranked in out]
