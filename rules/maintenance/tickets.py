"""The ticket (work order) model and its lifecycle (PRODUCT §5), with service targets per urgency.

Pure code: a `Ticket` changes only through `transition`, `repeat` and `check_overdue`, each of which
returns the `TimelineEntry` to store, so the timeline is complete by construction. A request the
lifecycle does not allow raises `TicketTransitionRefused` (the API answers 409); malformed input
(an unknown status, an assignment without assignee) raises `ValueError` (422).

Lifecycle (`->` allowed):

    open        -> assigned (needs assignee), in_progress (assignee: given or the actor), cancelled
    assigned    -> assigned (reassign to someone else), in_progress, open (unassign), cancelled
    in_progress -> resolved, assigned (paused or handed over), cancelled
    resolved    -> closed, in_progress (reopened: the fix did not hold)
    closed, cancelled: final

A corrective ticket born from an alarm can be resolved only once that alarm's condition has
returned to normal: "fixed" is something the equipment says, not a button. Cancelling needs a note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from rules.maintenance.calendar import iso, next_morning

URGENCIES = ("emergency", "urgent", "normal", "low")
KINDS = ("corrective", "preventive")
NEXT_MORNING = "next_morning"


def board_order(tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tickets (their `to_dict` form) most urgent first, then soonest due, then lowest `#n`.

    The one order of the console's board and `fgw tickets list`: an emergency never sits below
    routine work. An unknown urgency goes last; a ticket without a due time goes after those with one.
    """

    def key(ticket: dict[str, Any]) -> tuple[int, int, str, int]:
        urgency = ticket.get("urgency")
        rank = URGENCIES.index(urgency) if urgency in URGENCIES else len(URGENCIES)
        due = ticket.get("due")
        return (rank, due is None, str(due or ""), int(ticket.get("id") or 0))

    return sorted(tickets, key=key)


class TicketStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({TicketStatus.OPEN, TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS})
"""Work not done yet: at most one such ticket per plan and device, or per alarm."""
FINAL = frozenset({TicketStatus.CLOSED, TicketStatus.CANCELLED})

ALLOWED: dict[TicketStatus, frozenset[TicketStatus]] = {
    TicketStatus.OPEN: frozenset(
        {TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS, TicketStatus.CANCELLED}
    ),
    TicketStatus.ASSIGNED: frozenset(
        {
            TicketStatus.ASSIGNED,
            TicketStatus.IN_PROGRESS,
            TicketStatus.OPEN,
            TicketStatus.CANCELLED,
        }
    ),
    TicketStatus.IN_PROGRESS: frozenset(
        {TicketStatus.RESOLVED, TicketStatus.ASSIGNED, TicketStatus.CANCELLED}
    ),
    TicketStatus.RESOLVED: frozenset({TicketStatus.CLOSED, TicketStatus.IN_PROGRESS}),
    TicketStatus.CLOSED: frozenset(),
    TicketStatus.CANCELLED: frozenset(),
}


class TicketTransitionRefused(Exception):
    """The lifecycle does not allow this change now (HTTP 409)."""

    def __init__(self, ticket_id: int | None, status: str, to: str, why: str = "") -> None:
        self.ticket_id, self.status, self.to, self.why = ticket_id, status, to, why
        super().__init__(
            f"ticket #{ticket_id} cannot go from {status} to {to}" + (f": {why}" if why else "")
        )


def parse_status(text: str) -> TicketStatus:
    try:
        return TicketStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in TicketStatus)
        raise ValueError(f"unknown ticket status {text!r} (one of {known})") from None


def check_urgency(text: str) -> str:
    if text not in URGENCIES:
        raise ValueError(f"unknown urgency {text!r} (one of {', '.join(URGENCIES)})")
    return text


# ---------------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Target:
    """Respond within `respond` seconds; resolve within `resolve` seconds, or by the next morning."""

    respond: float
    resolve: float | str


DEFAULT_TARGETS: dict[str, Target] = {
    "emergency": Target(respond=15 * 60, resolve=4 * 3600),
    "urgent": Target(respond=2 * 3600, resolve=24 * 3600),
    "normal": Target(respond=4 * 3600, resolve=NEXT_MORNING),
    "low": Target(respond=24 * 3600, resolve=7 * 86400),
}


@dataclass(frozen=True)
class ServiceTargets:
    """Response and resolution targets per urgency, on the site's wall clock.

    Args:
        zone: the site's time zone (what "morning" means).
        targets: per urgency; missing urgencies take `DEFAULT_TARGETS`.
        morning: the time of day "by the next morning" means.
        night: the least time a next-morning target leaves (a 02:00 fault is not due at 08:00).
    """

    zone: ZoneInfo
    targets: Mapping[str, Target] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    morning: time = time(8, 0)
    night: float = 8 * 3600.0

    def target(self, urgency: str) -> Target:
        return self.targets.get(urgency) or DEFAULT_TARGETS[urgency]

    def response_due(self, urgency: str, created: float) -> float:
        return created + self.target(urgency).respond

    def resolution_due(self, urgency: str, created: float) -> float:
        resolve = self.target(urgency).resolve
        if resolve == NEXT_MORNING:
            return next_morning(created, self.zone, self.morning, self.night)
        return created + float(resolve)


# ---------------------------------------------------------------------------------- timeline


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One change of a ticket: who did what, when, and why."""

    at: float
    by: str
    action: str  # created, transition, repeat, overdue, alarms_out_of_service, alarms_returned,
    # work_overran (the mute ran out while the work went on)
    from_status: str | None = None
    to_status: str | None = None
    note: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "by": self.by,
            "action": self.action,
            "from": self.from_status,
            "to": self.to_status,
            "note": self.note,
            **({"detail": dict(self.detail)} if self.detail else {}),
        }

    def record(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["detail"] = dict(self.detail)
        return data

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TimelineEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


# ---------------------------------------------------------------------------------- ticket


@dataclass
class Ticket:
    """A work order. Times are epoch seconds; `to_dict` gives the API's ISO 8601 UTC form."""

    kind: str
    device: str
    title: str
    urgency: str
    created_at: float
    response_due: float
    resolution_due: float
    origin: dict[str, Any]
    origin_key: str | None = None  # alarm:{id} or plan:{device}/{plan}: one active ticket per key
    id: int | None = None
    status: TicketStatus = TicketStatus.OPEN
    assignee: str | None = None
    updated_at: float = 0.0
    count: int = 1
    notes: list[dict[str, Any]] = field(default_factory=list)
    responded_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    closed_at: float | None = None
    cancelled_at: float | None = None
    last_episode: int | None = None
    out_of_service: list[str] = field(default_factory=list)  # alarms this ticket took out
    mute_until: float | None = None  # when those alarms come back even if the work goes on
    response_overdue: bool = False  # announced once each
    resolution_overdue: bool = False
    titles: dict[str, str] = field(default_factory=dict)  # {"zh", "en"} when known; older rows: {}

    # ------------------------------------------------------------------ changes

    def transition(
        self,
        to: str,
        by: str,
        at: float,
        note: str = "",
        assignee: str | None = None,
        alarm_active: bool = False,
    ) -> TimelineEntry:
        """Move to status `to`.

        Args:
            to: the new status.
            by: who does it (a user, or `system`).
            at: when (epoch seconds).
            note: why; required for a cancellation.
            assignee: for `assigned` (required) and `in_progress` (default: `by`).
            alarm_active: the ticket's alarm condition is still active (refuses `resolved`).

        Raises:
            ValueError: unknown status, missing assignee or cancellation note.
            TicketTransitionRefused: not allowed from the current status.
        """
        target = parse_status(to)
        by = by.strip()
        if not by:
            raise ValueError("who makes the change (by) is required")
        if target not in ALLOWED[self.status]:
            raise TicketTransitionRefused(self.id, self.status, target, "not an allowed step")
        assignee = assignee.strip() if assignee else None
        if target == TicketStatus.ASSIGNED:
            if not assignee:
                raise ValueError("assigning a ticket needs an assignee")
            if self.status == TicketStatus.ASSIGNED and assignee == self.assignee:
                raise TicketTransitionRefused(self.id, self.status, target, f"already {assignee}'s")
        if target == TicketStatus.CANCELLED and not note.strip():
            raise ValueError("cancelling a ticket needs a note saying why")
        if target == TicketStatus.RESOLVED and alarm_active:
            alarm = self.origin.get("alarm", "its alarm")
            raise TicketTransitionRefused(
                self.id, self.status, target, f"alarm {alarm} has not returned to normal"
            )
        before = self.status
        if target == TicketStatus.ASSIGNED:
            self.assignee = assignee
        elif target == TicketStatus.IN_PROGRESS:
            self.assignee = assignee or self.assignee or by
        elif target == TicketStatus.OPEN:
            self.assignee = None
        if (
            target in (TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS)
            and self.responded_at is None
        ):
            self.responded_at = at
        if target == TicketStatus.RESOLVED:
            self.resolved_at, self.resolved_by = at, by
        elif target == TicketStatus.IN_PROGRESS and before == TicketStatus.RESOLVED:
            self.resolved_at = self.resolved_by = None  # reopened
        if target == TicketStatus.CLOSED:
            self.closed_at = at
        elif target == TicketStatus.CANCELLED:
            self.cancelled_at = at
        self.status = target
        self._touch(at, by, note)
        return TimelineEntry(
            at=at,
            by=by,
            action="transition",
            from_status=str(before),
            to_status=str(target),
            note=note,
            detail={"assignee": self.assignee} if self.assignee else {},
        )

    def repeat(self, episode: int | None, at: float, by: str = "system") -> TimelineEntry:
        """The alarm came back while this ticket is still active: count it here."""
        self.count += 1
        self.last_episode = episode
        self.updated_at = at
        return TimelineEntry(
            at=at,
            by=by,
            action="repeat",
            from_status=str(self.status),
            to_status=str(self.status),
            note=f"the alarm repeated (episode {episode}); {self.count} times in all",
            detail={"episode": episode, "count": self.count},
        )

    def check_overdue(self, now: float) -> list[TimelineEntry]:
        """Entries for targets newly missed at `now` (each announced once)."""
        out = []
        if (
            not self.response_overdue
            and self.responded_at is None
            and self.status in ACTIVE
            and now > self.response_due
        ):
            self.response_overdue = True
            out.append(self._overdue_entry("response", self.response_due, now))
        if not self.resolution_overdue and self.status in ACTIVE and now > self.resolution_due:
            self.resolution_overdue = True
            out.append(self._overdue_entry("resolution", self.resolution_due, now))
        if out:
            self.updated_at = now
        return out

    def _overdue_entry(self, which: str, due: float, now: float) -> TimelineEntry:
        return TimelineEntry(
            at=now,
            by="system",
            action="overdue",
            from_status=str(self.status),
            to_status=str(self.status),
            note=f"{which} target missed (due {iso(due)})",
            detail={"target": which, "due": iso(due)},
        )

    def _touch(self, at: float, by: str, note: str) -> None:
        self.updated_at = at
        if note.strip():
            self.notes.append({"at": iso(at), "by": by, "text": note.strip()})

    # ------------------------------------------------------------------ reading

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def is_overdue(self, now: float) -> bool:
        """Late now: not responded past the response target, or not resolved past the due time."""
        if self.status not in ACTIVE:
            return False
        late_response = self.responded_at is None and now > self.response_due
        return late_response or now > self.resolution_due

    def done_on_time(self) -> bool | None:
        """Resolved by its due time? None while not resolved."""
        if self.resolved_at is None:
            return None
        return self.resolved_at <= self.resolution_due

    def to_dict(self, now: float, timeline: list[TimelineEntry] | None = None) -> dict[str, Any]:
        """The API/event form (PRODUCT §5): ISO 8601 UTC times, `overdue` at `now`."""
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "device": self.device,
            "title": self.title,
            "title_zh": self.titles.get("zh"),  # None: only `title` is known (a ticket by hand)
            "title_en": self.titles.get("en"),
            "urgency": self.urgency,
            "status": str(self.status),
            "assignee": self.assignee,
            "due": iso(self.resolution_due),
            "response_due": iso(self.response_due),
            "resolution_due": iso(self.resolution_due),
            "overdue": self.is_overdue(now),
            "origin": dict(self.origin),
            "count": self.count,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at or self.created_at),
            "responded_at": iso(self.responded_at),
            "resolved_at": iso(self.resolved_at),
            "resolved_by": self.resolved_by,
            "closed_at": iso(self.closed_at),
            "cancelled_at": iso(self.cancelled_at),
            "out_of_service": list(self.out_of_service),
            "mute_until": iso(self.mute_until),
            "notes": [dict(n) for n in self.notes],
        }
        if timeline is not None:
            data["timeline"] = [entry.to_dict() for entry in timeline]
        return data

    def record(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Ticket:
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in record.items() if k in names}
        data["status"] = TicketStatus(data.get("status", "open"))
        return cls(**data)


def new_ticket(
    *,
    kind: str,
    device: str,
    title: str,
    urgency: str,
    at: float,
    by: str,
    targets: ServiceTargets,
    origin: dict[str, Any],
    origin_key: str | None = None,
    due: float | None = None,
    note: str = "",
    episode: int | None = None,
    titles: Mapping[str, str] | None = None,
) -> tuple[Ticket, TimelineEntry]:
    """A ticket in `open`, with its deadlines, and its first timeline entry.

    Args:
        due: the resolution deadline (preventive work: the plan's due time); default: the target.
        titles: the title in both languages (`{"zh", "en"}`) when its origin has both.

    Raises:
        ValueError: unknown kind or urgency, empty title or device.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ticket kind {kind!r} ({', '.join(KINDS)})")
    check_urgency(urgency)
    if not title.strip():
        raise ValueError("a ticket needs a title")
    if not device.strip():
        raise ValueError("a ticket needs a device")
    if not by.strip():
        raise ValueError("who raises the ticket (by) is required")
    ticket = Ticket(
        kind=kind,
        device=device,
        title=title.strip(),
        urgency=urgency,
        created_at=at,
        updated_at=at,
        response_due=targets.response_due(urgency, at),
        resolution_due=due if due is not None else targets.resolution_due(urgency, at),
        origin=origin,
        origin_key=origin_key,
        last_episode=episode,
        titles={k: v.strip() for k, v in (titles or {}).items() if k in ("zh", "en") and v.strip()},
    )
    ticket._touch(at, by, note)
    entry = TimelineEntry(
        at=at, by=by, action="created", to_status=str(TicketStatus.OPEN), note=note,
        detail={"origin": dict(origin)},
    )  # fmt: skip
    return ticket, entry
