"""Small shapes maintenance shares: service targets from the site file, keys, timeline entries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rules.maintenance.tickets import DEFAULT_TARGETS, Target, TimelineEntry

SYSTEM = "system"
"""Who did what the gateway did by itself (`by` of a timeline entry)."""


def targets_of(config: Any) -> dict[str, Target]:
    """Service targets per urgency: the site file's `tickets.targets` over the defaults."""
    targets = dict(DEFAULT_TARGETS)
    for urgency, target in config.items():
        base = DEFAULT_TARGETS[urgency]
        targets[urgency] = Target(
            respond=target.respond if target.respond is not None else base.respond,
            resolve=target.resolve if target.resolve is not None else base.resolve,
        )
    return targets


def plan_key(device: str, plan: str) -> str:
    """The origin key of a plan's tickets (one active ticket per key)."""
    return f"plan:{device}/{plan}"


def parse_ticket_id(value: int | str) -> int:
    """`12`, `"12"` or `"#12"`; raises KeyError for anything else (an unknown ticket)."""
    text = str(value).strip().lstrip("#")
    if not text.isdigit():
        raise KeyError(value)
    return int(text)


def alarms_entry(action: str, alarm_ids: Sequence[str], at: float, by: str) -> TimelineEntry:
    """`alarms_out_of_service` or `alarms_returned`, naming the alarms."""
    what = "out of service for the work" if action == "alarms_out_of_service" else "back in service"
    return TimelineEntry(
        at=at,
        by=by,
        action=action,
        note=f"alarms {what}: {', '.join(alarm_ids)}",
        detail={"alarms": list(alarm_ids)},
    )
