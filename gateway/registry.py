"""Every component kind, in one explicit table, in the order they are told things.

Adding a component is a class, a factory `build(context, capabilities) -> Component | None` in its
module, and a line here; never an edit of the core loop. A factory returns None when the site does
not use it, and sets its own field of `Capabilities` when it offers one.

The table names factories as `"module:function"`: a module is imported only when the site uses
its component (`wanted`), since an import is time before the first poll and memory for the life
of the process. No component module imports this one, so lazy imports close no cycle.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from config.site import Site
from gateway.components import Capabilities, Component, ComponentContext

Factory = Callable[[ComponentContext, Capabilities], Component | None]


def _always(site: Site) -> bool:
    return True


def _baseload_wanted(site: Site) -> bool:
    return any(d.spec.baseload_rise is not None for d in site.devices.values())


@dataclass(frozen=True, slots=True)
class Entry:
    factory: str
    """`"module:function"`, imported when `wanted(site)`."""
    wanted: Callable[[Site], bool] = _always
    """False: the module is not even imported (e.g. no `influx:` section)."""


COMPONENTS: tuple[Entry, ...] = (
    # the HTTP API and web console (gateway/api), on console.listen
    Entry("gateway.api.component:build"),
    # local history of readings (gateway/storage/history/)
    Entry("gateway.storage.history.component:build"),
    # InfluxDB export with a disk queue, when the site has `influx:`
    Entry("gateway.export.influx:build", lambda site: site.file.influx is not None),
    # samples progress for Gateway.health() (gateway/health.py)
    Entry("gateway.health:build"),
    # a low alarm while the storage wears (gateway/wear_alarm.py)
    Entry("gateway.wear_alarm:build"),
    # night baseload rise per opted-in energy meter (gateway/baseload_alarm.py, PRODUCT §11)
    Entry("gateway.baseload_alarm:build", lambda site: _baseload_wanted(site)),
    # READY/WATCHDOG/STOPPING to systemd when run with Type=notify
    Entry("gateway.sdnotify:build", lambda site: bool(os.environ.get("NOTIFY_SOCKET"))),
    # tickets, plans, meters; offers `maintenance` (PRODUCT §5)
    Entry("gateway.maintenance:build"),
    # alarm notifications and escalation (gateway/notify); no channels: no e-mail, no webhooks
    Entry("gateway.notify.component:build", lambda site: bool(site.file.notify.channels)),
    # playbooks, incidents and drills; offers `incidents` (PRODUCT §11)
    Entry("gateway.incidents:build"),
)


def resolve(entry: Entry) -> Factory:
    """The factory an entry names (imports its module)."""
    module, _, function = entry.factory.partition(":")
    factory: Factory = getattr(importlib.import_module(module), function)
    return factory


def build_components(context: ComponentContext, capabilities: Capabilities) -> list[Component]:
    """The site's components, in the table's order; each one's `stats` registered by its name."""
    components: list[Component] = []
    for entry in COMPONENTS:
        if not entry.wanted(context.site):
            continue
        component = resolve(entry)(context, capabilities)
        if component is None:
            continue
        components.append(component)
        if type(component).stats is not Component.stats:
            context.stats.register(component.name, component.stats)
    return components
