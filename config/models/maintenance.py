"""Maintenance plans (PRODUCT §5) and the service targets of tickets."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from config.models.base import ID_PATTERN, POINT_PATTERN, Duration, Strict, Text, Urgency
from ground.durations import parse_duration


class CountPlan(Strict):
    point: str = Field(pattern=POINT_PATTERN)
    step: float = Field(gt=0)


_CALENDAR = re.compile(r"^(\d+)(d|w|mo|y)$")


class PlanSpec(Strict):
    """A maintenance plan (PRODUCT §5). Scheduling itself belongs to the maintenance module."""

    id: str = Field(pattern=ID_PATTERN)
    devices: list[str] | None = None  # site plans: which devices
    title: Text | None = None
    every: str | None = None  # calendar: 15d, 2w, 1mo, 3mo, 1y
    cron: str | None = None
    every_run_hours: float | None = Field(default=None, gt=0)
    every_count: CountPlan | None = None
    urgency: Urgency = "normal"
    enabled: bool = True
    lead: Duration | None = None  # calendar plans: open the ticket this long before it is due
    window: Duration | None = None  # meter plans: time from reaching the limit to due (7d)
    mutes: bool = False  # its ticket in progress takes the device's alarms out of service

    @model_validator(mode="after")
    def _one_calendar(self) -> PlanSpec:
        if self.every is not None and self.cron is not None:
            raise ValueError("a plan has one calendar trigger: every: or cron:, not both")
        return self

    @field_validator("every")
    @classmethod
    def _calendar(cls, value: str | None) -> str | None:
        if value is not None and not _CALENDAR.match(value):
            raise ValueError("every must be a calendar period such as 15d, 2w, 1mo, 3mo or 1y")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month weekday")
        if value is not None:
            from ground.cron import Cron

            Cron.parse(value)  # CronError is a ValueError naming the field that is wrong
        return value


class TicketTarget(Strict):
    """Service targets of one urgency: respond within, resolve within (or `next_morning`)."""

    respond: Duration | None = None
    resolve: float | Literal["next_morning"] | None = None

    @field_validator("resolve", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        if value is None or value == "next_morning":
            return value
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(
                f"resolve is a duration such as 4h or 2d, or next_morning; got {value!r}"
            ) from None


class TicketsConfig(Strict):
    """Tickets (PRODUCT §5): targets per urgency over the defaults, and working with alarms."""

    targets: dict[Urgency, TicketTarget] = {}
    morning: str = "08:00"  # what "by the next morning" means, site time
    out_of_service_while_working: bool = True  # alarms not life-safety, while in_progress
    mute_limit: Duration = Field(default=4 * 3600.0, gt=0)  # at most this long (PRODUCT §9)

    @field_validator("morning")
    @classmethod
    def _morning(cls, value: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError(f"morning must be a time of day HH:MM, got {value!r}")
        return value
