"""`/api/v1/tickets`: the maintenance board — list, one ticket, raise one by hand, move one along.

Tickets belong to the maintenance component (`gateway.maintenance`); this module only translates.
Its refusals map by kind: an unknown id is 404, a transition the ticket workflow does not allow is
409, anything else it rejects as bad input is 422.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gateway.api.deps import gateway_of
from gateway.api.errors import ApiError
from gateway.api.security import Engineer, Viewer, note_audit
from gateway.api.sources import plain, require

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])

Status = Literal["open", "assigned", "in_progress", "resolved", "closed", "cancelled"]
Urgency = Literal["emergency", "urgent", "normal", "low"]
TicketId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class NewTicket(BaseModel):
    device: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=200)
    urgency: Urgency = "normal"
    note: str = Field(default="", max_length=2000)


class Transition(BaseModel):
    to: Status
    note: str = Field(default="", max_length=2000)
    assignee: str | None = Field(default=None, max_length=64)


def _maintenance(request: Request) -> Any:
    return require(gateway_of(request), "maintenance", "maintenance tickets")


def _refusal(exc: Exception) -> ApiError:
    """The maintenance component's exceptions as API errors, by kind (see the module docstring)."""
    name = type(exc).__name__.lower()
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if isinstance(exc, LookupError) or "unknown" in name or "notfound" in name:
        return ApiError(404, message or "no such ticket")
    if "refused" in name or "transition" in name or "conflict" in name:
        return ApiError(409, message or "this change is not allowed now")
    return ApiError(422, message or "invalid ticket request")


_REFUSALS = (LookupError, ValueError)


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except _REFUSALS as exc:
        raise _refusal(exc) from exc
    except Exception as exc:
        name = type(exc).__name__.lower()
        if any(word in name for word in ("refused", "unknown", "transition", "ticket")):
            raise _refusal(exc) from exc
        raise


@router.get("", summary="Tickets, by status and device")
async def list_tickets(
    *,
    request: Request,
    status: Annotated[list[Status] | None, Query()] = None,
    device: Annotated[str | None, Query(max_length=100)] = None,
    _: Viewer,
) -> dict[str, Any]:
    maintenance = _maintenance(request)
    if status:
        tickets = []
        for one in status:
            tickets.extend(plain(_call(maintenance.list_tickets, one, device)))
    else:
        tickets = plain(_call(maintenance.list_tickets, None, device))
    return {"tickets": tickets, "count": len(tickets)}


@router.get("/{ticket_id}", summary="One ticket with its notes and timeline")
async def get_ticket(*, ticket_id: TicketId, request: Request, _: Viewer) -> dict[str, Any]:
    ticket = _call(_maintenance(request).get_ticket, ticket_id)
    if ticket is None:
        raise ApiError(404, f"no ticket {ticket_id!r}")
    result: dict[str, Any] = plain(ticket)
    return result


@router.post("", status_code=201, summary="Raise a corrective ticket by hand (engineer)")
async def create_ticket(
    *, body: NewTicket, request: Request, principal: Engineer
) -> dict[str, Any]:
    gateway = gateway_of(request)
    note_audit(request, body.device, title=body.title, urgency=body.urgency)
    if body.device not in gateway.site.devices:
        raise ApiError(422, f"no device {body.device!r}")
    ticket = _call(
        _maintenance(request).create_ticket,
        body.device,
        body.title,
        body.urgency,
        principal.name,
        body.note,
    )
    result: dict[str, Any] = plain(ticket)
    return result


@router.post("/{ticket_id}/transition", summary="Move a ticket along, with a note (engineer)")
async def transition_ticket(
    *,
    ticket_id: TicketId,
    body: Transition,
    request: Request,
    principal: Engineer,
) -> dict[str, Any]:
    note_audit(request, ticket_id, to=body.to, assignee=body.assignee, note=body.note)
    ticket = _call(
        _maintenance(request).transition,
        ticket_id,
        body.to,
        principal.name,
        body.note,
        body.assignee,
    )
    result: dict[str, Any] = plain(ticket)
    return result
