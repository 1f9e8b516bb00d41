"""Parts of the service that listen to what flows through it, registered in one explicit table.

The gateway's core path is fixed: drivers -> rule engine -> alarm book -> alarm store -> MQTT. Every
other capability — history, export, tickets, notifications, the console — is a *component* that is
told about readings, alarm transitions and the passing of time, and may run a background task. Adding
one is a class and a line in `COMPONENTS`, never an edit of the core loop.

Each factory imports its component's module only when the site uses it: a module import is time
before the first poll and memory for the life of the process.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ground.model import DeviceStatus, Reading

if TYPE_CHECKING:
    from gateway.service import Gateway
    from rules.alarms import AlarmTransition


class Component:
    """Base class with do-nothing hooks; override what the component needs.

    Hooks run on the gateway's event loop in the order things happened, so they must not block:
    queue slow work and do it in `run()`.
    """

    name: str = "component"

    def on_readings(self, batch: Sequence[Reading]) -> None:
        """A batch of readings, after the rule engine has seen it."""

    def on_status(self, status: DeviceStatus) -> None:
        """A device's communication changed."""

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        """Alarm transitions, after they were committed to the journal and queued for MQTT — for
        transitions of readings, once the broker acknowledged them (or 50 ms at most): a hook's own
        work, such as a ticket's commit, does not delay the alarm. Hooks still come in the order
        things happened: readings and statuses that arrived meanwhile are told after them."""

    def on_tick(self, wall: float, monotonic: float) -> None:
        """About four times a second: for timers of the component's own."""

    def before_commit(self, transitions: Sequence[AlarmTransition]) -> None:
        """Transitions about to be journaled: stage what must be in their transaction (`stage`).
        Only components that override `stage` are asked; must not raise nor block."""

    def stage(self, db: sqlite3.Connection) -> None:
        """Write what is staged inside the journal's transaction (on the store's connection)."""

    def staged(self) -> None:
        """The transaction `stage` wrote into committed (not called when it rolled back)."""

    async def run(self) -> None:
        """A background task (the default has none and returns at once)."""

    async def close(self) -> None:
        """Flush and release, before the publisher says `offline` and storage closes."""


ComponentFactory = Callable[["Gateway"], Component | None]

COMPONENTS: list[ComponentFactory] = []
"""Every component kind, in the order they are told things. A factory returns None when the site
does not use it (e.g. no `influx:` section)."""


def _console(gateway: Gateway) -> Component | None:
    from gateway.api.component import build

    return build(gateway)


COMPONENTS.append(_console)  # the HTTP API and web console (gateway/api), on console.listen


def _history(gateway: Gateway) -> Component | None:
    from gateway.storage.history import history_component

    return history_component(gateway)


COMPONENTS.append(_history)  # local history of readings (gateway/storage/history.py)


def _influx(gateway: Gateway) -> Component | None:
    if gateway.site.file.influx is None:
        return None  # decided before the import: the exporter's module is not loaded for nothing
    from gateway.export.influx import influx_component

    return influx_component(gateway)


COMPONENTS.append(_influx)  # InfluxDB export with a disk queue, when the site has `influx:`


def _health(gateway: Gateway) -> Component | None:
    from gateway.health import health_component

    return health_component(gateway)


COMPONENTS.append(_health)  # samples progress for Gateway.health() (gateway/health.py)


def _wear_alarm(gateway: Gateway) -> Component | None:
    from gateway.wear_alarm import wear_alarm_component

    return wear_alarm_component(gateway)


COMPONENTS.append(_wear_alarm)  # a low alarm while the storage wears (gateway/wear_alarm.py)


def _baseload_alarm(gateway: Gateway) -> Component | None:
    if not any(d.spec.baseload_rise is not None for d in gateway.site.devices.values()):
        return None  # no meter opts in: the module is not loaded for nothing
    from gateway.baseload_alarm import baseload_alarm_component

    return baseload_alarm_component(gateway)


COMPONENTS.append(_baseload_alarm)  # night baseload rise per opted-in meter (§11)


def _systemd(gateway: Gateway) -> Component | None:
    if not os.environ.get("NOTIFY_SOCKET"):
        return None  # not started by systemd with Type=notify
    from gateway.sdnotify import systemd_component

    return systemd_component(gateway)


COMPONENTS.append(_systemd)  # READY/WATCHDOG/STOPPING to systemd when run with Type=notify


def _maintenance(gateway: Gateway) -> Component | None:
    from gateway.maintenance import build

    return build(gateway)


COMPONENTS.append(_maintenance)  # tickets, plans, meters; sets gateway.maintenance (PRODUCT §5)


def _notify(gateway: Gateway) -> Component | None:
    if not gateway.site.file.notify.channels:
        return None  # no channels: the e-mail and webhook clients are not imported
    from gateway.notify.component import build

    return build(gateway)


COMPONENTS.append(_notify)  # alarm notifications and escalation (gateway/notify)


def _incidents(gateway: Gateway) -> Component | None:
    from gateway.incidents import build

    return build(gateway)


COMPONENTS.append(_incidents)  # playbooks, incidents and drills; sets gateway.incidents (§11)


def build_components(gateway: Gateway) -> list[Component]:
    built = (factory(gateway) for factory in COMPONENTS)
    return [component for component in built if component is not None]
