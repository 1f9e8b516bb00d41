"""A low-priority alarm while the storage wears: nearly full, or written far above its rate.

The alarm is `gateway.storage_wear` (priority low, shelvable): the device `gateway` is the gateway
itself, known to the alarm book only. The rule engine never sees it, so it is nobody's supply or
root cause and cannot suppress, delay or mute another alarm; it goes through the same book, journal
and outbox as any alarm. A site with a device of its own called `gateway` does without it.

`WearAlarm` asks the health monitor's `WearMeter` once every `EVERY` seconds and tells the gateway
when the verdict changes (and once after a start, so an alarm restored active can clear).
"""

from __future__ import annotations

from collections.abc import Callable

from config.models import Text
from config.site import Rule, Site
from gateway.components import Capabilities, Component, ComponentContext, HealthView
from rules.engine import ConditionChange

DEVICE = "gateway"
RULE = "storage_wear"
ALARM_ID = f"{DEVICE}.{RULE}"
EVERY = 60.0
"""Seconds between two looks at the wear."""


def wear_rules(site: Site) -> list[Rule]:
    """The alarm book's rule for the wear alarm (none when a device is called `gateway`)."""
    if DEVICE in site.devices:
        return []
    message = Text(
        zh="存储磨损告警: {detail}",
        en="Storage wear: {detail}",
    )
    return [Rule(device=DEVICE, id=RULE, when="", priority="low", message=message)]


class WearAlarm(Component):
    """Raises and clears `gateway.storage_wear` from the health monitor's wear check."""

    name = "wear_alarm"

    def __init__(
        self,
        health: HealthView,
        system_condition: Callable[[ConditionChange], None],
        every: float = EVERY,
    ) -> None:
        self.health = health
        self.system_condition = system_condition
        self.every = every
        self._next: float | None = None
        self.active: bool | None = None  # None: not told yet since the start

    def on_tick(self, wall: float, monotonic: float) -> None:
        if self._next is not None and monotonic < self._next:
            return
        self._next = monotonic + self.every
        check = self.health.wear.report(monotonic)
        active = check["status"] != "ok"
        if active == self.active:
            return
        self.active = active
        detail = str(check.get("detail", ""))
        self.system_condition(
            ConditionChange(
                alarm_id=ALARM_ID,
                device=DEVICE,
                rule=RULE,
                active=active,
                suppressed=False,
                value=None,
                values={"detail": detail} if active else {},
                ts_wall=wall,
                reason=detail or "storage wear back to normal",
            )
        )


def build(context: ComponentContext, capabilities: Capabilities) -> Component | None:
    """The `gateway.registry` factory: none when the site has a device called `gateway` (or no
    health monitor, whose wear meter it reads)."""
    if DEVICE in context.site.devices or capabilities.health is None:
        return None
    return WearAlarm(capabilities.health, context.system_condition)
