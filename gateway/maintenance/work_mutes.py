"""Alarms out of service while work is in progress on their device, and back when it stops.

While a ticket is `in_progress`, the device's alarms are out of service (audited: by the assignee,
for ticket #N) — never life-safety alarms nor comm_loss, for a preventive ticket only if its plan
says `mutes: true`, and at most until the ticket's resolution target or `tickets.mute_limit`
(`rules.maintenance.mutes`). They are back in service when the work stops, or when the mute runs
out: then a `work_overran` timeline entry (a ticket event on `P/events`) names the ticket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from gateway.components import AlarmCommands, AlarmView
from gateway.maintenance.records import SYSTEM, alarms_entry
from gateway.storage.tickets import Change, TicketStore
from rules.maintenance import mutes
from rules.maintenance.tickets import Ticket, TicketStatus, TimelineEntry

log = logging.getLogger("fgw.maintenance")


class WorkMutes:
    """The mutes of tickets in progress: when each ends, and taking alarms out and back.

    Args:
        store: the ticket store.
        alarms: the alarm book, read-only.
        commands: takes alarms out of service and back.
        commit: commits a change and publishes it (`TicketOutbox.commit`).
        clock: wall-clock seconds.
        enabled: `tickets.out_of_service_while_working`.
        mute_limit: `tickets.mute_limit`, seconds.
        plan_mutes: whether a preventive ticket's plan says `mutes: true`.
    """

    def __init__(
        self,
        store: TicketStore,
        alarms: AlarmView,
        commands: AlarmCommands,
        commit: Callable[[Change, float], None],
        clock: Callable[[], float],
        *,
        enabled: bool,
        mute_limit: float,
        plan_mutes: Callable[[Ticket], bool],
    ) -> None:
        self.store = store
        self.alarms = alarms
        self.commands = commands
        self._commit = commit
        self.clock = clock
        self.enabled = enabled
        self.mute_limit = mute_limit
        self._plan_mutes = plan_mutes
        self._until: dict[int, float] = {}  # ticket id -> when its mute ends
        self._unmute_at_start: list[tuple[Ticket, list[str]]] = []  # muted by older settings

    def restore(self, now: float) -> None:
        """Tickets in progress with alarms out of service: their mute's end (a mute saved before
        it had one ends `mute_limit` after it started); alarms no longer to be muted by work
        (life-safety, comm_loss) go back in service on the first tick."""
        changes: list[tuple[Ticket, list[TimelineEntry]]] = []
        alarms = {a.id: a for a in self.alarms.all()}
        for ticket in self.store.tickets(status=[str(TicketStatus.IN_PROGRESS)]):
            if not ticket.out_of_service or ticket.id is None:
                continue
            entries: list[TimelineEntry] = []
            changed = ticket.mute_until is None
            if ticket.mute_until is None:
                started = next(
                    (e.at for e in reversed(self.store.timeline(ticket.id))
                     if e.action == "alarms_out_of_service"),
                    now,
                )  # fmt: skip
                ticket.mute_until = min(ticket.resolution_due, started + self.mute_limit)
            back = [
                a for a in ticket.out_of_service if a not in alarms or not mutes.may_mute(alarms[a])
            ]
            if back:
                ticket.out_of_service = [a for a in ticket.out_of_service if a not in back]
                entries.append(alarms_entry("alarms_returned", back, now, SYSTEM))
                self._unmute_at_start.append((ticket, back))
                changed = True
            if ticket.out_of_service:
                self._until[ticket.id] = ticket.mute_until
            else:
                ticket.mute_until = None
            if changed:
                changes.append((ticket, entries))
        if changes:
            self.store.commit(Change(tickets=changes), now)

    def unmute_at_start(self) -> None:
        """Put back what `restore` found no longer to be muted (on the first tick)."""
        if self._unmute_at_start:
            for ticket, back in self._unmute_at_start:
                self.put_back(ticket, back, SYSTEM)
            self._unmute_at_start.clear()

    def due(self, now: float) -> bool:
        """Whether a mute ran out by `now` (`end` has work)."""
        return bool(self._until) and now >= min(self._until.values())

    def end(self, now: float) -> None:
        """Put back the alarms of tickets whose mute ran out while the work goes on, and say so
        (`work_overran`). The alarms come back in the state their rules' latest evaluation gives:
        the rules are evaluated on every reading under the mute, so on fresh readings."""
        for ticket_id, until in sorted(self._until.items(), key=lambda item: item[1]):
            if until > now:
                continue
            del self._until[ticket_id]
            ticket = self.store.get(ticket_id)
            if ticket.status != TicketStatus.IN_PROGRESS or not ticket.out_of_service:
                continue
            back, ticket.out_of_service, ticket.mute_until = list(ticket.out_of_service), [], None
            self._commit(
                Change(tickets=[(ticket, [mutes.overran_entry(ticket, back, until, now)])]), now
            )
            log.warning(
                "ticket #%s: work overran its mute; alarms back in service: %s",
                ticket_id, ", ".join(back),
                extra={"ticket": ticket_id, "device": ticket.device},
            )  # fmt: skip
            self.put_back(ticket, back, SYSTEM)

    def to_take_out(self, ticket: Ticket) -> list[str]:
        """The alarms work on `ticket` takes out of service now; sets `ticket.mute_until`."""
        if not self.enabled:
            return []
        if ticket.kind == "preventive" and not self._plan_mutes(ticket):
            return []
        now = self.clock()
        until = mutes.mute_until(ticket, now, self.mute_limit)
        alarms = mutes.alarms_to_mute(self.alarms.all(), ticket.device) if until is not None else []
        if alarms and until is not None and ticket.id is not None:
            ticket.mute_until = until
            self._until[ticket.id] = until
        return alarms

    def take_out(self, ticket: Ticket, alarm_ids: Sequence[str]) -> None:
        by = ticket.assignee or f"ticket #{ticket.id}"
        reason = f"ticket #{ticket.id} in progress: {ticket.title}"
        for alarm_id in alarm_ids:
            try:
                self.commands.remove_from_service(alarm_id, by, reason)
            except Exception as exc:  # refused (already out) or unknown: the ticket goes on
                log.warning("could not take %s out of service: %s", alarm_id, exc)

    def put_back(self, ticket: Ticket, alarm_ids: Sequence[str], by: str | None = None) -> None:
        by = by or ticket.assignee or f"ticket #{ticket.id}"
        if ticket.id is not None and not ticket.out_of_service:
            self._until.pop(ticket.id, None)
        for alarm_id in alarm_ids:
            try:
                if not self.alarms.get(alarm_id).out_of_service:
                    continue  # back already (a life-safety alarm reinstated at start)
                self.commands.return_to_service(alarm_id, by)
            except Exception as exc:
                log.warning("could not return %s to service: %s", alarm_id, exc)
