"""The maintenance service: meters from readings, tickets from alarms and plans, service targets.

A `Component` (see `gateway.components`). It is told about readings (meters move, meter plans
check), alarm transitions (a rule with `ticket:` opens one corrective ticket per episode, and a
repeat while that ticket is active is counted on it) and the passing of time (calendar plans fall
due, targets are missed). It is also what the HTTP API and the console call: `gateway.maintenance`.

Every change is committed to SQLite first (`gateway.storage.tickets`) and published on `P/events`
as `{"type": "ticket", ...}` afterwards, from the committed rows; rows another process wrote
(`fgw tickets transition`) are published, and their side effects applied, on the next tick.

While a ticket is `in_progress`, the device's alarms are out of service (audited: by the assignee,
for ticket #N) — never life-safety alarms nor comm_loss, for a preventive ticket only if its plan says
`mutes: true`, and at most until the ticket's resolution target or `tickets.mute_limit`
(`rules.maintenance.mutes`). They are back in service when the work stops, or when the mute runs
out: then a `work_overran` timeline entry (a ticket event on `P/events`) names the ticket. Time is
the gateway's injectable wall clock, so tests walk through weeks in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from datetime import time as day_time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from config.models import ModbusPoint, PlanSpec
from gateway.components import Capabilities, Component, ComponentContext
from gateway.storage.tickets import Change, DuplicateActiveTicket, StoredEntry, TicketStore
from ground.model import Quality, Reading
from rules.maintenance import mutes
from rules.maintenance import plans as planning
from rules.maintenance.calendar import iso, local_date, local_midnight
from rules.maintenance.meters import (
    CounterMeter,
    Meter,
    MeterKind,
    RunHoursMeter,
    StartsMeter,
    restore_meter,
)
from rules.maintenance.tickets import (
    ACTIVE,
    DEFAULT_TARGETS,
    ServiceTargets,
    Target,
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

_BOOL, _FLOAT, _NEITHER = 0, 1, 2
"""How a meter is fed a reading: as running or not (run hours, starts), as a number (counters)."""

METER_POINTS: dict[str, MeterKind] = {
    "run_hours": MeterKind.HOURS,
    "starts": MeterKind.COUNT,
    "trips": MeterKind.COUNT,
    "door_cycles": MeterKind.COUNT,
    "energy_import": MeterKind.ENERGY,
}
"""Counters every ledger shows when a device has them (PRODUCT §5: the live meters)."""

CHECK_EVERY = 30.0
"""Seconds between checks of calendar plans and service targets (the clock is the gateway's)."""
SWEEP_EVERY = 1.0
"""Seconds between looks for changes other processes committed (the command line)."""
METER_FLUSH_EVERY = 300.0
"""Seconds between meter saves: a crash loses at most this much gateway-kept run time (every
minute, a thousand devices' meters rewrote ~150 pages of the journal's file: flash wear)."""
WARRANTY_NOTICE_DAYS = 60
SYSTEM = "system"

_BITS = {"uint16": 16, "int16": 15, "uint32": 32, "int32": 31, "uint64": 64, "int64": 63}


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
        self.commands = context.commands
        self.events = context.events
        self.zone = ZoneInfo(self.site.file.site.timezone)
        self.locale = self.site.file.site.locale
        config = self.site.file.tickets
        self.targets = ServiceTargets(
            zone=self.zone,
            targets=_targets(config.targets),
            morning=day_time.fromisoformat(config.morning),
        )
        self.out_of_service_while_working = config.out_of_service_while_working
        self.mute_limit = config.mute_limit
        self._mutes: dict[int, float] = {}  # ticket id -> when its mute ends
        self._unmute_at_start: list[tuple[Ticket, list[str]]] = []  # muted by older settings
        self.clock = clock or context.clock.wall
        self.store = store or TicketStore(self.site.storage_dir, db=context.db)
        self.meters: dict[tuple[str, str], Meter] = {}
        self.units: dict[tuple[str, str], str] = {}
        self._feeds: dict[tuple[str, str], list[Meter]] = {}
        self._fed: set[str] = set()  # devices with a meter: a reading of another is passed at once
        # the feeds again, by device then point, each meter with how it is fed (`_BOOL`, `_FLOAT`
        # or neither) and its dirty key: a batch (one device's poll) looks its device up once
        self._by_device: dict[str, dict[str, list[tuple[Meter, int, tuple[str, str]]]]] = {}
        self.plans: dict[tuple[str, str], tuple[PlanSpec, planning.Schedule]] = {}
        self._meter_plans: dict[str, list[tuple[str, str]]] = {}  # device -> its meter plans
        self.states: dict[tuple[str, str], planning.PlanState] = {}
        self._dirty_meters: set[tuple[str, str]] = set()
        self._next_check = 0.0
        self._last_sweep = float("-inf")
        self._last_flush: float | None = None
        self.bad_values = 0
        self.errors = 0
        self._build()
        self._restore(self.clock())

    # ------------------------------------------------------------------ building

    def _build(self) -> None:
        for device in self.site.devices.values():
            counted = {p.every_count.point for p in device.plans if p.every_count is not None}
            for point_name, point in device.points.items():
                kind = METER_POINTS.get(point_name)
                if kind is None and point_name in counted:
                    kind = MeterKind.COUNT
                if kind is None:
                    continue
                meter = CounterMeter(name=point_name, kind=kind, modulus=_modulus(point))
                self._add_meter(device.id, point_name, meter, point_name, point.unit)
            if "running" in device.points:
                if "run_hours" not in device.points:
                    self._add_meter(
                        device.id, "run_hours", RunHoursMeter("run_hours"), "running", "h"
                    )
                if "starts" not in device.points:
                    self._add_meter(device.id, "starts", StartsMeter("starts"), "running", "")
            for spec in device.plans:
                if spec.enabled:
                    schedule = planning.Schedule.from_spec(spec)
                    self.plans[(device.id, spec.id)] = (spec, schedule)
                    if schedule.meter is not None:
                        self._meter_plans.setdefault(device.id, []).append((device.id, spec.id))

    def _add_meter(self, device: str, name: str, meter: Meter, point: str, unit: str) -> None:
        self.meters[(device, name)] = meter
        self.units[(device, name)] = unit
        self._feeds.setdefault((device, point), []).append(meter)
        self._fed.add(device)
        if isinstance(meter, RunHoursMeter | StartsMeter):
            mode = _BOOL
        elif isinstance(meter, CounterMeter):
            mode = _FLOAT
        else:
            mode = _NEITHER
        points = self._by_device.setdefault(device, {})
        points.setdefault(point, []).append((meter, mode, (device, meter.name)))

    def _restore(self, now: float) -> None:
        """Meters and plan state from storage; plans whose ticket ended while we were away move on."""
        for key, record in self.store.meters().items():
            if key in self.meters:
                restore_meter(record, self.meters[key])  # in place: the feeds keep pointing at it
        stored = self.store.plans()
        changed: dict[tuple[str, str], dict[str, Any]] = {}
        for key, (_, schedule) in self.plans.items():
            record = stored.get(key)
            meter = self._meter_value(key[0], schedule.meter)
            if record is None:
                state = planning.start(schedule, now, self.zone, meter)
                changed[key] = state.record()
            else:
                state = planning.PlanState.from_record(record)
            active = self.store.active_for(_plan_key(*key))
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
        self._restore_mutes(now)

    def _restore_mutes(self, now: float) -> None:
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
                entries.append(_alarms_entry("alarms_returned", back, now, SYSTEM))
                self._unmute_at_start.append((ticket, back))
                changed = True
            if ticket.out_of_service:
                self._mutes[ticket.id] = ticket.mute_until
            else:
                ticket.mute_until = None
            if changed:
                changes.append((ticket, entries))
        if changes:
            self.store.commit(Change(tickets=changes), now)

    def _ended(self, ticket_id: int) -> Ticket | None:
        try:
            return self.store.get(ticket_id)
        except KeyError:
            return None

    # ------------------------------------------------------------------ component hooks

    def on_readings(self, batch: Sequence[Reading]) -> None:
        touched: set[str] = set()
        by_device, dirty, good = self._by_device, self._dirty_meters, Quality.GOOD
        device: str | None = None
        points: dict[str, list[tuple[Meter, int, tuple[str, str]]]] | None = None
        for reading in batch:
            if reading.device != device:  # a batch is usually one device's poll: looked up once
                device = reading.device
                points = by_device.get(device)
            if points is None:  # most devices feed no meter
                continue
            meters = points.get(reading.point)
            if meters is None or reading.quality != good or reading.value is None:
                continue
            value = reading.value
            if isinstance(value, str) or (
                isinstance(value, float) and value != value  # NaN
            ):
                self._bad_value(reading)
                continue
            for meter, mode, key in meters:
                if mode == _BOOL:
                    meter.feed(bool(value), reading.ts)
                elif mode == _FLOAT:
                    meter.feed(float(value), reading.ts)
                dirty.add(key)
            touched.add(device)
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
        if self._unmute_at_start:
            for ticket, back in self._unmute_at_start:
                self._put_back(ticket, back, SYSTEM)
            self._unmute_at_start.clear()
        if self._mutes and wall >= min(self._mutes.values()):
            self._safely("ending mutes that ran out", self.end_mutes, wall)
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
        if not self._dirty_meters:
            return
        records = {key: self.meters[key].record() for key in self._dirty_meters}
        self.store.commit(Change(tickets=[], meters=records), now)
        self._dirty_meters.clear()

    # ------------------------------------------------------------------ plans

    def _check_plan(self, key: tuple[str, str], now: float) -> None:
        spec, schedule = self.plans[key]
        state = self.states[key]
        meter = self._meter_value(key[0], schedule.meter)
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
            origin_key=_plan_key(*key),
            due=trigger.due,
            note=trigger.detail,
        )
        try:
            self._commit(Change(tickets=[(ticket, [entry])], meters=self._meter_records()), now)
        except DuplicateActiveTicket:
            active = self.store.active_for(_plan_key(*key))
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
        meter = self._meter_value(ticket.device, schedule.meter)
        planning.complete(schedule, state, at, self.zone, meter, by, str(ticket.status))
        return {key: state.record()}

    def _meter_value(self, device: str, name: str | None) -> float | None:
        if name is None:
            return None
        meter = self.meters.get((device, name))
        return meter.total if meter is not None else None

    def _meter_records(self) -> dict[tuple[str, str], dict[str, Any]]:
        records = {key: self.meters[key].record() for key in self._dirty_meters}
        self._dirty_meters.clear()
        return records

    # ------------------------------------------------------------------ alarms

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

    def end_mutes(self, now: float) -> None:
        """Put back the alarms of tickets whose mute ran out while the work goes on, and say so
        (`work_overran`). The alarms come back in the state their rules' latest evaluation gives:
        the rules are evaluated on every reading under the mute, so on fresh readings."""
        for ticket_id, until in sorted(self._mutes.items(), key=lambda item: item[1]):
            if until > now:
                continue
            del self._mutes[ticket_id]
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
            self._put_back(ticket, back, SYSTEM)

    def _alarms_to_take_out(self, device: str) -> list[str]:
        return mutes.alarms_to_mute(self.alarms.all(), device)

    def _take_out(self, ticket: Ticket, alarm_ids: Sequence[str]) -> None:
        by = ticket.assignee or f"ticket #{ticket.id}"
        reason = f"ticket #{ticket.id} in progress: {ticket.title}"
        for alarm_id in alarm_ids:
            try:
                self.commands.remove_from_service(alarm_id, by, reason)
            except Exception as exc:  # refused (already out) or unknown: the ticket goes on
                log.warning("could not take %s out of service: %s", alarm_id, exc)

    def _put_back(self, ticket: Ticket, alarm_ids: Sequence[str], by: str | None = None) -> None:
        by = by or ticket.assignee or f"ticket #{ticket.id}"
        if ticket.id is not None and not ticket.out_of_service:
            self._mutes.pop(ticket.id, None)
        for alarm_id in alarm_ids:
            try:
                if not self.alarms.get(alarm_id).out_of_service:
                    continue  # back already (a life-safety alarm reinstated at start)
                self.commands.return_to_service(alarm_id, by)
            except Exception as exc:
                log.warning("could not return %s to service: %s", alarm_id, exc)

    # ------------------------------------------------------------------ committing, publishing

    def _commit(self, change: Change, now: float) -> None:
        self.store.commit(change, now)
        self.publish_pending()

    def publish_pending(self) -> int:
        """Publish committed timeline rows not yet on MQTT, in order; follow other writers' rows."""
        published = 0
        for _ in range(10):
            rows = self.store.unpublished()
            if not rows:
                break
            for row in rows:
                self.events.publish(_event(row))
            self.store.mark_published(row.seq for row in rows)
            published += len(rows)
            for row in rows:
                if row.source != self.store.source:
                    self._follow(row)
        return published

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
            entries.append(_alarms_entry("alarms_returned", back, now, entry.by))
        if (
            entry.to_status == TicketStatus.IN_PROGRESS
            and ticket.status == TicketStatus.IN_PROGRESS
        ):
            out = self._out_of_service_list(ticket)
            if out:
                ticket.out_of_service = out
                entries.append(_alarms_entry("alarms_out_of_service", out, now, entry.by))
        if ticket.kind == "preventive" and entry.to_status in ("resolved", "cancelled"):
            plans = self._plan_done(ticket, entry.at, entry.by)
        if entries or plans:
            self.store.commit(Change(tickets=[(ticket, entries)], plans=plans), now)
        self._put_back(ticket, back)
        self._take_out(ticket, out)

    def _out_of_service_list(self, ticket: Ticket) -> list[str]:
        """The alarms work on `ticket` takes out of service now; sets `ticket.mute_until`."""
        if not self.out_of_service_while_working:
            return []
        if ticket.kind == "preventive" and not self._plan_mutes(ticket):
            return []
        now = self.clock()
        until = mutes.mute_until(ticket, now, self.mute_limit)
        alarms = self._alarms_to_take_out(ticket.device) if until is not None else []
        if alarms and until is not None and ticket.id is not None:
            ticket.mute_until = until
            self._mutes[ticket.id] = until
        return alarms

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
        ticket = self.store.get(_ticket_id(ticket_id))
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
        ticket = self.store.get(_ticket_id(ticket_id))
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
            entries.append(_alarms_entry("alarms_returned", back, now, by))
        if target == TicketStatus.IN_PROGRESS:
            out = self._out_of_service_list(ticket)
            if out:
                ticket.out_of_service = out
                entries.append(_alarms_entry("alarms_out_of_service", out, now, by))
        plans: dict[tuple[str, str], Any] = {}
        if ticket.kind == "preventive" and target in (
            TicketStatus.RESOLVED,
            TicketStatus.CANCELLED,
        ):
            plans = self._plan_done(ticket, now, by)
        self._commit(Change(tickets=[(ticket, entries)], plans=plans), now)
        self._put_back(ticket, back)
        self._take_out(ticket, out)
        assert ticket.id is not None
        return ticket.to_dict(now, self.store.timeline(ticket.id))

    def assets(self) -> list[dict[str, Any]]:
        """The equipment ledger (设备台账): asset record, warranty, meters, history and plans."""
        now = self.clock()
        today = local_date(now, self.zone)
        tickets = self.store.tickets()
        out = []
        for device in self.site.devices.values():
            mine = [t for t in tickets if t.device == device.id]
            out.append(
                {
                    "device": device.id,
                    "name": device.spec.name or device.id,
                    "template": device.template.id if device.template else None,
                    "asset": device.spec.asset.model_dump(mode="json"),
                    "warranty": _warranty(device.spec.asset.warranty_until, today),
                    "meters": self._ledger_meters(device.id),
                    "open_tickets": [t.to_dict(now) for t in mine if t.status in ACTIVE],
                    "history": [_history(t) for t in mine if t.resolved_at is not None],
                    "plans": self._ledger_plans(device.id, now),
                }
            )
        return out

    def _ledger_meters(self, device: str) -> dict[str, Any]:
        meters = {}
        for (dev, name), meter in self.meters.items():
            if dev != device:
                continue
            rate = meter.rate()
            meters[name] = {
                "value": meter.total,
                "unit": self.units.get((dev, name), ""),
                "source": meter.source,
                "per_day": rate * 86400.0 if rate is not None else None,
            }
        return meters

    def _ledger_plans(self, device: str, now: float) -> list[dict[str, Any]]:
        rows = []
        for (dev, plan_id), (spec, schedule) in self.plans.items():
            if dev != device:
                continue
            state = self.states[(dev, plan_id)]
            meter = self.meters.get((dev, schedule.meter)) if schedule.meter else None
            rate = meter.rate() if meter is not None else None
            due, why = planning.forecast(schedule, state, now, meter.total if meter else None, rate)
            rows.append(
                {
                    "id": plan_id,
                    "title": spec.title.in_locale(self.locale) if spec.title else plan_id,
                    "schedule": schedule.describe(),
                    "urgency": spec.urgency,
                    "next_due": iso(due),
                    "next_due_date": self._due_date(due),
                    "next_due_from": why,
                    "meter": schedule.meter,
                    "meter_value": meter.total if meter else None,
                    "meter_threshold": state.threshold,
                    "open_ticket": state.open_ticket,
                    "last_done_at": iso(state.last_done_at),
                    "last_done_by": state.last_done_by,
                }
            )
        return rows

    def _due_date(self, due: float | None) -> str | None:
        """The date something is due on: a due time at local midnight is the end of the day before."""
        if due is None:
            return None
        day = local_date(due, self.zone)
        if local_midnight(day, self.zone) == due:
            day -= timedelta(days=1)
        return day.isoformat()

    def _bad_value(self, reading: Reading) -> None:
        self.bad_values += 1
        if self.bad_values == 1:
            log.warning(
                "meter %s/%s: value %r is not a number; ignored (counted from now on)",
                reading.device,
                reading.point,
                reading.value,
            )


# ---------------------------------------------------------------------------------- helpers


def _targets(config: Any) -> dict[str, Target]:
    targets = dict(DEFAULT_TARGETS)
    for urgency, target in config.items():
        base = DEFAULT_TARGETS[urgency]
        targets[urgency] = Target(
            respond=target.respond if target.respond is not None else base.respond,
            resolve=target.resolve if target.resolve is not None else base.resolve,
        )
    return targets


def _modulus(point: Any) -> float | None:
    if not isinstance(point, ModbusPoint):
        return None
    bits = _BITS.get(point.value_type)
    return float(2**bits) * point.scale if bits else None


def _plan_key(device: str, plan: str) -> str:
    return f"plan:{device}/{plan}"


def _ticket_id(value: int | str) -> int:
    text = str(value).strip().lstrip("#")
    if not text.isdigit():
        raise KeyError(value)
    return int(text)


def _alarms_entry(action: str, alarm_ids: Sequence[str], at: float, by: str) -> TimelineEntry:
    what = "out of service for the work" if action == "alarms_out_of_service" else "back in service"
    return TimelineEntry(
        at=at,
        by=by,
        action=action,
        note=f"alarms {what}: {', '.join(alarm_ids)}",
        detail={"alarms": list(alarm_ids)},
    )


def _warranty(until: date | None, today: date) -> dict[str, Any]:
    if until is None:
        return {"until": None, "days_left": None, "expiring": False, "expired": False}
    days = (until - today).days
    return {
        "until": until.isoformat(),
        "days_left": days,
        "expiring": 0 <= days <= WARRANTY_NOTICE_DAYS,
        "expired": days < 0,
    }


def _history(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "kind": ticket.kind,
        "title": ticket.title,
        "status": str(ticket.status),
        "done_at": iso(ticket.resolved_at),
        "done_by": ticket.resolved_by,
        "assignee": ticket.assignee,
        "on_time": ticket.done_on_time(),
    }


def _event(row: StoredEntry) -> dict[str, Any]:
    entry = row.entry.to_dict()
    return {
        "type": "ticket",
        "action": entry.pop("action"),
        "id": row.ticket_id,
        "seq": row.seq,
        **entry,
        "ticket": row.snapshot,
    }


def build(context: ComponentContext, capabilities: Capabilities) -> Maintenance:
    """The `gateway.registry` factory; offers `maintenance` (the API's tickets and ledger)."""
    component = Maintenance(context)
    capabilities.maintenance = component
    return component
