"""Rules as written in a template or the site file (PRODUCT §4), and a template's comm_loss."""

from __future__ import annotations

from pydantic import (
    ConfigDict,
    Field,
)

from config.models.base import ID_PATTERN, Duration, Priority, Strict, Text, Urgency


class RuleSpec(Strict):
    """A rule of a template, or of the site file (PRODUCT §4)."""

    id: str = Field(pattern=ID_PATTERN)
    device: str | None = None  # site rules only: the device the rule belongs to
    when: str | None = None  # None only for a site override that changes other options
    for_: Duration = Field(default=0.0, alias="for")
    clear_for: Duration = 0.0
    deadband: float = Field(default=0.0, ge=0)
    priority: Priority | None = None
    message: Text | None = None
    shelvable: bool | None = None  # default: true, false for a life-safety rule
    life_safety: bool | None = None  # default: true for a critical rule (PRODUCT §9)
    ticket: Urgency | None = None
    enabled: bool = True
    advice: Text | None = None  # one line: what the person on duty should do first
    message_follows: list[str] = []  # points whose change while active updates the message

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CommLossSpec(Strict):
    """A template's options for its devices' built-in `comm_loss` rule (PRODUCT §3, §9)."""

    priority: Priority = "high"
    life_safety: bool | None = None  # default: true when critical
    shelvable: bool | None = None
    advice: Text | None = None  # default: check the device's power and cable
