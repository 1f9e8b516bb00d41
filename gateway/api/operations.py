"""`/api/v1/energy?month=YYYY-MM` and `/api/v1/handover?since=12h` (PRODUCT §11), read-only.

Both answer from the gateway's own stores; the energy month runs in a worker thread (a month of
minute aggregates per meter), so the event loop keeps serving alarms meanwhile.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from gateway.api.deps import capabilities_of, context_of
from gateway.api.errors import ApiError
from gateway.api.security import Viewer
from gateway.reports.energy import energy_report, parse_month
from gateway.reports.handover import shift_report
from ground.durations import parse_duration

router = APIRouter(tags=["operations"])

MAX_SHIFT_SECONDS = 7 * 86400.0


@router.get("/api/v1/energy", summary="Energy per meter: kWh per day, peak, night baseload")
async def energy(
    *,
    request: Request,
    month: Annotated[str | None, Query(max_length=7)] = None,
    _: Viewer,
) -> dict[str, Any]:
    ctx = context_of(request)
    if month is None:
        now = datetime.fromtimestamp(ctx.clock.wall(), ZoneInfo(ctx.site.file.site.timezone))
        month = f"{now.year:04d}-{now.month:02d}"
    try:
        parsed = parse_month(month)
    except ValueError as exc:
        raise ApiError(422, f"month: {exc}") from None
    return await asyncio.to_thread(
        energy_report, ctx.site, parsed, capabilities_of(request).history, ctx.clock.wall()
    )


@router.get("/api/v1/handover", summary="Shift handover: what the next shift must know")
async def handover(
    *,
    request: Request,
    since: Annotated[str, Query(max_length=16)] = "12h",
    _: Viewer,
) -> dict[str, Any]:
    ctx = context_of(request)
    try:
        span = parse_duration(since)
    except ValueError as exc:
        raise ApiError(422, f"since: {exc}") from None
    if not 0 < span <= MAX_SHIFT_SECONDS:
        raise ApiError(422, "since: between 1s and 7d")
    return shift_report(ctx.site, span, ctx.clock.wall(), db=ctx.db)
