"""`/api/v1/tickets`: the maintenance board — list, one ticket, raise one by hand, move one along.

Tickets belong to the maintenance component (`gateway.maintenance`); this module only translates.
Its refusals map by kind: an unknown id (KeyError) is 404, a change the ticket lifecycle does not
allow now (`TicketTransitionRefused`) is 409, bad input (ValueError) is 422.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from gateway.api.deps import capabilities_of, context_of
from gateway.api.errors import ApiError
from gateway.api.security import Engineer, Viewer, note_audit
from gateway.api.sources import device_context, plain, require
from gateway.components import TicketDesk
from rules.maintenance.tickets import TicketTransitionRefused, board_order

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"])

Status = Literal["open", "assigned", "in_progress", "resolved", "closed", "cancelled"]
Urgency = Literal["emergency", "urgent", "normal", "low"]
TicketId = Annotated[int, Field(ge=1, le=2**62)]


class NewTicket(BaseModel):
    device: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=200)
    urgency: Urgency = "normal"
    note: str = Field(default="", max_length=2000)


class Transition(BaseModel):
    to: Status
    note: str = Field(default="", max_length=2000)
    assignee: str | None = Field(default=None, max_length=64)


def _maintenance(request: Request) -> TicketDesk:
    return require(capabilities_of(request).maintenance, "maintenance tickets")


def _view(request: Request, ticket: Any) -> dict[str, Any]:
    """The ticket as the maintenance component gives it, plus its device's name and location."""
    view: dict[str, Any] = plain(ticket)
    if isinstance(view, dict) and view.get("device"):
        view.update(device_context(context_of(request), str(view["device"])))
    return view


def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call into maintenance; its refusals become 404 (unknown id), 409 (not now), 422 (bad input)."""
    try:
        return function(*args, **kwargs)
    except KeyError as exc:
        raise ApiError(404, f"no ticket {exc.args[0] if exc.args else ''}".strip()) from None
    except TicketTransitionRefused as exc:
        raise ApiError(409, str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


@router.get("", summary="Tickets, most urgent first, then soonest due")
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
            tickets.extend(_call(maintenance.list_tickets, one, device))
    else:
        tickets = _call(maintenance.list_tickets, None, device)
    tickets = board_order([_view(request, t) for t in tickets])
    return {"tickets": tickets, "count": len(tickets)}


@router.get("/{ticket_id}", summary="One ticket with its notes and timeline")
async def get_ticket(*, ticket_id: TicketId, request: Request, _: Viewer) -> dict[str, Any]:
    ticket = _call(_maintenance(request).get_ticket, ticket_id)
    if ticket is None:
        raise ApiError(404, f"no ticket {ticket_id!r}")
    return _view(request, ticket)


@router.post("", status_code=201, summary="Raise a corrective ticket by hand (engineer)")
async def create_ticket(
    *, body: NewTicket, request: Request, principal: Engineer
) -> dict[str, Any]:
    ctx = context_of(request)
    note_audit(request, body.device, title=body.title, urgency=body.urgency)
    if body.device not in ctx.site.devices:
        raise ApiError(422, f"no device {body.device!r}")
    ticket = _call(
        _maintenance(request).create_ticket,
        body.device,
        body.title,
        body.urgency,
        principal.name,
        body.note,
    )
    return _view(request, ticket)


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
    return _view(request, ticket)
