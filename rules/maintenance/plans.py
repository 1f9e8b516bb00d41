"""Maintenance plans: when work falls due, when its ticket opens, and what comes next.

A plan says when work is *due*, by calendar (`every: 15d`, `every: 1mo`, `cron:`), by meter
(`every_run_hours: 2000`, `every_count: {point, step}`), or both — whichever comes first.

- Calendar: `every:` is due at the end of the day (site time) one period after the last
  completion (first time: after the gateway first saw the plan); `cron:` is due at each fire time.
  The ticket opens `lead` earlier (default: a fifth of the period, at most three days), so the team
  can schedule the work; its due time is the plan's.
- Meter: due when the meter reaches its threshold — the next multiple of the step above the meter
  when the plan was first seen, then the meter at completion plus one step. The ticket opens then
  and is due `window` later (default seven days).
- One active ticket per plan and device: while it is open, the plan waits. Resolving (or
  cancelling) the ticket moves the plan on from that moment.

Pure code on epoch seconds and a `ZoneInfo`; `PlanState.record()` is what storage keeps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ground.cron import Cron
from rules.maintenance.calendar import DAY, Period, end_of_day, iso, local_date, wall_minus

MAX_LEAD = 3 * DAY
DEFAULT_WINDOW = 7 * DAY


class PlanLike(Protocol):
    """What scheduling reads from a plan (`config.models.PlanSpec` has it)."""

    id: str
    every: str | None
    cron: str | None
    every_run_hours: float | None
    urgency: str


@dataclass(frozen=True)
class Schedule:
    """A plan's triggers, parsed once.

    Args:
        meter: the meter a meter trigger counts (`run_hours` or the `every_count` point).
        step: the meter step, in the meter's unit.
        lead: seconds a calendar ticket opens before it is due (None: the default).
        window: seconds a meter ticket has from opening to due.
    """

    plan: str
    period: Period | None = None
    cron: Cron | None = None
    meter: str | None = None
    step: float | None = None
    lead: float | None = None
    window: float = DEFAULT_WINDOW

    @classmethod
    def from_spec(cls, spec: Any) -> Schedule:
        meter, step = None, None
        if spec.every_run_hours is not None:
            meter, step = "run_hours", float(spec.every_run_hours)
        elif getattr(spec, "every_count", None) is not None:
            meter, step = spec.every_count.point, float(spec.every_count.step)
        window = getattr(spec, "window", None)
        return cls(
            plan=spec.id,
            period=Period.parse(spec.every) if spec.every else None,
            cron=Cron.parse(spec.cron) if spec.cron else None,
            meter=meter,
            step=step,
            lead=getattr(spec, "lead", None),
            window=DEFAULT_WINDOW if window is None else float(window),
        )

    @property
    def has_calendar(self) -> bool:
        return self.period is not None or self.cron is not None

    def describe(self) -> str:
        parts = []
        if self.period:
            parts.append(f"every {self.period}")
        if self.cron:
            parts.append(f"cron {self.cron.text}")
        if self.meter:
            parts.append(f"every {self.step:g} {self.meter}")
        return " or ".join(parts) + (" (whichever first)" if len(parts) > 1 else "")

    # ------------------------------------------------------------------ calendar

    def calendar_due_after(self, instant: float, zone: ZoneInfo) -> float | None:
        """The next calendar due time counted from `instant` (a completion, or the first sight)."""
        if self.period is not None:
            return end_of_day(self.period.add_to(local_date(instant, zone)), zone)
        if self.cron is not None:
            start = datetime.fromtimestamp(instant, zone)
            return self.cron.next_after(start, zone).timestamp()
        return None

    def lead_for(self, due: float, zone: ZoneInfo) -> float:
        if self.lead is not None:
            return self.lead
        if self.period is not None:
            length = self.period.approx_seconds
        elif self.cron is not None:
            after = self.cron.next_after(datetime.fromtimestamp(due, zone), zone).timestamp()
            length = after - due
        else:
            return 0.0
        return min(MAX_LEAD, length / 5)

    def open_at(self, due: float, zone: ZoneInfo) -> float:
        """When a calendar ticket due at `due` opens (on the wall clock: DST-proof days)."""
        return _open_at(self, due, zone)


@functools.lru_cache(maxsize=4096)
def _open_at(schedule: Schedule, due: float, zone: ZoneInfo) -> float:
    """Cached: meter plans with a calendar side are checked on every reading batch, and a cron's
    lead needs the fire after `due`."""
    return wall_minus(due, schedule.lead_for(due, zone), zone)


@dataclass
class PlanState:
    """What a plan remembers for one device between restarts."""

    started_at: float
    calendar_due: float | None = None
    threshold: float | None = None
    open_ticket: int | None = None
    last_done_at: float | None = None
    last_done_by: str | None = None
    last_ticket: int | None = None
    last_outcome: str | None = None  # resolved or cancelled

    def record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PlanState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


@dataclass(frozen=True, slots=True)
class Trigger:
    """A plan falls due now: open a ticket due at `due`."""

    reason: str  # calendar or meter
    due: float
    meter: float | None = None
    detail: str = ""


def start(schedule: Schedule, now: float, zone: ZoneInfo, meter: float | None) -> PlanState:
    """The state of a plan seen for the first time."""
    state = PlanState(started_at=now, calendar_due=schedule.calendar_due_after(now, zone))
    align_threshold(schedule, state, meter)
    return state


def align_threshold(schedule: Schedule, state: PlanState, meter: float | None) -> bool:
    """Give a meter plan its first threshold once the meter is known; True if it changed."""
    if schedule.step is None or state.threshold is not None or meter is None:
        return False
    state.threshold = (math.floor(meter / schedule.step) + 1) * schedule.step
    return True


def check(
    schedule: Schedule, state: PlanState, now: float, zone: ZoneInfo, meter: float | None
) -> Trigger | None:
    """The trigger that opens a ticket now, if any (never while one is open)."""
    if state.open_ticket is not None:
        return None
    align_threshold(schedule, state, meter)
    calendar_due = state.calendar_due
    if calendar_due is not None and now >= schedule.open_at(calendar_due, zone):
        return Trigger(
            reason="calendar",
            due=calendar_due,
            meter=meter,
            detail=f"due {iso(calendar_due)} ({schedule.describe()})",
        )
    if state.threshold is not None and meter is not None and meter >= state.threshold:
        due = now + schedule.window
        if calendar_due is not None:
            due = min(due, calendar_due)
        return Trigger(
            reason="meter",
            due=due,
            meter=meter,
            detail=f"{schedule.meter} {meter:g} reached {state.threshold:g}",
        )
    return None


def opened(state: PlanState, ticket_id: int) -> None:
    state.open_ticket = ticket_id


def complete(
    schedule: Schedule,
    state: PlanState,
    at: float,
    zone: ZoneInfo,
    meter: float | None,
    by: str,
    outcome: str,
) -> None:
    """The plan's ticket was resolved or cancelled at `at`: schedule the next time."""
    state.last_ticket, state.open_ticket = state.open_ticket, None
    state.last_done_at, state.last_done_by, state.last_outcome = at, by, outcome
    if schedule.period is not None:
        state.calendar_due = schedule.calendar_due_after(at, zone)
    elif schedule.cron is not None:
        # a fixed schedule: the next fire after the previous due time, skipping any missed meanwhile
        base = max(at, state.calendar_due or at)
        state.calendar_due = schedule.calendar_due_after(base, zone)
    if schedule.step is not None:
        if meter is not None:
            state.threshold = meter + schedule.step
        elif state.threshold is not None:
            state.threshold += schedule.step


def forecast(
    schedule: Schedule,
    state: PlanState,
    now: float,
    meter: float | None,
    rate: float | None,
) -> tuple[float | None, str]:
    """The next due time of a plan, and why: the calendar, or the meter at its recent rate.

    `rate` is the meter's recent rate (units per second); without it a meter plan has no forecast.
    """
    candidates: list[tuple[float, str]] = []
    if state.calendar_due is not None:
        candidates.append((state.calendar_due, "calendar"))
    if state.threshold is not None and meter is not None:
        if meter >= state.threshold:
            candidates.append((now, "meter"))
        elif rate:
            candidates.append((now + (state.threshold - meter) / rate, "meter forecast"))
    if not candidates:
        return None, "unknown"
    due, why = min(candidates)
    return due, why


def days_until(instant: float | None, now: float) -> float | None:
    if instant is None:
        return None
    return (instant - now) / timedelta(days=1).total_seconds()
