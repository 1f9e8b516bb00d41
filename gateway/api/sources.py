"""What the API reads from the gateway, normalised — and what this gateway cannot give yet.

Drivers report their health in their own shapes (Modbus: `DeviceStats` objects; MQTT: dicts), and
some capabilities (tickets, history, shelving) arrive with their own components. The API never
invents data: a capability that is not on this gateway answers 503 with a clear message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from config.models import Text
from gateway.api.errors import ApiError
from rules.alarms import iso

if TYPE_CHECKING:
    from gateway.components import Capabilities, ComponentContext

T = TypeVar("T")

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def require(value: T | None, what: str) -> T:
    """The capability `value`, or a 503 saying it is not available here yet."""
    if value is None:
        raise ApiError(503, f"{what} is not available on this gateway yet")
    return value


def sort_alarms(alarms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Priority first; within it, waiting for acknowledgement first, then the newest first."""
    alarms = sorted(alarms, key=lambda a: (a.get("raised_at") or "", a["id"]), reverse=True)
    return sorted(
        alarms,
        key=lambda a: (
            PRIORITY_RANK.get(str(a.get("priority")), 9),
            0 if a.get("state") in ("active_unack", "rtn_unack") else 1,
        ),
    )


def plain(value: Any) -> Any:
    """A JSON-ready form of what a component returns: dataclass, mapping, or `payload()` object."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    for method in ("payload", "to_dict", "record"):
        if callable(getattr(value, method, None)):
            return plain(getattr(value, method)())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def alarm_view(ctx: ComponentContext, caps: Capabilities, alarm_id: str) -> dict[str, Any]:
    """The alarm's public payload plus what the console needs to offer the right actions."""
    alarm = ctx.alarms.get(alarm_id)
    view = alarm.payload()
    view.update(alarm_context(ctx, alarm.device, alarm.id))
    view["playbook"] = playbook_advice(ctx, caps, alarm.id, alarm.rule)
    view.update(
        {
            "shelvable": alarm.shelvable,
            "shelved_until": iso(alarm.shelved_until),
            "shelved_by": alarm.shelved_by,
            "shelve_reason": alarm.shelve_reason,
            "suppressed_by": alarm.suppressed_by or None,
            "condition_active": alarm.condition_active,
        }
    )
    return view


def alarm_context(ctx: ComponentContext, device_id: str, alarm_id: str) -> dict[str, Any]:
    """What the person on duty reads first: the device's name and place, and what to do, in
    both languages (`{"zh", "en"}`; a site file's "中文 / English" is split)."""
    try:
        advice = ctx.alarms.rule(alarm_id).advice
    except KeyError:
        advice = None
    return {**device_context(ctx, device_id), "advice": advice.model_dump() if advice else None}


def playbook_advice(
    ctx: ComponentContext, caps: Capabilities, alarm_id: str, rule: str
) -> dict[str, Any] | None:
    """What the playbook says to do now, for the alarm card's one "what to do" line.

    The open (real) incident this alarm belongs to, with its first step not done yet (`step` is
    None when all are done); else the first step of the first playbook this alarm would trigger;
    None when no playbook covers it (the card falls back to the rule's `advice`). Texts are
    `{"zh", "en"}`; `incident` is the incident's id or None.
    """
    incidents = caps.incidents
    for incident in incidents.open_incidents() if incidents is not None else []:
        if incident.drill or alarm_id not in incident.alarms:
            continue
        step = next((s for s in incident.steps if s.done_at is None), None)
        return {
            "id": incident.playbook,
            "title": {"zh": incident.title.zh, "en": incident.title.en},
            "incident": incident.id,
            "step": {"zh": step.text.zh, "en": step.text.en} if step else None,
        }
    for playbook in ctx.site.playbooks.values():
        if playbook.triggered_by(alarm_id, rule) and playbook.steps:
            first = playbook.steps[0].text
            return {
                "id": playbook.id,
                "title": {"zh": playbook.title.zh, "en": playbook.title.en},
                "incident": None,
                "step": {"zh": first.zh, "en": first.en},
            }
    return None


def device_context(ctx: ComponentContext, device_id: str) -> dict[str, Any]:
    """The device's name (site file `name`, else its id) and place (asset `location`, else None),
    each as `{"zh", "en"}` — for alarm and ticket cards alike."""
    device = ctx.site.devices.get(device_id)
    name = Text.split(device.spec.name or device_id) if device else Text.split(device_id)
    place = (
        Text.split(device.spec.asset.location) if device and device.spec.asset.location else None
    )
    return {"device_name": name.model_dump(), "location": place.model_dump() if place else None}


def _plain(stats: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    if isinstance(stats, Mapping):
        return dict(stats)
    return {}


def driver_stats(ctx: ComponentContext) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per device: (driver name, its counters as a plain dict)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, driver in ctx.status.drivers.items():
        try:
            stats = driver.stats()
        except Exception:  # one driver's broken counters must not hide the other devices
            continue
        for device, value in stats.items():
            out[device] = (name, _plain(value))
    return out


def device_health(
    ctx: ComponentContext, device_id: str, stats: Mapping[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """One shape for every driver: online, last_seen (ISO), polls, errors, last_poll_seconds."""
    driver, raw = stats.get(device_id, ("", {}))
    online = raw.get("online")
    if online is None:
        online = ctx.engine.online(device_id)
    last_seen = raw.get("last_seen")
    polls = raw.get("polls", raw.get("messages"))
    errors = raw.get("errors", raw.get("malformed"))
    last_error = raw.get("last_error")
    if last_error is None and raw.get("problems"):
        last_error = "; ".join(f"{k}: {v}" for k, v in dict(raw["problems"]).items())
    return {
        "driver": driver,
        "online": bool(online),
        "last_seen": iso(last_seen) if isinstance(last_seen, int | float) else None,
        "polls": int(polls) if isinstance(polls, int | float) else None,
        "errors": int(errors) if isinstance(errors, int | float) else None,
        "last_poll_seconds": raw.get("last_poll_seconds"),
        "last_error": last_error or None,
    }


def alarm_counts(ctx: ComponentContext, device_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alarm in ctx.alarms.all():
        if alarm.device == device_id and str(alarm.state) != "normal":
            counts[alarm.priority] = counts.get(alarm.priority, 0) + 1
    return counts


def site_health(ctx: ComponentContext, caps: Capabilities) -> dict[str, Any]:
    """The health monitor's report when the gateway has one; otherwise an honest minimum from
    driver stats."""
    if caps.health is not None:
        return dict(caps.health.report())
    stats = driver_stats(ctx)
    online = sum(1 for d in ctx.site.devices if device_health(ctx, d, stats)["online"])
    total = len(ctx.site.devices)
    publisher = ctx.status.publisher.stats()
    return {
        "status": "ok" if online == total and publisher.get("connected") else "degraded",
        "devices": total,
        "devices_online": online,
        "mqtt_connected": bool(publisher.get("connected")),
    }
