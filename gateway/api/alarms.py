"""`/api/v1/alarms`: the alarm list, one alarm, its journal, and the operator actions on it.

Routes are `async def` on purpose: they touch the alarm book and the publisher, which live on the
gateway's event loop; a plain `def` route would run in a worker thread.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gateway.api.deps import gateway_of
from gateway.api.errors import ApiError
from gateway.api.security import Engineer, Viewer, note_audit
from gateway.api.sources import alarm_view, plain, sort_alarms
from gateway.service import Gateway

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
    gateway = gateway_of(request)
    alarms = gateway.book.all() if state == "all" else gateway.book.non_normal()
    views = [
        alarm_view(gateway, a.id)
        for a in alarms
        if (not priority or a.priority in priority) and (device is None or a.device == device)
    ]
    return {"alarms": sort_alarms(views), "count": len(views)}


@router.get("/{alarm_id}", summary="One alarm")
async def get_alarm(*, alarm_id: AlarmId, request: Request, _: Viewer) -> dict[str, Any]:
    return alarm_view(gateway_of(request), alarm_id)


@router.get("/{alarm_id}/journal", summary="Every transition of one alarm, oldest first")
async def alarm_journal(
    *,
    alarm_id: AlarmId,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    _: Viewer,
) -> dict[str, Any]:
    gateway = gateway_of(request)
    gateway.book.get(alarm_id)  # 404 for an unknown alarm
    rows = [_journal_row(e) for e in gateway.journal(alarm_id, limit)]
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
    gateway = gateway_of(request)
    note_audit(request, alarm_id, comment=body.comment)
    gateway.book.get(alarm_id)
    gateway.acknowledge(alarm_id, principal.name, body.comment)
    return alarm_view(gateway, alarm_id)


@router.post("/{alarm_id}/shelve", summary="Shelve for a time, with a reason (engineer)")
async def shelve(
    *,
    alarm_id: AlarmId,
    body: ShelveBody,
    request: Request,
    principal: Engineer,
) -> dict[str, Any]:
    gateway = gateway_of(request)
    note_audit(request, alarm_id, minutes=body.minutes, reason=body.reason)
    gateway.book.get(alarm_id)
    try:
        gateway.shelve(alarm_id, principal.name, body.minutes, body.reason)
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None
    return alarm_view(gateway, alarm_id)


@router.post("/{alarm_id}/unshelve", summary="Unshelve (engineer)")
async def unshelve(
    *,
    alarm_id: AlarmId,
    request: Request,
    body: UnshelveBody | None = None,
    principal: Engineer,
) -> dict[str, Any]:
    gateway: Gateway = gateway_of(request)
    note_audit(request, alarm_id, reason=body.reason if body else "")
    gateway.book.get(alarm_id)
    gateway.unshelve(alarm_id, principal.name)
    return alarm_view(gateway, alarm_id)
