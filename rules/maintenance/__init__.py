"""Maintenance as pure code: plan scheduling, meters, the ticket lifecycle and the monthly report.

No I/O and no clocks of their own: callers pass epoch seconds and the site's `ZoneInfo`, which is
what lets tests walk through month ends, leap days and DST nights in microseconds.
"""

from rules.maintenance.tickets import (
    ACTIVE,
    URGENCIES,
    ServiceTargets,
    Target,
    Ticket,
    TicketStatus,
    TicketTransitionRefused,
    TimelineEntry,
    new_ticket,
)

__all__ = [
    "ACTIVE",
    "URGENCIES",
    "ServiceTargets",
    "Target",
    "Ticket",
    "TicketStatus",
    "TicketTransitionRefused",
    "TimelineEntry",
    "new_ticket",
]
