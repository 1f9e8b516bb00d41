"""Checking `history.deadband` of a site file against its devices and the built-in templates.

A key is `device.point` or `template.point` (`gateway.storage.deadbands` applies them in that
order); its shape and value are checked by the model (`HistoryConfig`). Here, with the devices
resolved: the name must be a device of the site or a known template, the point one of its points,
and the point a number — a bool moves by 1, so a deadband of 1 or more would hide its every
change from the history (a fire flag among them), and a text has no distance at all. A device's
own `points:` with `deadband:` are held to the same rule. Every problem goes through the
resolver's `error` (or `warn`) callback, located at the key, so it carries the file and line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

from config.errors import Loc
from config.models import DeviceSpec, PointBase
from config.templates import load_template, template_names

Report = Callable[[Loc, str], None]


def point_kind(point: PointBase) -> str:
    """The decoded value's type: a Modbus point's picked bit is a bool."""
    return str(getattr(point, "value_type", point.type))


def check_deadband_overrides(
    overrides: Mapping[str, float],
    devices: Mapping[str, Mapping[str, PointBase]],
    device_templates: Mapping[str, str | None],
    error: Report,
    warn: Report,
) -> None:
    """Report every `history.deadband` key that names nothing, or a point it cannot apply to.

    Args:
        overrides: `history.deadband` as validated by the model.
        devices: device id -> its resolved points (template's and its own).
        device_templates: device id -> its template id (None without one).
        error: called with the key's location and the message of an error.
        warn: the same for what is allowed but applies to nothing, or twice.
    """
    if not overrides:
        return
    used = {t for t in device_templates.values() if t is not None}
    templates = template_names()
    for key in overrides:
        loc: Loc = ("history", "deadband", key)
        name, point_name = key.split(".", 1)
        owners: list[tuple[str, Mapping[str, PointBase]]] = []
        if name in devices:
            owners.append((name, devices[name]))
        if name in templates:
            owners.append((f"template {name}", _template_points(name, devices, device_templates)))
            if name not in used:
                warn(loc, f"no device of this site uses template {name}: it applies to nothing")
        if not owners:
            known = [*devices, *templates]
            error(loc, f"no device or template {name!r}{_did_you_mean(name, known)}")
            continue
        if len(owners) == 2:
            warn(loc, f"{name!r} is a device and a template: the deadband applies to both")
        for owner, owned in owners:
            point = owned.get(point_name)
            if point is None:
                hint = _did_you_mean(point_name, list(owned))
                error(loc, f"{owner} has no point {point_name!r}{hint}")
            elif (kind := point_kind(point)) in ("bool", "string"):
                error(loc, _not_a_number(point_name, kind))


def check_point_deadbands(specs: Sequence[DeviceSpec], error: Report) -> None:
    """A device's own points: `deadband:` only on numbers (the same reason as above)."""
    for i, spec in enumerate(specs):
        for name, point in spec.points.items():
            if point.deadband is not None and (kind := point_kind(point)) in ("bool", "string"):
                error(("devices", i, "points", name, "deadband"), _not_a_number(name, kind))


def _template_points(
    name: str,
    devices: Mapping[str, Mapping[str, PointBase]],
    device_templates: Mapping[str, str | None],
) -> dict[str, PointBase]:
    """What `template.point` may name: the template's points, and the points the site's devices
    of that template add (the override reaches them too)."""
    points: dict[str, PointBase] = dict(load_template(name).points)
    for device, template in device_templates.items():
        if template == name:
            for point, spec in devices[device].items():
                points.setdefault(point, spec)
    return points


def _not_a_number(point: str, kind: str) -> str:
    return f"{point} is a {kind} point: every change of it is stored; a deadband is for numbers"


def _did_you_mean(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
