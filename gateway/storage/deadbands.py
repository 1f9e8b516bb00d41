"""Each point's history deadband from the site: the point's own, the site's override, or the default.

Which wins, first to last: `history.deadband` of the site file keyed `device.point`, then keyed
`template.point`, then the point's `deadband:` (in its template or the device's own points), then
`default_deadband` from the point's type, scale and range (`history.deadband_percent` of its span).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.storage.deadband import default_deadband

if TYPE_CHECKING:
    from collections.abc import Callable

    from config.site import Site


def site_deadbands(site: Site) -> Callable[[str, str], float | None]:
    """The deadband of `(device, point)` for the site's points; 0 (every change) for others."""
    history = site.file.history
    overrides = history.deadband
    table: dict[tuple[str, str], float] = {}
    for device in site.devices.values():
        template = device.template.id if device.template is not None else None
        for name, point in device.points.items():
            band = overrides.get(f"{device.id}.{name}")
            if band is None and template is not None:
                band = overrides.get(f"{template}.{name}")
            if band is None:
                band = point.deadband
            if band is None:
                value_type = getattr(point, "value_type", point.type)
                band = default_deadband(
                    value_type, point.scale, point.range, history.deadband_percent
                )
            table[(device.id, name)] = band

    def deadband(device: str, point: str) -> float | None:
        return table.get((device, point), 0.0)

    return deadband
