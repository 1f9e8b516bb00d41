"""Incidents (PRODUCT §11): a playbook followed after its trigger, step by step, on wall-clock time.

Pure code: no storage, no network, the time is always passed in (wall seconds, so that due times
survive a restart). The rules:

- One incident per trigger episode: an alarm episode already in an incident never opens another.
  A trigger of the same playbook within its `join_within` (10 min) of the incident's last trigger
  joins the open incident instead of opening a second one.
- A step's due time is the opening time plus its `within`. A step past due and not done is
  announced once (`step_overdue`), never again, also not after a restart (the flag is stored).
- Ticking a done step again is refused; so is anything on a closed incident.
- An incident is closed by a person with a cause, and only once every trigger alarm is back to
  normal (a drill has no trigger alarm and can be closed at any time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from config.models import Text
from config.playbooks import Playbook
from rules.alarms import iso

Action = Literal["opened", "updated", "step_done", "step_overdue", "closed"]


class IncidentRefused(Exception):
    """An action the incident does not allow now (HTTP 409)."""


@dataclass(slots=True)
class StepState:
    id: str
    text: Text
    due: float | None
    role: str = "engineer"
    done_at: float | None = None
    done_by: str | None = None
    note: str = ""
    overdue: bool = False  # announced as overdue, or done after its due time

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": {"zh": self.text.zh, "en": self.text.en},
            "due": iso(self.due),
            "role": self.role,
            "done_at": iso(self.done_at),
            "done_by": self.done_by,
            "note": self.note,
            "overdue": self.overdue,
        }


@dataclass(slots=True)
class Incident:
    """One incident; `payload()` is the JSON of the API and of `P/events` (PRODUCT §11)."""

    id: int
    playbook: str
    title: Text
    drill: bool
    opened_at: float
    last_trigger_at: float
    priority: str
    device: str | None
    steps: list[StepState]
    alarms: list[str] = field(default_factory=list)
    episodes: list[tuple[str, int]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    state: Literal["open", "closed"] = "open"
    opened_by: str = "gateway"
    closed_at: float | None = None
    closed_by: str | None = None
    cause: str = ""

    def step(self, step_id: str) -> StepState:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"{self.id}/{step_id}")

    def payload(self) -> dict[str, Any]:
        steps = []
        for s in self.steps:
            one = s.payload()
            one["response_s"] = None if s.done_at is None else round(s.done_at - self.opened_at, 1)
            steps.append(one)
        return {
            "id": self.id,
            "playbook": self.playbook,
            "title": {"zh": self.title.zh, "en": self.title.en},
            "state": self.state,
            "drill": self.drill,
            "priority": self.priority,
            "device": self.device,
            "opened_at": iso(self.opened_at),
            "opened_by": self.opened_by,
            "closed_at": iso(self.closed_at),
            "closed_by": self.closed_by,
            "cause": self.cause,
            "alarms": list(self.alarms),
            "context": self.context,
            "steps": steps,
        }

    def record(self) -> dict[str, Any]:
        """Everything, JSON-ready, for the incident store; `from_record` reads it back."""
        data = dataclasses.asdict(self)
        data["title"] = {"zh": self.title.zh, "en": self.title.en}
        for step, source in zip(data["steps"], self.steps, strict=True):
            step["text"] = {"zh": source.text.zh, "en": source.text.en}
        data["episodes"] = [list(e) for e in self.episodes]
        return data

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> Incident:
        data = dict(data)
        data["title"] = Text(**data["title"])
        data["steps"] = [StepState(**{**s, "text": Text(**s["text"])}) for s in data["steps"]]
        data["episodes"] = [(str(a), int(e)) for a, e in data.get("episodes", [])]
        return cls(**data)


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One change of one incident: what `P/events` carries and the journal records."""

    action: Action
    incident: Incident
    at: float
    by: str = "gateway"
    step: str | None = None
    note: str = ""

    def event(self) -> dict[str, Any]:
        return {
            "type": "incident",
            "action": self.action,
            "drill": self.incident.drill,
            "at": iso(self.at),
            "by": self.by,
            "step": self.step,
            "note": self.note,
            "incident": self.incident.payload(),
        }


class IncidentBook:
    """Every incident the gateway knows, and their state machine.

    Args:
        playbooks: the site's playbooks by id.
        new_id: gives the next incident id (the store's sequence, so ids survive restarts).
    """

    def __init__(self, playbooks: Mapping[str, Playbook], new_id: Callable[[], int]) -> None:
        self.playbooks = dict(playbooks)
        self._new_id = new_id
        self.incidents: dict[int, Incident] = {}

    def restore(self, incidents: Iterable[Incident]) -> None:
        for incident in incidents:
            self.incidents[incident.id] = incident

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents.values() if i.state == "open"]

    def get(self, incident_id: int) -> Incident:
        """Raises KeyError for an unknown id."""
        return self.incidents[incident_id]

    # ------------------------------------------------------------------ triggers

    def trigger(
        self,
        alarm_id: str,
        rule: str,
        episode: int,
        priority: str,
        at: float,
        context: Callable[[Playbook], dict[str, Any]] | None = None,
    ) -> list[IncidentEvent]:
        """An alarm became active: open an incident per matching playbook, or join an open one.

        `context(playbook)` gives what the gateway knows at this moment (lifts behind a supply…);
        it is merged into a joined incident's context.
        """
        events: list[IncidentEvent] = []
        device = alarm_id.split(".", 1)[0]
        for playbook in self.playbooks.values():
            if not playbook.triggered_by(alarm_id, rule):
                continue
            if any((alarm_id, episode) in i.episodes for i in self.incidents.values()):
                continue
            extra = context(playbook) if context else {}
            joined = self._joinable(playbook, at)
            if joined is not None:
                joined.episodes.append((alarm_id, episode))
                if alarm_id not in joined.alarms:
                    joined.alarms.append(alarm_id)
                joined.last_trigger_at = at
                joined.priority = _higher(joined.priority, priority)
                merge_context(joined.context, extra)
                events.append(IncidentEvent("updated", joined, at, note=alarm_id))
                continue
            incident = self._new(playbook, at, priority, device, drill=False, by="gateway")
            incident.alarms.append(alarm_id)
            incident.episodes.append((alarm_id, episode))
            incident.context.update(extra)
            events.append(IncidentEvent("opened", incident, at))
        return events

    def _joinable(self, playbook: Playbook, at: float) -> Incident | None:
        for incident in self.incidents.values():
            if (
                incident.state == "open"
                and not incident.drill
                and incident.playbook == playbook.id
                and at - incident.last_trigger_at <= playbook.join_within
            ):
                return incident
        return None

    def _new(
        self,
        playbook: Playbook,
        at: float,
        priority: str,
        device: str | None,
        *,
        drill: bool,
        by: str,
    ) -> Incident:
        steps = [
            StepState(s.id, s.text, None if s.within is None else at + s.within, s.role)
            for s in playbook.steps
        ]
        incident = Incident(
            id=self._new_id(),
            playbook=playbook.id,
            title=playbook.title,
            drill=drill,
            opened_at=at,
            last_trigger_at=at,
            priority=priority,
            device=device,
            steps=steps,
            opened_by=by,
        )
        self.incidents[incident.id] = incident
        return incident

    def drill(
        self,
        playbook_id: str,
        device: str | None,
        by: str,
        at: float,
        context: dict[str, Any] | None = None,
        priority: str = "critical",
    ) -> IncidentEvent:
        """Open a drill (演练) incident: no alarm behind it. Raises KeyError for an unknown playbook."""
        playbook = self.playbooks[playbook_id]
        incident = self._new(playbook, at, priority, device, drill=True, by=by)
        incident.context.update(context or {})
        return IncidentEvent("opened", incident, at, by=by)

    def update_context(
        self, incident_id: int, context: dict[str, Any], at: float
    ) -> list[IncidentEvent]:
        """Merge new context (a second fire zone); an event only when something changed."""
        incident = self.incidents[incident_id]
        if incident.state != "open" or not merge_context(incident.context, context):
            return []
        return [IncidentEvent("updated", incident, at)]

    # ------------------------------------------------------------------ people and time

    def tick(self, now: float) -> list[IncidentEvent]:
        """Steps that just became overdue, each announced once."""
        events: list[IncidentEvent] = []
        for incident in self.incidents.values():
            if incident.state != "open":
                continue
            for step in incident.steps:
                if (
                    step.done_at is None
                    and not step.overdue
                    and step.due is not None
                    and now > step.due
                ):
                    step.overdue = True
                    events.append(IncidentEvent("step_overdue", incident, now, step=step.id))
        return events

    def complete_step(
        self, incident_id: int, step_id: str, by: str, note: str, at: float
    ) -> IncidentEvent:
        """Tick a step done. Raises KeyError (unknown), IncidentRefused (closed, or done already)."""
        incident = self.incidents[incident_id]
        step = incident.step(step_id)
        if incident.state != "open":
            raise IncidentRefused(f"incident {incident_id} is closed")
        if step.done_at is not None:
            raise IncidentRefused(
                f"step {step_id} was done at {iso(step.done_at)} by {step.done_by}"
            )
        step.done_at, step.done_by, step.note = at, by, note
        if step.due is not None and at > step.due:
            step.overdue = True
        return IncidentEvent("step_done", incident, at, by=by, step=step_id, note=note)

    def close(
        self, incident_id: int, by: str, cause: str, at: float, active_alarms: Iterable[str]
    ) -> IncidentEvent:
        """Close with a cause once no trigger alarm is active (`active_alarms`: those still active).

        Raises:
            KeyError: unknown incident. ValueError: no cause. IncidentRefused: closed already, or
            a trigger alarm is still active.
        """
        incident = self.incidents[incident_id]
        if not cause.strip():
            raise ValueError("closing an incident needs a cause")
        if incident.state != "open":
            raise IncidentRefused(f"incident {incident_id} is closed already")
        still = sorted(set(active_alarms) & set(incident.alarms))
        if still:
            raise IncidentRefused(f"the trigger is still active: {', '.join(still)}")
        incident.state, incident.closed_at, incident.closed_by = "closed", at, by
        incident.cause = cause.strip()
        return IncidentEvent("closed", incident, at, by=by, note=incident.cause)


_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def _higher(a: str, b: str) -> str:
    return a if _RANK.get(a, 9) <= _RANK.get(b, 9) else b


def merge_context(into: dict[str, Any], new: Mapping[str, Any]) -> bool:
    """Merge `new` into `into`; returns whether it changed.

    Lists grow by what they lack (zones as they are added); an item that is a mapping with a
    `device` key is kept as first seen (a lift's state *at the trip*); other values are replaced.
    """
    changed = False
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, list) and isinstance(value, list):
            devices = {i.get("device") for i in old if isinstance(i, Mapping)}
            for item in value:
                if isinstance(item, Mapping) and item.get("device") in devices:
                    continue
                if item not in old:
                    old.append(item)
                    changed = True
        elif isinstance(old, dict) and isinstance(value, Mapping):
            changed = merge_context(old, value) or changed
        elif key not in into or old != value:
            into[key] = value
            changed = True
    return changed
