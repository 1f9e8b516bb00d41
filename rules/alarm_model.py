"""An alarm's record and states (ISA-18.2 shape), its transitions, and the refusals of the state
machine. Data only: `rules.alarms.AlarmBook` moves alarms between these states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ground.model import Value

SYSTEM = "system"


class AlarmState(StrEnum):
    NORMAL = "normal"
    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    RTN_UNACK = "rtn_unack"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


BASE_STATES = frozenset(
    {AlarmState.NORMAL, AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK, AlarmState.RTN_UNACK}
)
ACTIVE_STATES = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK})


class TransitionRefused(Exception):
    """The requested transition is not allowed from the alarm's current state (HTTP 409)."""

    def __init__(self, alarm_id: str, state: str, action: str, why: str = "") -> None:
        self.alarm_id, self.state, self.action = alarm_id, state, action
        super().__init__(
            f"cannot {action} {alarm_id} in state {state}" + (f": {why}" if why else "")
        )


class ShelveRefused(TransitionRefused):
    """The alarm may never be shelved (`shelvable: false`, e.g. fire alarm, entrapment)."""


class UnknownAlarm(KeyError):
    """No alarm with this id (HTTP 404)."""


def iso(t: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a `Z`, millisecond precision; None stays None."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(at: float | datetime) -> float:
    """A time given as epoch seconds or as a datetime, in epoch seconds."""
    return at.timestamp() if isinstance(at, datetime) else float(at)


@dataclass(slots=True)
class Alarm:
    """The current record of one alarm `{device}.{rule}`. Times are wall-clock epoch seconds."""

    id: str
    device: str
    rule: str
    priority: str
    state: AlarmState = AlarmState.NORMAL
    message: str = ""
    message_zh: str = ""
    message_en: str = ""
    value: Value | None = None
    episode: int = 0
    raised_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    cleared_at: float | None = None
    shelvable: bool = True
    condition_active: bool = False
    suppressed_by: str = ""  # root-cause alarm id while suppressed by design
    # below: the layers under the shown state (docs/design/alarm-engine.md)
    base: AlarmState = AlarmState.NORMAL
    out_of_service: bool = False
    shelved_until: float | None = None
    shelved_by: str | None = None
    shelve_reason: str = ""
    hidden_cleared: bool = False  # the condition was inactive at some time under the overlay
    hidden_cleared_at: float | None = None
    values: dict[str, Value] = field(default_factory=dict)
    # flags set by alarm-load management (`rules.floods`), shown but not states of their own
    chattering: bool = False  # flipped too often: held active until quiet
    first_out: bool = False  # the first alarm of the flood it started (this episode)
    life_safety: bool = False  # never suppressed nor out of service (PRODUCT §9)
    during: str | None = None  # life-safety, active under a root cause: that alarm's id

    def payload(self) -> dict[str, Any]:
        """The retained `P/alarms/{device}/{rule}` JSON (PRODUCT §6), plus both message languages."""
        return {
            "id": self.id,
            "device": self.device,
            "rule": self.rule,
            "priority": self.priority,
            "state": str(self.state),
            "message": self.message,
            "value": self.value,
            "episode": self.episode,
            "raised_at": iso(self.raised_at),
            "acked_at": iso(self.acked_at),
            "acked_by": self.acked_by,
            "cleared_at": iso(self.cleared_at),
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "suppressed_by": self.suppressed_by or None,
            "shelved_until": iso(self.shelved_until),
            "shelved_by": self.shelved_by,
            "shelve_reason": self.shelve_reason or None,
            "out_of_service": self.out_of_service,
            "chattering": self.chattering,
            "first_out": self.first_out,
            "life_safety": self.life_safety,
            "during": self.during,
        }

    def record(self) -> dict[str, Any]:
        """Everything, JSON-ready, for the alarm store; `from_record` reads it back.

        Field by field rather than `dataclasses.asdict`: every value is a scalar except `values`
        (a dict of scalars), so a shallow copy is a full one; `asdict`'s recursive deep copy would
        run on every transition, on the way from a reading to its alarm on MQTT.
        """
        data = {name: getattr(self, name) for name in _ALARM_FIELDS}
        data["state"] = str(self.state)
        data["base"] = str(self.base)
        data["values"] = dict(self.values)
        return data

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Alarm:
        """An alarm from `record()` output; unknown keys are ignored, missing ones get defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in record.items() if k in names}
        data["state"] = AlarmState(data.get("state", AlarmState.NORMAL))
        data["base"] = AlarmState(data.get("base", _base_of(data["state"], record)))
        data["values"] = dict(data.get("values") or {})
        return cls(**data)

    def copy(self) -> Alarm:
        return dataclasses.replace(self, values=dict(self.values))

    @property
    def overlay(self) -> AlarmState | None:
        """The overlay shown on top of the base state, if any (highest first)."""
        if self.out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if self.shelved_until is not None:
            return AlarmState.SHELVED
        if self.suppressed_by:
            return AlarmState.SUPPRESSED
        return None


_ALARM_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Alarm))


def _base_of(state: AlarmState, record: Mapping[str, Any]) -> AlarmState:
    """For a record written without `base`: the base state its shown state implies."""
    if state in BASE_STATES:
        return state
    return AlarmState.ACTIVE_UNACK if record.get("condition_active") else AlarmState.NORMAL


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One state change of one alarm, as written to the journal and published on `P/events`."""

    alarm_id: str
    from_state: AlarmState
    to_state: AlarmState
    episode: int
    at: float
    by: str
    reason: str
    value: Value | None
    alarm: Alarm  # a snapshot taken right after the transition

    def event(self) -> dict[str, Any]:
        return {
            "type": "alarm",
            "id": self.alarm_id,
            "from": str(self.from_state),
            "to": str(self.to_state),
            "episode": self.episode,
            "at": iso(self.at),
            "by": self.by,
            "reason": self.reason,
            "priority": self.alarm.priority,
            "message": self.alarm.message,
            "value": self.value,
            "cause": self.alarm.suppressed_by or None,
            "chattering": self.alarm.chattering,
            "first_out": self.alarm.first_out,
            "life_safety": self.alarm.life_safety,
            "during": self.alarm.during,
        }
