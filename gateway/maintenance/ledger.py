"""The equipment ledger (设备台账): per device its asset record, warranty, live meters, open
tickets, service history and plans with their next due date."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from config.models import PlanSpec
from config.site import Site
from gateway.maintenance.meters import MeterBoard
from rules.maintenance import plans as planning
from rules.maintenance.calendar import iso, local_date, local_midnight
from rules.maintenance.tickets import ACTIVE, Ticket

WARRANTY_NOTICE_DAYS = 60
"""A warranty ending within this many days is `expiring`."""

PlanKey = tuple[str, str]
"""(device, plan id)"""


def assets(
    site: Site,
    tickets: Sequence[Ticket],
    meters: MeterBoard,
    plans: Mapping[PlanKey, tuple[PlanSpec, planning.Schedule]],
    states: Mapping[PlanKey, planning.PlanState],
    *,
    zone: ZoneInfo,
    locale: str,
    now: float,
) -> list[dict[str, Any]]:
    """Every device's ledger row, in the site file's order."""
    today = local_date(now, zone)
    out = []
    for device in site.devices.values():
        mine = [t for t in tickets if t.device == device.id]
        out.append(
            {
                "device": device.id,
                "name": device.spec.name or device.id,
                "template": device.template.id if device.template else None,
                "asset": device.spec.asset.model_dump(mode="json"),
                "warranty": _warranty(device.spec.asset.warranty_until, today),
                "meters": meters.ledger(device.id),
                "open_tickets": [t.to_dict(now) for t in mine if t.status in ACTIVE],
                "history": [_history(t) for t in mine if t.resolved_at is not None],
                "plans": _plans(device.id, meters, plans, states, zone, locale, now),
            }
        )
    return out


def _plans(
    device: str,
    meters: MeterBoard,
    plans: Mapping[PlanKey, tuple[PlanSpec, planning.Schedule]],
    states: Mapping[PlanKey, planning.PlanState],
    zone: ZoneInfo,
    locale: str,
    now: float,
) -> list[dict[str, Any]]:
    rows = []
    for (dev, plan_id), (spec, schedule) in plans.items():
        if dev != device:
            continue
        state = states[(dev, plan_id)]
        meter = meters.meters.get((dev, schedule.meter)) if schedule.meter else None
        rate = meter.rate() if meter is not None else None
        due, why = planning.forecast(schedule, state, now, meter.total if meter else None, rate)
        rows.append(
            {
                "id": plan_id,
                "title": spec.title.in_locale(locale) if spec.title else plan_id,
                "schedule": schedule.describe(),
                "urgency": spec.urgency,
                "next_due": iso(due),
                "next_due_date": _due_date(due, zone),
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


def _due_date(due: float | None, zone: ZoneInfo) -> str | None:
    """The date something is due on: a due time at local midnight is the end of the day before."""
    if due is None:
        return None
    day = local_date(due, zone)
    if local_midnight(day, zone) == due:
        day -= timedelta(days=1)
    return day.isoformat()


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
