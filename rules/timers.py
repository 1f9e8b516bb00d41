"""On/off-delays across restarts: handed out as wall-clock start times for the store, taken back
after a restart.

A restored delay is not scheduled: the rule's first evaluation on fresh data fires it at once if
it has run out meanwhile (the downtime counts as if the condition had held) and drops it if the
condition no longer holds (docs/design/alarm-engine.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from rules.rulestate import PendingTimer, RuleState


def pending(rs: RuleState, wall_offset: float) -> PendingTimer | None:
    """The rule's delay in progress, with its start in wall-clock time (`wall - monotonic`)."""
    if rs.pending_since is not None:
        return PendingTimer("on", rs.pending_since + wall_offset)
    if rs.clear_since is not None:
        return PendingTimer("off", rs.clear_since + wall_offset)
    return None


def take_changes(dirty: dict[str, RuleState], wall_offset: float) -> dict[str, PendingTimer | None]:
    """The delays of the `dirty` rules (None for one that ended), by alarm id; `dirty` is emptied."""
    out: dict[str, PendingTimer | None] = {}
    for alarm_id, rs in dirty.items():
        out[alarm_id] = pending(rs, wall_offset)
    dirty.clear()
    return out


def in_progress(by_alarm: Mapping[str, RuleState], wall_offset: float) -> dict[str, PendingTimer]:
    """Every delay in progress, by alarm id."""
    out: dict[str, PendingTimer] = {}
    for alarm_id, rs in by_alarm.items():
        timer = pending(rs, wall_offset)
        if timer is not None:
            out[alarm_id] = timer
    return out


def restore(
    by_alarm: Mapping[str, RuleState], timers: Mapping[str, PendingTimer], now: float, wall: float
) -> None:
    """Take back delays in progress at `now` (monotonic), `wall` being the same instant.

    Unknown alarm ids, and delays that no longer fit the rule's restored state (an on-delay of a
    rule already active), are ignored.
    """
    for alarm_id, timer in timers.items():
        rs = by_alarm.get(alarm_id)
        if rs is None or rs.expr is None:
            continue
        delay = rs.rule.for_ if timer.kind == "on" else rs.rule.clear_for
        elapsed = min(max(wall - timer.started, 0.0), delay)
        if timer.kind == "on" and not rs.active:
            rs.pending_since = now - elapsed
            rs.idle = False
        elif timer.kind == "off" and rs.active:
            rs.clear_since = now - elapsed
            rs.idle = False
