"""`/api/v1/alarms`: the alarm list, one alarm, its journal, and the operator actions on it.

Routes are `async def` on purpose: they touch the alarm book and the publisher, which live on the
gateway's event loop; a plain `def` route would run in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gateway.api.deps import capabilities_of, context_of
from gateway.api.errors import ApiError
from gateway.api.security import Engineer, Viewer, note_audit
from gateway.api.sources import alarm_view, plain, sort_alarms

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])

AlarmId = Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]
Priority = Literal["critical", "high", "medium", "low"]


class AckBody(BaseModel):
    comment: str = Field(default="", max_length=500, description="why, or what was done")


class ShelveBody(BaseModel):
    minutes: int = Field(ge=1, le=7 * 24 * 60, description="how long, at most a week")
    reason: str = Field(min_length=1, max_length=500)


class UnshelveBody(BaseModel):
    reason: str = Field(default="", max_length=500)


@router.get("", summary="Alarms, sorted by priority and time")
async def list_alarms(
    *,
    request: Request,
    state: Literal["active", "all"] = "active",
    priority: Annotated[list[Priority] | None, Query()] = None,
    device: Annotated[str | None, Query(max_length=100)] = None,
    _: Viewer,
) -> dict[str, Any]:
    """`active`: every alarm not `normal` (shelved and suppressed ones included, shown as such)."""
    ctx, caps = context_of(request), capabilities_of(request)
    alarms = ctx.alarms.all() if state == "all" else ctx.alarms.non_normal()
    views = [
        alarm_view(ctx, caps, a.id)
        for a in alarms
        if (not priority or a.priority in priority) and (device is None or a.device == device)
    ]
    return {"alarms": sort_alarms(views), "count": len(views)}


@router.get("/{alarm_id}", summary="One alarm")
async def get_alarm(*, alarm_id: AlarmId, request: Request, _: Viewer) -> dict[str, Any]:
    return alarm_view(context_of(request), capabilities_of(request), alarm_id)


@router.get("/{alarm_id}/journal", summary="Every transition of one alarm, oldest first")
async def alarm_journal(
    *,
    alarm_id: AlarmId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    _: Viewer,
) -> dict[str, Any]:
    ctx = context_of(request)
    ctx.alarms.get(alarm_id)  # 404 for an unknown alarm
    rows = [_journal_row(e) for e in ctx.commands.journal(alarm_id, limit)]
    return {"alarm": alarm_id, "journal": rows}


def _journal_row(entry: Any) -> dict[str, Any]:
    """One journal row; `from_state`/`to_state` also as `from`/`to`, as on `P/events`."""
    row: dict[str, Any] = plain(entry)
    row.setdefault("from_state", row.get("from"))
    row.setdefault("to_state", row.get("to"))
    row.setdefault("from", row["from_state"])
    row.setdefault("to", row["to_state"])
    return row


@router.post("/{alarm_id}/ack", summary="Acknowledge (engineer)")
async def acknowledge(
    *,
    alarm_id: AlarmId,
    body: AckBody,
    request: Request,
    principal: Engineer,
) -> dict[str, Any]:
    ctx = context_of(request)
    note_audit(request, alarm_id, comment=body.comment)
    ctx.alarms.get(alarm_id)
    ctx.commands.acknowledge(alarm_id, principal.name, body.comment)
    return alarm_view(ctx, capabilities_of(request), alarm_id)


@router.post("/{alarm_id}/shelve", summary="Shelve for a time, with a reason (engineer)")
async def shelve(
    *,
    alarm_id: AlarmId,
    body: ShelveBody,
    request: Request,
    principal: Engineer,
) -> dict[str, Any]:
    ctx = context_of(request)
    note_audit(request, alarm_id, minutes=body.minutes, reason=body.reason)
    ctx.alarms.get(alarm_id)
    try:
        ctx.commands.shelve(alarm_id, principal.name, body.minutes, body.reason)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    return alarm_view(ctx, capabilities_of(request), alarm_id)


@router.post("/{alarm_id}/unshelve", summary="Unshelve (engineer)")
async def unshelve(
    *,
    alarm_id: AlarmId,
    request: Request,
    body: UnshelveBody | None = None,
    principal: Engineer,
) -> dict[str, Any]:
    ctx = context_of(request)
    note_audit(request, alarm_id, reason=body.reason if body else "")
    ctx.alarms.get(alarm_id)
    ctx.commands.unshelve(alarm_id, principal.name)
    return alarm_view(ctx, capabilities_of(request), alarm_id)
