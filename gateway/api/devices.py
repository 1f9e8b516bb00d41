"""`/api/v1/devices`, point history and the asset ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from config.site import Device
from gateway.api.deps import capabilities_of, context_of, live_of
from gateway.api.errors import ApiError
from gateway.api.security import Viewer
from gateway.api.sources import (
    alarm_counts,
    alarm_view,
    device_health,
    driver_stats,
    plain,
    require,
    sort_alarms,
)
from gateway.components import ComponentContext
from rules.alarms import iso

router = APIRouter(prefix="/api/v1", tags=["devices"])


def _device(ctx: ComponentContext, device_id: str) -> Device:
    device = ctx.site.devices.get(device_id)
    if device is None:
        raise ApiError(404, f"no device {device_id!r}")
    return device


def _summary(ctx: ComponentContext, device: Device, stats: Any) -> dict[str, Any]:
    spec = device.spec
    if spec.modbus is not None:
        connection = f"modbus {spec.modbus.bus} unit {spec.modbus.unit}"
    else:
        connection = f"mqtt {ctx.site.device_topic(device)}" if spec.mqtt else ""
    return {
        "id": device.id,
        "name": spec.name or device.id,
        "template": device.template.id if device.template else None,
        "connection": connection,
        "health": device_health(ctx, device.id, stats),
        "alarms": alarm_counts(ctx, device.id),
    }


@router.get("/devices", summary="Every device with its health", tags=["devices"])
async def list_devices(*, request: Request, _: Viewer) -> dict[str, Any]:
    ctx = context_of(request)
    stats = driver_stats(ctx)
    return {"devices": [_summary(ctx, d, stats) for d in ctx.site.devices.values()]}


@router.get("/devices/{device_id}", summary="One device: health, latest readings, alarms")
async def get_device(*, device_id: str, request: Request, _: Viewer) -> dict[str, Any]:
    ctx, live = context_of(request), live_of(request)
    device = _device(ctx, device_id)
    out = _summary(ctx, device, driver_stats(ctx))
    latest = live.latest.get(device.id, {})
    good = ctx.engine.values(device.id)
    points = []
    for name, point in device.points.items():
        seen = latest.get(name)
        if seen is not None:
            value, quality, ts = seen.value, seen.quality, iso(seen.ts)
        else:
            value, quality, ts = good.get(name), ("good" if name in good else None), None
        points.append(
            {
                "point": name,
                "title": point.title.model_dump() if point.title else None,
                "kind": point_kind(point),
                "value": value,
                "unit": point.unit,
                "quality": quality,
                "ts": ts,
            }
        )
    out["points"] = points
    out["asset"] = device.spec.asset.model_dump(mode="json")
    out["depends_on"] = list(device.spec.depends_on)
    out["active_alarms"] = sort_alarms(
        [
            alarm_view(ctx, capabilities_of(request), a.id)
            for a in ctx.alarms.non_normal()
            if a.device == device.id
        ]
    )
    return out


def point_kind(point: Any) -> str:
    """How a chart draws the point: `bool` and `text` as steps, `number` as a line."""
    if point.type == "bool" or getattr(point, "bit", None) is not None:
        return "bool"
    return "text" if point.type == "string" else "number"


def _parse_time(text: str | None, default: datetime, name: str) -> datetime:
    if text is None or text == "":
        return default
    try:
        if text.replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ApiError(
            422, f"{name}: not a time: use ISO 8601 (2026-11-03T08:00:00Z) or epoch seconds"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get(
    "/points/{device_id}/{point}/history",
    summary="Readings of one point over a time range (from the local history)",
)
async def point_history(
    *,
    device_id: str,
    point: str,
    request: Request,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    max_points: Annotated[int, Query(ge=2, le=5000)] = 500,
    _: Viewer,
) -> dict[str, Any]:
    device = _device(context_of(request), device_id)
    if point not in device.points:
        raise ApiError(404, f"device {device_id!r} has no point {point!r}")
    now = datetime.now(UTC)
    end = _parse_time(to, now, "to")
    start = _parse_time(from_, end - timedelta(hours=1), "from")
    if start >= end:
        raise ApiError(422, "from must be before to")
    history = require(capabilities_of(request).history, "the local history of readings")
    rows = history.query(device_id, point, start.timestamp(), end.timestamp(), max_points)
    return {
        "device": device_id,
        "point": point,
        "unit": device.points[point].unit,
        "from": iso(start.timestamp()),
        "to": iso(end.timestamp()),
        "points": [_sample(r) for r in rows],
    }


def _sample(row: Any) -> dict[str, Any]:
    """`{"t": ISO, "v": value, ...}` from whatever the history returns for one sample."""
    data = plain(row)
    if isinstance(data, list):
        t, v = data[0], data[1]
        extra: dict[str, Any] = {}
    else:
        t = data.get("t", data.get("ts", data.get("time")))
        v = data.get("v", data.get("value", data.get("mean")))
        extra = {k: data[k] for k in ("min", "max", "quality", "count") if k in data}
    return {"t": iso(t) if isinstance(t, int | float) else t, "v": v, **extra}


@router.get("/assets", summary="The equipment ledger (设备台账)", tags=["assets"])
async def list_assets(*, request: Request, _: Viewer) -> dict[str, Any]:
    """The site file's asset records, with what maintenance knows (run hours, last service) when
    maintenance runs on this gateway."""
    ctx = context_of(request)
    extra: dict[str, dict[str, Any]] = {}
    maintenance = capabilities_of(request).maintenance
    if maintenance is not None:
        for row in plain(maintenance.assets()) or []:
            if isinstance(row, dict) and "device" in row:
                extra[str(row["device"])] = row
    assets = []
    for device in ctx.site.devices.values():
        row = {
            "device": device.id,
            "name": device.spec.name or device.id,
            "template": device.template.id if device.template else None,
            **device.spec.asset.model_dump(mode="json"),
        }
        row.update({k: v for k, v in extra.get(device.id, {}).items() if v is not None})
        assets.append(row)
    return {"assets": assets}
