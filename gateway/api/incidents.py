"""`/api/v1/incidents` and `/api/v1/drills` (PRODUCT §11): incidents, their steps, drills.

Incidents belong to the incidents component (`gateway.incidents`); this module only translates.
Refusals map by kind: an unknown id (KeyError) is 404, a change the incident does not allow now
(`IncidentRefused`: closed, done already, trigger still active) is 409, bad input is 422.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gateway.api.deps import capabilities_of
from gateway.api.errors import ApiError
from gateway.api.security import Engineer, Viewer, note_audit
from gateway.api.sources import require
from gateway.components import IncidentDesk
from rules.incidents import IncidentRefused

router = APIRouter(tags=["incidents"])

IncidentId = Annotated[int, Field(ge=1, le=2**62)]
StepId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]


class StepDone(BaseModel):
    done: Literal[True] = True
    note: str = Field(default="", max_length=2000)


class Close(BaseModel):
    cause: str = Field(min_length=1, max_length=2000)


class NewDrill(BaseModel):
    playbook: str = Field(min_length=1, max_length=64)
    device: str | None = Field(default=None, max_length=100)


def _incidents(request: Request) -> IncidentDesk:
    return require(capabilities_of(request).incidents, "incidents")


def _call(what: str, function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except KeyError as exc:
        raise ApiError(404, f"no {what} {exc.args[0] if exc.args else ''}".strip()) from None
    except IncidentRefused as exc:
        raise ApiError(409, str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, str(exc)) from None


@router.get("/api/v1/incidents", summary="Incidents: open ones first, drills after real ones")
async def list_incidents(
    *, request: Request, state: Literal["open", "all"] = "open", _: Viewer
) -> dict[str, Any]:
    incidents = _incidents(request).listing(state)
    return {"incidents": incidents, "count": len(incidents)}


@router.get("/api/v1/incidents/{incident_id}", summary="One incident with its journal")
async def get_incident(*, incident_id: IncidentId, request: Request, _: Viewer) -> dict[str, Any]:
    result: dict[str, Any] = _call("incident", _incidents(request).get, incident_id)
    return result


@router.post("/api/v1/incidents/{incident_id}/steps/{step}", summary="Tick a step done (engineer)")
async def step_done(
    *,
    incident_id: IncidentId,
    step: StepId,
    body: StepDone,
    request: Request,
    principal: Engineer,
) -> dict[str, Any]:
    note_audit(request, f"{incident_id}/{step}", note=body.note)
    result: dict[str, Any] = _call(
        "step", _incidents(request).complete_step, incident_id, step, principal.name, body.note
    )
    return result


@router.post("/api/v1/incidents/{incident_id}/close", summary="Close with a cause (engineer)")
async def close_incident(
    *, incident_id: IncidentId, body: Close, request: Request, principal: Engineer
) -> dict[str, Any]:
    note_audit(request, incident_id, cause=body.cause)
    result: dict[str, Any] = _call(
        "incident", _incidents(request).close_incident, incident_id, principal.name, body.cause
    )
    return result


@router.post("/api/v1/drills", status_code=201, summary="Open a drill incident (engineer)")
async def open_drill(*, body: NewDrill, request: Request, principal: Engineer) -> dict[str, Any]:
    note_audit(request, body.playbook, device=body.device)
    result: dict[str, Any] = _call(
        "playbook", _incidents(request).drill, body.playbook, body.device, principal.name
    )
    return result
