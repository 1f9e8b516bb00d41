"""Work mutes less, and not for long (PRODUCT §9): which alarms a ticket in progress may take out of
service, until when, and what the timeline says when the work overran. Pure code.

- Never muted by work: life-safety alarms (fire, entrapment, loss of supply…) and every
  `comm_loss` — a device that stops answering while someone works on it is exactly what the duty
  engineer must see.
- A preventive ticket mutes nothing unless its plan says `mutes: true`.
- A mute lasts until the ticket's resolution target or `tickets.mute_limit` after the work started,
  whichever is sooner; a ticket already past its target mutes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from rules.maintenance.calendar import iso
from rules.maintenance.tickets import Ticket, TimelineEntry

COMM_LOSS = "comm_loss"
WORK_OVERRAN = "work_overran"


class MutableAlarm(Protocol):
    """What the policy needs to know of an alarm (`rules.alarms.Alarm` has it)."""

    id: str
    device: str
    rule: str
    life_safety: bool
    out_of_service: bool


def may_mute(alarm: MutableAlarm) -> bool:
    """Whether work on its device may take this alarm out of service."""
    return not alarm.life_safety and alarm.rule != COMM_LOSS


def alarms_to_mute(alarms: Iterable[MutableAlarm], device: str) -> list[str]:
    """The ids, sorted, of the device's alarms that work may take out of service now."""
    return sorted(
        a.id for a in alarms if a.device == device and may_mute(a) and not a.out_of_service
    )


def mute_until(ticket: Ticket, now: float, limit: float) -> float | None:
    """When a mute that starts `now` ends: the sooner of the resolution target and `now + limit`;
    None when that is not in the future (the ticket is already late: nothing is muted)."""
    until = min(ticket.resolution_due, now + limit)
    return until if until > now else None


def overran_entry(
    ticket: Ticket, alarm_ids: Sequence[str], until: float, at: float
) -> TimelineEntry:
    """The timeline entry (and so the `P/events` ticket event) saying the work overran its mute."""
    return TimelineEntry(
        at=at,
        by="system",
        action=WORK_OVERRAN,
        from_status=str(ticket.status),
        to_status=str(ticket.status),
        note=(
            f"work on ticket #{ticket.id} ({ticket.title}) overran its mute (until {iso(until)}): "
            f"alarms back in service: {', '.join(alarm_ids)}"
        ),
        detail={"alarms": list(alarm_ids), "mute_until": iso(until), "ticket": ticket.id},
    )
