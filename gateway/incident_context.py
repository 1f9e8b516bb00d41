"""What only the gateway knows when an incident opens (PRODUCT §11), from the site and latest values.

Pure functions over the site and a `values(device)` lookup (the rule engine's latest good values):

- `power_outage`: every lift (and pump) fed by the tripped supply, directly or through another
  device's `depends_on`, with its state at the trip — the cars that were moving or occupied first,
  so the technician goes to the right car first.
- `fire`: every zone in alarm (1-based zone numbers from the panel's `zones` bits) and whether the
  fire pump is ready.
- `lift_entrapment`: the floor, whether the car is occupied, doors and alarm button.
- others: the trigger device's latest values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from config.site import Device, Site

Values = Callable[[str], Mapping[str, Any]]

LIFT_FIELDS = ("floor", "moving", "door_open", "occupied", "in_service", "alarm_button")


def context_for(site: Site, values: Values, playbook: str, device: str | None) -> dict[str, Any]:
    """The context of an incident of `playbook` triggered by (or drilled on) `device`."""
    if device is None or device not in site.devices:
        return {}
    name = site.devices[device].spec.name or device
    if playbook == "power_outage":
        return {"supply": device, "supply_name": name, **fed_by(site, values, device)}
    if playbook == "fire":
        return {"panel": device, **fire_state(values(device))}
    if playbook == "lift_entrapment":
        return {"lift": device, "lift_name": name, **lift_state(values(device))}
    return {"device": device, "device_name": name, "values": dict(values(device))}


def lift_state(v: Mapping[str, Any]) -> dict[str, Any]:
    state = {k: v.get(k) for k in LIFT_FIELDS}
    state["doors_shut"] = None if v.get("door_open") is None else not v.get("door_open")
    return state


def fire_state(v: Mapping[str, Any]) -> dict[str, Any]:
    bits = v.get("zones")
    zones = [] if not isinstance(bits, int | float) else zones_of(int(bits))
    return {"zones": zones, "fire_pump_ready": v.get("fire_pump_ready")}


def zones_of(bits: int) -> list[int]:
    """`zones` register bits to zone numbers: bit N-1 is zone N."""
    return [n + 1 for n in range(16) if bits >> n & 1]


def fed_by(site: Site, values: Values, supply: str) -> dict[str, Any]:
    """Lifts and pumps whose supply chain reaches `supply`, each with its state now."""
    lifts: list[dict[str, Any]] = []
    pumps: list[dict[str, Any]] = []
    for device in site.devices.values():
        if device.id == supply or not _depends(site, device, supply):
            continue
        kind = device.template.id if device.template else ""
        v = values(device.id)
        entry = {"device": device.id, "name": device.spec.name or device.id}
        if kind == "lift":
            lifts.append({**entry, **lift_state(v)})
        elif kind == "booster_pump":
            pumps.append({**entry, "running": v.get("running")})
    # the cars to visit first: moving at the trip, then occupied, then the rest
    lifts.sort(key=lambda lift: (not lift.get("moving"), not lift.get("occupied"), lift["device"]))
    return {"lifts": lifts, "pumps": pumps}


def _depends(site: Site, device: Device, supply: str) -> bool:
    seen: set[str] = set()
    stack = list(device.spec.depends_on)
    while stack:
        other = stack.pop()
        if other == supply:
            return True
        if other in seen or other not in site.devices:
            continue
        seen.add(other)
        stack.extend(site.devices[other].spec.depends_on)
    return False
