"""The incidents component: playbooks followed live (PRODUCT §11). Offers `incidents`.

It hears alarm transitions (an alarm becoming active opens or joins an incident), readings (a fire
panel's zones added to an open fire incident), and time (overdue steps, on the gateway's wall clock,
so due times hold across restarts). Every change is committed to the incident journal first, then
published on `P/events` as `{"type": "incident", ...}`; an overdue step is also announced once
through the notification channels of the trigger's priority (`Announcer`), a drill's only when
`notify.drills` is true. Drills opened from the command line (`fgw drill`) are rows of another
source in the same file: picked up within a second, published, and followed like the others.

A refused write (disk full) must not hide an incident: the event is published anyway and logged.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.components import Capabilities, Component, ComponentContext
from gateway.incident_context import context_for, fire_state
from gateway.storage.incidents import IncidentStore
from ground.model import Reading
from rules.alarms import ACTIVE_STATES
from rules.incidents import Incident, IncidentBook, IncidentEvent

if TYPE_CHECKING:
    from rules.alarms import AlarmTransition

log = logging.getLogger("fgw.incidents")

FOLLOW_EVERY = 1.0
"""Seconds between looks for rows another process (the command line) committed."""

LIST_LIMIT = 500
"""`state=all` lists at most this many incidents, the newest."""

RESTORE_CLOSED_FOR = 86400.0
"""Closed incidents younger than this are kept in memory: their episodes never open another."""


class IncidentsComponent(Component):
    """Incidents of one site: the book, its journal, and what the API and CLI call.

    Args:
        context: the site, the wall clock, the readings (`engine`), `P/events`, the journal's db.
        capabilities: where an overdue step is announced (`notify`), read when it happens.
        clock: wall-clock seconds (default: the gateway's).
        store: the incident journal (default: in the journal's file).
    """

    name = "incidents"

    def __init__(
        self,
        context: ComponentContext,
        capabilities: Capabilities,
        *,
        clock: Callable[[], float] | None = None,
        store: IncidentStore | None = None,
    ) -> None:
        self.site = context.site
        self.engine = context.engine
        self.events = context.events
        self.capabilities = capabilities
        self.clock = clock or context.clock.wall
        self.store = store or IncidentStore(self.site.storage_dir, db=context.db)
        self.book = IncidentBook(self.site.playbooks, self.store.new_id)
        now = self.clock()
        self.book.restore(self.store.incidents(state="open"))
        self.book.restore(self.store.incidents(state="closed", since=now - RESTORE_CLOSED_FOR))
        self.locale = self.site.file.site.locale
        self.site_name = self.site.file.site.name or self.site.id
        self._fire_panels = {
            d.id for d in self.site.devices.values() if d.template and d.template.id == "fire_panel"
        }
        self._next_follow = 0.0
        self._pending_context: list[tuple[int, dict[str, Any]]] = []
        self.announced = 0
        self.errors = 0
        self._publish_pending()  # what a crash left between commit and publish

    # ------------------------------------------------------------------ hooks

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        self._safely("opening incidents", self._on_transitions, transitions)

    def on_readings(self, batch: Sequence[Reading]) -> None:
        if self._fire_panels and batch and batch[0].device in self._fire_panels:
            self._safely("updating fire incidents", self._on_fire_readings, batch[0].device)

    def on_tick(self, wall: float, monotonic: float) -> None:
        self._safely("overdue steps", self._on_tick, wall, monotonic)

    def _safely(self, what: str, action: Callable[..., Any], *args: Any) -> None:
        """A hook's work: a failure is counted and logged (at 1, 10, 100, then every 1000th),
        never raised into the gateway's loop, where it would stand in the alarm's way."""
        try:
            action(*args)
        except Exception:
            self.errors += 1
            if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                log.exception("incidents: %s failed (%d failures so far)", what, self.errors)

    def _on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        events: list[IncidentEvent] = []
        for t in transitions:
            if t.to_state not in ACTIVE_STATES:
                continue
            alarm = t.alarm
            events += self.book.trigger(
                t.alarm_id,
                alarm.rule,
                t.episode,
                alarm.priority,
                t.at,
                lambda playbook, device=alarm.device: self._context(playbook.id, device),
            )
        self._apply(events)

    def _on_fire_readings(self, device: str) -> None:
        events: list[IncidentEvent] = []
        for incident in self.book.open_incidents():
            if incident.playbook == "fire" and incident.context.get("panel") == device:
                state = fire_state(self.engine.values(device))
                state = {k: v for k, v in state.items() if v is not None and v != []}
                events += self.book.update_context(incident.id, state, self.clock())
        self._apply(events)

    def _on_tick(self, wall: float, monotonic: float) -> None:
        self._apply(self.book.tick(wall))
        if monotonic >= self._next_follow:
            self._next_follow = monotonic + FOLLOW_EVERY
            self._publish_pending()

    # ------------------------------------------------------------------ actions (API, CLI)

    def open_incidents(self) -> list[Incident]:
        """The open incidents, as the book holds them."""
        return self.book.open_incidents()

    def listing(self, state: str = "open") -> list[dict[str, Any]]:
        """Open incidents (or the newest `LIST_LIMIT` of all): open ones first, drills after real
        ones, newest first."""
        incidents = (
            self.book.open_incidents()
            if state == "open"
            else self.store.incidents(newest=LIST_LIMIT)
        )
        incidents.sort(key=lambda i: (i.state != "open", i.drill, -i.opened_at))
        return [i.payload() for i in incidents]

    def get(self, incident_id: int) -> dict[str, Any]:
        """One incident with its journal. Raises KeyError."""
        incident = self.book.incidents.get(incident_id) or self.store.get(incident_id)
        payload = incident.payload()
        payload["journal"] = [
            {
                "seq": r.seq,
                "at": r.event.get("at"),
                "action": r.action,
                "step": r.step,
                "by": r.by,
                "note": r.note,
            }
            for r in self.store.journal(incident_id)
        ]
        return payload

    def complete_step(self, incident_id: int, step: str, by: str, note: str) -> dict[str, Any]:
        """Raises KeyError (unknown), IncidentRefused (closed or done already)."""
        self._refresh(incident_id)
        event = self.book.complete_step(incident_id, step, by, note, self.clock())
        self._apply([event])
        return event.incident.payload()

    def close_incident(self, incident_id: int, by: str, cause: str) -> dict[str, Any]:
        """Raises KeyError, ValueError (no cause), IncidentRefused (closed, trigger active)."""
        self._refresh(incident_id)
        event = self.book.close(incident_id, by, cause, self.clock(), self.engine.active())
        self._apply([event])
        return event.incident.payload()

    def drill(self, playbook: str, device: str | None, by: str) -> dict[str, Any]:
        """Open a drill incident. Raises KeyError (unknown playbook), ValueError (unknown device)."""
        if device is not None and device not in self.site.devices:
            raise ValueError(f"no device {device!r}")
        if playbook not in self.book.playbooks:
            raise KeyError(playbook)
        context = self._context(playbook, device)
        event = self.book.drill(playbook, device, by, self.clock(), context)
        self._apply([event])
        return event.incident.payload()

    # ------------------------------------------------------------------ internals

    def _context(self, playbook: str, device: str | None) -> dict[str, Any]:
        try:
            return context_for(self.site, self.engine.values, playbook, device)
        except Exception:  # context is a help; an incident must open without it
            log.exception("incident context for %s/%s failed", playbook, device)
            return {}

    def _refresh(self, incident_id: int) -> None:
        """An incident opened by another process (a drill from the command line) is read in."""
        if incident_id not in self.book.incidents:
            self.book.restore([self.store.get(incident_id)])

    def _apply(self, events: Sequence[IncidentEvent]) -> None:
        if not events:
            return
        try:
            self.store.commit(events)
        except sqlite3.Error as exc:
            self.errors += 1
            log.error("incident journal: cannot write (%s); publishing anyway", exc)
            for e in events:
                self.events.publish(e.event())
        else:
            self._publish_pending()
        for e in events:
            log.info(
                "incident %s %s%s",
                e.incident.id,
                e.action,
                f" {e.step}" if e.step else "",
                extra={"incident": e.incident.id, "playbook": e.incident.playbook},
            )
            if e.action == "step_overdue":
                self._announce(e)

    def _publish_pending(self) -> None:
        try:
            rows = self.store.unpublished()
            for row in rows:
                if row.source != self.store.source:
                    self._follow(row.incident_id)
                self.events.publish(row.event)
            if rows:
                self.store.mark_published(r.seq for r in rows)
        except sqlite3.Error as exc:
            self.errors += 1
            log.error("incident journal: cannot read or mark rows (%s)", exc)
        pending, self._pending_context = self._pending_context, []
        for incident_id, context in pending:
            self._apply(self.book.update_context(incident_id, context, self.clock()))

    def _follow(self, incident_id: int) -> None:
        """Read in an incident another process wrote; a drill opened from the command line gets
        the live context the command line could not know (the car's floor, the zones…)."""
        try:
            incident = self.store.get(incident_id)
        except KeyError:
            return
        known = incident_id in self.book.incidents
        self.book.restore([incident])
        if not known and incident.drill and incident.state == "open" and incident.device:
            context = self._context(incident.playbook, incident.device)
            self._pending_context.append((incident_id, context))

    def _announce(self, event: IncidentEvent) -> None:
        announcer = self.capabilities.notify
        if announcer is None:
            return
        subject, text = overdue_message(
            event.incident, event.step or "", self.locale, self.site_name
        )
        body = {"type": "incident_notification", "site": self.site.id, **event.event()}
        count = announcer.announce(
            event.incident.priority, subject, text, body, drill=event.incident.drill
        )
        self.announced += count


def overdue_message(
    incident: Incident, step_id: str, locale: str, site_name: str
) -> tuple[str, str]:
    """Subject and body for an overdue step, the site's language first; a drill says so."""
    step = incident.step(step_id)
    drill_zh, drill_en = ("【演练】", "[DRILL] ") if incident.drill else ("", "")
    zh = f"{drill_zh}{incident.title.zh} #{incident.id}: 步骤超时 — {step.text.zh}"
    en = f"{drill_en}{incident.title.en} #{incident.id}: step overdue — {step.text.en}"
    first, second = (en, zh) if locale.lower().startswith("en") else (zh, en)
    where = incident.device or ", ".join(incident.alarms)
    return f"{site_name}: {first}", f"{first}\n{second}\n{where}\n"


def build(context: ComponentContext, capabilities: Capabilities) -> IncidentsComponent:
    """The `gateway.registry` factory; offers `incidents` (the API's)."""
    component = IncidentsComponent(context, capabilities)
    capabilities.incidents = component
    return component
