"""The maintenance component: tickets from alarms and plans, service targets, the API's calls.

It is told about readings (meters move, meter plans check: `gateway.maintenance.meters`), alarm
transitions (a rule with `ticket:` opens one corrective ticket per episode, and a repeat while that
ticket is active is counted on it) and the passing of time (calendar plans fall due, targets are
missed, mutes of work in progress run out: `gateway.maintenance.work_mutes`). It offers
`maintenance` to the HTTP API and the console (`TicketDesk`). Every change goes through
`gateway.maintenance.outbox`: committed first, published after. Time is the gateway's injectable
wall clock, so tests walk through weeks in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import time as day_time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from config.models import PlanSpec
from gateway.components import Capabilities, Component, ComponentContext
from gateway.maintenance.ledger import assets as ledger_assets
from gateway.maintenance.meters import MeterBoard
from gateway.maintenance.outbox import TicketOutbox
from gateway.maintenance.records import (
    SYSTEM,
    alarms_entry,
    parse_ticket_id,
    plan_key,
    targets_of,
)
from gateway.maintenance.work_mutes import WorkMutes
from gateway.storage.tickets import Change, DuplicateActiveTicket, StoredEntry, TicketStore
from ground.model import Reading
from rules.maintenance import plans as planning
from rules.maintenance.tickets import (
    ACTIVE,
    ServiceTargets,
    Ticket,
    TicketStatus,
    TimelineEntry,
    check_urgency,
    new_ticket,
    parse_status,
)

if TYPE_CHECKING:
    from rules.alarms import AlarmTransition

log = logging.getLogger("fgw.maintenance")

CHECK_EVERY = 30.0
"""Seconds between checks of calendar plans and service targets (the clock is the gateway's)."""
SWEEP_EVERY = 1.0
"""Seconds between looks for changes other processes committed (the command line)."""
METER_FLUSH_EVERY = 300.0
"""Seconds between meter saves: a crash loses at most this much gateway-kept run time; saving
more often wears the flash (docs/performance.md)."""


class Maintenance(Component):
    """Tickets, plans and meters of one site.

    Args:
        context: the site, the alarms and their commands, `P/events`, the journal's db.
        clock: wall-clock seconds for API actions (default: the gateway's wall clock).
        store: the ticket store (default: in the site's storage folder).
    """

    name = "maintenance"

    def __init__(
        self,
        context: ComponentContext,
        *,
        clock: Callable[[], float] | None = None,
        store: TicketStore | None = None,
    ) -> None:
        self.site = context.site
        self.alarms = context.alarms
        self.zone = ZoneInfo(self.site.file.site.timezone)
        self.locale = self.site.file.site.locale
        config = self.site.file.tickets
        self.targets = ServiceTargets(
            zone=self.zone,
            targets=targets_of(config.targets),
            morning=day_time.fromisoformat(config.morning),
        )
        self.clock = clock or context.clock.wall
        self.store = store or TicketStore(self.site.storage_dir, db=context.db)
        self.outbox = TicketOutbox(self.store, context.events.publish, self._follow)
        self.mutes = WorkMutes(
            self.store,
            context.alarms,
            context.commands,
            self.outbox.commit,
            self.clock,
            enabled=config.out_of_service_while_working,
            mute_limit=config.mute_limit,
            plan_mutes=self._plan_mutes,
        )
        self.board = MeterBoard(self.site)
        self.meters = self.board.meters
        self.plans: dict[tuple[str, str], tuple[PlanSpec, planning.Schedule]] = {}
        self._meter_plans: dict[str, list[tuple[str, str]]] = {}  # device -> its meter plans
        self.states: dict[tuple[str, str], planning.PlanState] = {}
        self._next_check = 0.0
        self._last_sweep = float("-inf")
        self._last_flush: float | None = None
        self.errors = 0
        self._build_plans()
        self._restore(self.clock())

    # ------------------------------------------------------------------ building

    def _build_plans(self) -> None:
        for device in self.site.devices.values():
            for spec in device.plans:
                if spec.enabled:
                    schedule = planning.Schedule.from_spec(spec)
                    self.plans[(device.id, spec.id)] = (spec, schedule)
                    if schedule.meter is not None:
                        self._meter_plans.setdefault(device.id, []).append((device.id, spec.id))

    def _restore(self, now: float) -> None:
        """Meters and plan state from storage; plans whose ticket ended while we were away move on."""
        self.board.restore(self.store.meters())
        stored = self.store.plans()
        changed: dict[tuple[str, str], dict[str, Any]] = {}
        for key, (_, schedule) in self.plans.items():
            record = stored.get(key)
            meter = self.board.value(key[0], schedule.meter)
            if record is None:
                state = planning.start(schedule, now, self.zone, meter)
                changed[key] = state.record()
            else:
                state = planning.PlanState.from_record(record)
            active = self.store.active_for(plan_key(*key))
            if active is not None:
                state.open_ticket = active.id
            elif state.open_ticket is not None:
                ended = self._ended(state.open_ticket)
                at = (ended.resolved_at or ended.updated_at) if ended else now
                outcome = str(ended.status) if ended else "lost"
                by = (ended.resolved_by or ended.assignee or SYSTEM) if ended else SYSTEM
                planning.complete(schedule, state, at, self.zone, meter, by, outcome)
                changed[key] = state.record()
            self.states[key] = state
        if changed:
            self.store.commit(Change(tickets=[], plans=changed), now)
        self.mutes.restore(now)

    def _ended(self, ticket_id: int) -> Ticket | None:
        try:
            return self.store.get(ticket_id)
        except KeyError:
            return None

    @property
    def bad_values(self) -> int:
        """Readings of a meter's point that were not numbers (ignored)."""
        return self.board.bad_values

    # ------------------------------------------------------------------ component hooks

    def on_readings(self, batch: Sequence[Reading]) -> None:
        touched = self.board.feed(batch)
        if touched:
            now = self.clock()
            for device in touched:  # only the plans of these devices, not every plan of the site
                for key in self._meter_plans.get(device, ()):
                    try:  # as _safely, without a description built for every poll
                        self._check_plan(key, now)
                    except Exception:
                        self._failed(f"plan {key[1]} of {key[0]}")

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        for t in transitions:
            if str(t.to_state) != "active_unack" or t.from_state == t.to_state:
                continue  # a flag or a change of `during` is not a new activation
            try:
                urgency = self.alarms.rule(t.alarm_id).ticket
            except KeyError:
                continue
            if urgency is None:
                continue
            self._safely(f"ticket for alarm {t.alarm_id}", self._alarm_ticket, t, urgency)

    def on_tick(self, wall: float, monotonic: float) -> None:
        self.mutes.unmute_at_start()
        if self.mutes.due(wall):
            self._safely("ending mutes that ran out", self.mutes.end, wall)
        if monotonic - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = monotonic
            self._safely("publishing ticket events", self.publish_pending)
        if wall >= self._next_check:
            self._next_check = wall + CHECK_EVERY
            self._safely("checking plans and targets", self.check, wall)
        if self._last_flush is None:
            self._last_flush = monotonic
        elif monotonic - self._last_flush >= METER_FLUSH_EVERY:
            self._last_flush = monotonic
            self._safely("saving meters", self.flush_meters, wall)

    async def close(self) -> None:
        try:
            self._safely("saving meters", self.flush_meters, self.clock())
            self._safely("publishing ticket events", self.publish_pending)
        finally:
            self.store.close()

    def _safely(self, what: str, action: Callable[..., Any], *args: Any) -> None:
        """Run a hook's work; a failure (a full disk, say) is counted and logged, never raised
        into the gateway's loop, and the work is tried again on its next occasion."""
        try:
            action(*args)
        except Exception:
            self._failed(what)

    def _failed(self, what: str) -> None:
        """Count a failure and log it (with its traceback) at 1, 10, 100, then every 1000th;
        called from the `except` that caught it."""
        self.errors += 1
        if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
            log.exception("maintenance: %s failed (%d failures so far)", what, self.errors)

    # ------------------------------------------------------------------ time

    def check(self, now: float) -> None:
        """Open tickets for plans that fell due, and announce missed service targets."""
        for key in self.plans:
            self._check_plan(key, now)
        changes: list[tuple[Ticket, list[TimelineEntry]]] = []
        for ticket in self.store.tickets(status=[str(s) for s in ACTIVE]):
            entries = ticket.check_overdue(now)
            if entries:
                changes.append((ticket, entries))
                log.warning(
                    "ticket #%s overdue: %s", ticket.id, "; ".join(e.note for e in entries),
                    extra={"ticket": ticket.id, "device": ticket.device},
                )  # fmt: skip
        if changes:
            self._commit(Change(tickets=changes), now)

    def flush_meters(self, now: float) -> None:
        if not self.board.dirty:
            return
        self.store.commit(Change(tickets=[], meters=self.board.records()), now)
        self.board.dirty.clear()

    # ------------------------------------------------------------------ plans

    def _check_plan(self, key: tuple[str, str], now: float) -> None:
        spec, schedule = self.plans[key]
        state = self.states[key]
        meter = self.board.value(key[0], schedule.meter)
        if planning.align_threshold(schedule, state, meter):
            self.store.commit(Change(tickets=[], plans={key: state.record()}), now)
        trigger = planning.check(schedule, state, now, self.zone, meter)
        if trigger is None:
            return
        title = spec.title.in_locale(self.locale) if spec.title else spec.id
        ticket, entry = new_ticket(
            kind="preventive",
            device=key[0],
            title=title,
            titles={"zh": spec.title.zh, "en": spec.title.en} if spec.title else None,
            urgency=spec.urgency,
            at=now,
            by=SYSTEM,
            targets=self.targets,
            origin={
                "kind": "plan",
                "plan": spec.id,
                "trigger": trigger.reason,
                "detail": trigger.detail,
                "meter": trigger.meter if schedule.meter else None,
            },
            origin_key=plan_key(*key),
            due=trigger.due,
            note=trigger.detail,
        )
        try:
            self._commit(Change(tickets=[(ticket, [entry])], meters=self.board.take_records()), now)
        except DuplicateActiveTicket:
            active = self.store.active_for(plan_key(*key))
            state.open_ticket = active.id if active else None
            return
        assert ticket.id is not None
        planning.opened(state, ticket.id)
        self.store.commit(Change(tickets=[], plans={key: state.record()}), now)
        log.info("plan %s of %s due: ticket #%s", spec.id, key[0], ticket.id)

    def _plan_done(self, ticket: Ticket, at: float, by: str) -> dict[tuple[str, str], Any]:
        """A preventive ticket ended: its plan moves on. Returns the plan records to save."""
        plan = ticket.origin.get("plan")
        key = (ticket.device, str(plan))
        if key not in self.plans:
            return {}
        _, schedule = self.plans[key]
        state = self.states[key]
        if state.open_ticket not in (None, ticket.id):
            return {}
        if state.open_ticket is None and state.last_ticket == ticket.id:
            return {}  # already moved on (restored after a change made while we were down)
        state.open_ticket = ticket.id
        meter = self.board.value(ticket.device, schedule.meter)
        planning.complete(schedule, state, at, self.zone, meter, by, str(ticket.status))
        return {key: state.record()}

    def _alarm_ticket(self, t: AlarmTransition, urgency: str) -> None:
        now = t.at
        key = f"alarm:{t.alarm_id}"
        active = self.store.active_for(key)
        if active is not None:
            if active.last_episode is not None and t.episode <= active.last_episode:
                return  # the same episode shown again (after a suppression, say)
            self._commit(Change(tickets=[(active, [active.repeat(t.episode, now)])]), now)
            return
        alarm = t.alarm
        ticket, entry = new_ticket(
            kind="corrective",
            device=alarm.device,
            title=alarm.message or t.alarm_id,
            titles={"zh": alarm.message_zh, "en": alarm.message_en},
            urgency=urgency,
            at=now,
            by=SYSTEM,
            targets=self.targets,
            origin={
                "kind": "alarm",
                "alarm": t.alarm_id,
                "episode": t.episode,
                "priority": alarm.priority,
            },
            origin_key=key,
            episode=t.episode,
            note=f"raised by alarm {t.alarm_id} (episode {t.episode})",
        )
        try:
            self._commit(Change(tickets=[(ticket, [entry])]), now)
        except DuplicateActiveTicket:
            return
        log.info("alarm %s opened ticket #%s (%s)", t.alarm_id, ticket.id, urgency)

    def _alarm_condition_active(self, alarm_id: str) -> bool:
        try:
            return bool(self.alarms.get(alarm_id).condition_active)
        except KeyError:
            return False  # the rule is gone: nothing can return to normal any more

    # ------------------------------------------------------------------ committing, publishing

    def _commit(self, change: Change, now: float) -> None:
        self.outbox.commit(change, now)

    def publish_pending(self) -> int:
        """Publish committed timeline rows not yet on MQTT, in order; follow other writers' rows."""
        return self.outbox.publish_pending()

    def _follow(self, row: StoredEntry) -> None:
        """Side effects of a change another process committed (the command line)."""
        entry = row.entry
        if entry.action != "transition":
            return
        try:
            ticket = self.store.get(row.ticket_id)
        except KeyError:
            return
        now = self.clock()
        entries: list[TimelineEntry] = []
        plans: dict[tuple[str, str], Any] = {}
        back: list[str] = []
        out: list[str] = []
        if entry.from_status == TicketStatus.IN_PROGRESS and ticket.out_of_service:
            back, ticket.out_of_service, ticket.mute_until = list(ticket.out_of_service), [], None
            entries.append(alarms_entry("alarms_returned", back, now, entry.by))
        if (
            entry.to_status == TicketStatus.IN_PROGRESS
            and ticket.status == TicketStatus.IN_PROGRESS
        ):
            out = self.mutes.to_take_out(ticket)
            if out:
                ticket.out_of_service = out
                entries.append(alarms_entry("alarms_out_of_service", out, now, entry.by))
        if ticket.kind == "preventive" and entry.to_status in ("resolved", "cancelled"):
            plans = self._plan_done(ticket, entry.at, entry.by)
        if entries or plans:
            self.store.commit(Change(tickets=[(ticket, entries)], plans=plans), now)
        self.mutes.put_back(ticket, back)
        self.mutes.take_out(ticket, out)

    def _plan_mutes(self, ticket: Ticket) -> bool:
        entry = self.plans.get((ticket.device, str(ticket.origin.get("plan"))))
        return entry is not None and entry[0].mutes

    # ------------------------------------------------------------------ the API

    def list_tickets(self, status: str | None = None, device: str | None = None) -> list[dict]:
        """Tickets, newest first. `status`: one status, `active` (not done yet), or None for all.

        Raises:
            ValueError: unknown status.
        """
        statuses: list[str] | None = None
        if status == "active":
            statuses = [str(s) for s in ACTIVE]
        elif status not in (None, "", "all"):
            statuses = [str(parse_status(status))]
        now = self.clock()
        return [t.to_dict(now) for t in self.store.tickets(status=statuses, device=device)]

    def get_ticket(self, ticket_id: int | str) -> dict[str, Any]:
        """One ticket with its timeline. Raises KeyError for an unknown id."""
        ticket = self.store.get(parse_ticket_id(ticket_id))
        assert ticket.id is not None
        return ticket.to_dict(self.clock(), self.store.timeline(ticket.id))

    def create_ticket(
        self, device: str, title: str, urgency: str, by: str, note: str = ""
    ) -> dict[str, Any]:
        """A corrective ticket raised by hand. Raises ValueError for bad input."""
        if device not in self.site.devices:
            raise ValueError(f"unknown device {device!r}")
        check_urgency(urgency)
        now = self.clock()
        ticket, entry = new_ticket(
            kind="corrective",
            device=device,
            title=title,
            urgency=urgency,
            at=now,
            by=by,
            targets=self.targets,
            origin={"kind": "manual", "by": by},
            note=note,
        )
        self._commit(Change(tickets=[(ticket, [entry])]), now)
        assert ticket.id is not None
        return ticket.to_dict(now, self.store.timeline(ticket.id))

    def transition(
        self,
        ticket_id: int | str,
        to: str,
        by: str,
        note: str = "",
        assignee: str | None = None,
    ) -> dict[str, Any]:
        """Move a ticket along its lifecycle; returns it with its timeline.

        Raises:
            KeyError: unknown ticket (404).
            TicketTransitionRefused: not allowed now, e.g. resolving while its alarm is active (409).
            ValueError: bad input: unknown status, no assignee, no note for a cancellation (422).
        """
        ticket = self.store.get(parse_ticket_id(ticket_id))
        target = parse_status(to)
        now = self.clock()
        alarm_id = ticket.origin.get("alarm") if ticket.origin.get("kind") == "alarm" else None
        alarm_active = (
            bool(alarm_id)
            and target == TicketStatus.RESOLVED
            and (self._alarm_condition_active(str(alarm_id)))
        )
        before = ticket.status
        entries = [ticket.transition(target, by, now, note, assignee, alarm_active=alarm_active)]
        back: list[str] = []
        out: list[str] = []
        if before == TicketStatus.IN_PROGRESS and ticket.out_of_service:
            back, ticket.out_of_service, ticket.mute_until = list(ticket.out_of_service), [], None
            entries.append(alarms_entry("alarms_returned", back, now, by))
        if target == TicketStatus.IN_PROGRESS:
            out = self.mutes.to_take_out(ticket)
            if out:
                ticket.out_of_service = out
                entries.append(alarms_entry("alarms_out_of_service", out, now, by))
        plans: dict[tuple[str, str], Any] = {}
        if ticket.kind == "preventive" and target in (
            TicketStatus.RESOLVED,
            TicketStatus.CANCELLED,
        ):
            plans = self._plan_done(ticket, now, by)
        self._commit(Change(tickets=[(ticket, entries)], plans=plans), now)
        self.mutes.put_back(ticket, back)
        self.mutes.take_out(ticket, out)
        assert ticket.id is not None
        return ticket.to_dict(now, self.store.timeline(ticket.id))

    def assets(self) -> list[dict[str, Any]]:
        """The equipment ledger (设备台账): asset record, warranty, meters, history and plans."""
        now = self.clock()
        return ledger_assets(
            self.site,
            self.store.tickets(),
            self.board,
            self.plans,
            self.states,
            zone=self.zone,
            locale=self.locale,
            now=now,
        )


def build(context: ComponentContext, capabilities: Capabilities) -> Maintenance:
    """The `gateway.registry` factory; offers `maintenance` (the API's tickets and ledger)."""
    component = Maintenance(context)
    capabilities.maintenance = component
    return component
