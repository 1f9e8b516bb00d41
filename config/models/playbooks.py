"""Playbooks as written (PRODUCT §11): steps to follow when given alarms open an incident."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from config.models.base import ID_PATTERN, Duration, Strict, Text

JOIN_WITHIN = 600.0
"""A second trigger of the same playbook within this many seconds joins the open incident."""

Role = Literal["viewer", "engineer", "admin"]


class StepSpec(Strict):
    """One step: what to do, and how long after the incident opened it must be done."""

    id: str = Field(pattern=ID_PATTERN)
    text: Text
    within: Duration | None = None  # no limit: the step has no due time
    role: Role = "engineer"


class TriggerSpec(Strict):
    """Which alarms open an incident: rule ids (any device's) and/or alarm ids (`device.rule`)."""

    rules: list[str] = []
    alarms: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _singular(cls, value: Any) -> Any:
        """`{rule: entrapment}` and `{alarm: lift-1.entrapment}` read as one-element lists."""
        if isinstance(value, dict):
            value = dict(value)
            for one, many in (("rule", "rules"), ("alarm", "alarms")):
                if one in value:
                    value[many] = [*value.get(many, []), value.pop(one)]
        return value


class PlaybookSpec(Strict):
    """A playbook as written (built-in file or site file); a site entry may set only some keys."""

    id: str = Field(pattern=ID_PATTERN)
    title: Text | None = None
    trigger: TriggerSpec | None = None
    steps: list[StepSpec] | None = None
    join_within: Duration = JOIN_WITHIN
    enabled: bool = True
