"""The alarm state machine (ISA-18.2 shape): condition changes and operator actions in, transitions out.

Pure code. Every transition is returned as an `AlarmTransition` (who, when, why, and a snapshot of the
alarm) for the journal and `P/events`; a request that the state machine does not allow raises
`TransitionRefused` (the API maps it to 409).

The state is two layers:

- the *base* state — what the condition and the acknowledgement say: `normal`, `active_unack`,
  `active_ack`, `rtn_unack`;
- *overlays* that hide it — `out_of_service` (over) `shelved` (over) `suppressed`. While any overlay
  is on, the alarm shows the top one; the condition is still followed underneath, but not announced.

Base transitions: normal→active_unack (raise: new episode); active_unack→active_ack (ack);
active_ack→normal (clear); active_unack→rtn_unack (clear before ack); rtn_unack→normal (ack);
rtn_unack→active_unack (re-activation before ack: a new activation, so a new episode).

When the last overlay ends, the alarm goes to the state it truly has:

- condition active, and it was already active and announced before the overlay and never cleared
  meanwhile: the same episode, in its base state (`active_unack`, or `active_ack` if it had been
  acknowledged: an acknowledgement is not lost to a comm-loss blip);
- condition active otherwise: a new episode, `active_unack`;
- condition inactive: `normal`, except that an alarm that was announced and not yet acknowledged
  (`active_unack` before the overlay) goes to `rtn_unack`, so nobody misses that it happened.
  An activation that started *and* ended under an overlay is never announced and leaves no episode:
  the twenty alarms of a power cut do not come back as twenty `rtn_unack` afterwards.

Life safety first (PRODUCT §9): a *life-safety* alarm (fire, entrapment, loss of supply…) is never
`suppressed` — a change that says so is followed as active and its cause kept in `during` — and never
taken out of service; it is shelved only if its rule says `shelvable: true`. `during` changing alone
is published as a transition whose `from` and `to` are the same state, and survives a restart.
So is a new message of an alarm that stays active (its rule's `follows` points changed: a second fire
zone): the episode, the state and the acknowledgement stay as they are.
`reinstate` (after `restore`) brings back alarms an older configuration left hidden: life-safety ones
suppressed or out of service, and shelved ones whose rule is no longer shelvable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from config.site import Rule
from ground.model import Value
from rules.engine import ConditionChange
from rules.messages import pick, render

log = logging.getLogger(__name__)

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


def _epoch(at: float | datetime) -> float:
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
    # below: the layers under the shown state (see the module docstring)
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
        (a dict of scalars), so a shallow copy is a full one, and `asdict`'s recursive deep copy
        cost ~150 µs on every transition, on the way from a reading to its alarm on MQTT.
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


class AlarmBook:
    """Every alarm of the site and its state machine.

    Args:
        rules: every rule (`Site.rules()`), `comm_loss` included: one alarm per rule.
        locale: the site locale; `message` is in it, `message_zh`/`message_en` are both kept.
    """

    def __init__(self, rules: Sequence[Rule], locale: str = "zh-CN") -> None:
        self.locale = locale
        self._rules: dict[str, Rule] = {}
        self._alarms: dict[str, Alarm] = {}
        self._silent: set[str] = set()  # changed without a visible transition: save, don't announce
        self.unknown_changes = 0
        for rule in rules:
            self._rules[rule.alarm_id] = rule
            self._alarms[rule.alarm_id] = Alarm(
                id=rule.alarm_id,
                device=rule.device,
                rule=rule.id,
                priority=rule.priority,
                shelvable=rule.shelvable,
                life_safety=rule.life_safety,
            )
            self._render(self._alarms[rule.alarm_id])

    # ------------------------------------------------------------------ reading

    def get(self, alarm_id: str) -> Alarm:
        try:
            return self._alarms[alarm_id]
        except KeyError:
            raise UnknownAlarm(alarm_id) from None

    def all(self) -> list[Alarm]:
        return list(self._alarms.values())

    def non_normal(self) -> list[Alarm]:
        return [a for a in self._alarms.values() if a.state != AlarmState.NORMAL]

    def rule(self, alarm_id: str) -> Rule:
        return self._rules[alarm_id]

    # ------------------------------------------------------------------ conditions

    def apply(self, change: ConditionChange) -> list[AlarmTransition]:
        """Follow a condition change from the rule engine."""
        alarm = self._alarms.get(change.alarm_id)
        if alarm is None:
            self.unknown_changes += 1
            if self.unknown_changes == 1:
                log.warning("condition change for unknown alarm %s ignored", change.alarm_id)
            return []
        before = alarm.state
        at = change.ts_wall
        suppressed, during = change.suppressed, change.during
        if alarm.life_safety and suppressed:  # never hidden, whatever the caller says
            suppressed, during = False, change.cause or during
        during_changed = (during or None) != alarm.during
        alarm.during = during or None
        shown = (alarm.message_zh, alarm.message_en)
        if change.values and change.active:
            # the message tells what happened: rendered while the condition holds, kept on return
            # to normal ("fire in zones 4", not "fire in zones 0" once it is out)
            alarm.values = dict(change.values)
        if change.value is not None:
            alarm.value = change.value
        if alarm.overlay is None and not suppressed:
            self._follow_base(alarm, change.active, at)
            alarm.state = alarm.base
        else:
            if alarm.overlay is None:
                self._begin_overlay(alarm)
            alarm.suppressed_by = (change.cause or "suppressed") if suppressed else ""
            self._follow_hidden(alarm, change.active, at)
            self._show(alarm, at)
        self._render(alarm)
        reworded = (
            self._rules[alarm.id].follows != ()
            and change.active
            and before in (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)
            and alarm.state == before
            and shown != (alarm.message_zh, alarm.message_en)
        )
        return self._transition(
            alarm, before, at, SYSTEM, change.reason, same=during_changed or reworded
        )

    def take_silent(self) -> list[Alarm]:
        """Alarms changed without a transition since the last call (a condition that moved under
        an overlay): the store must keep them, or a restart would forget what is hidden."""
        alarms = [self._alarms[a] for a in sorted(self._silent)]
        self._silent.clear()
        return alarms

    def _follow_base(self, alarm: Alarm, active: bool, at: float) -> None:
        alarm.condition_active = active
        base = alarm.base
        if active and base in (AlarmState.NORMAL, AlarmState.RTN_UNACK):
            self._new_episode(alarm, at)
        elif not active and base == AlarmState.ACTIVE_UNACK:
            alarm.base, alarm.cleared_at = AlarmState.RTN_UNACK, at
        elif not active and base == AlarmState.ACTIVE_ACK:
            alarm.base, alarm.cleared_at = AlarmState.NORMAL, at

    @staticmethod
    def _new_episode(alarm: Alarm, at: float) -> None:
        alarm.episode += 1
        alarm.base = AlarmState.ACTIVE_UNACK
        alarm.raised_at, alarm.cleared_at = at, None
        alarm.acked_at = alarm.acked_by = None
        alarm.first_out = False

    @staticmethod
    def _begin_overlay(alarm: Alarm) -> None:
        alarm.hidden_cleared = not alarm.condition_active
        alarm.hidden_cleared_at = None

    @staticmethod
    def _follow_hidden(alarm: Alarm, active: bool, at: float) -> None:
        if not active and not alarm.hidden_cleared:
            alarm.hidden_cleared, alarm.hidden_cleared_at = True, at
        alarm.condition_active = active

    def _show(self, alarm: Alarm, at: float) -> None:
        """Show the top overlay, or — when none is left — resolve the base state (module docstring)."""
        overlay = alarm.overlay
        if overlay is not None:
            alarm.state = overlay
            return
        base = alarm.base
        if alarm.condition_active:
            if base not in ACTIVE_STATES or alarm.hidden_cleared:
                self._new_episode(alarm, at)
        elif base == AlarmState.ACTIVE_UNACK:
            alarm.base, alarm.cleared_at = AlarmState.RTN_UNACK, alarm.hidden_cleared_at or at
        elif base == AlarmState.ACTIVE_ACK:
            alarm.base, alarm.cleared_at = AlarmState.NORMAL, alarm.hidden_cleared_at or at
        alarm.hidden_cleared, alarm.hidden_cleared_at = False, None
        alarm.state = alarm.base

    # ------------------------------------------------------------------ operator actions

    def acknowledge(
        self, alarm_id: str, user: str, comment: str, at: float | datetime
    ) -> list[AlarmTransition]:
        """active_unack→active_ack, rtn_unack→normal; anything else is refused."""
        alarm = self.get(alarm_id)
        when = _epoch(at)
        before = alarm.state
        if before == AlarmState.ACTIVE_UNACK:
            alarm.base = alarm.state = AlarmState.ACTIVE_ACK
        elif before == AlarmState.RTN_UNACK:
            alarm.base = alarm.state = AlarmState.NORMAL
        else:
            raise TransitionRefused(alarm_id, before, "acknowledge", "nothing to acknowledge")
        alarm.acked_at, alarm.acked_by = when, user
        return self._transition(alarm, before, when, user, comment or "acknowledged")

    def acknowledge_device(
        self, device: str, user: str, comment: str, at: float | datetime
    ) -> list[AlarmTransition]:
        """Acknowledge every alarm of a device that waits for it; the others are left alone."""
        out: list[AlarmTransition] = []
        for alarm in self._alarms.values():
            if alarm.device == device and alarm.state in (
                AlarmState.ACTIVE_UNACK,
                AlarmState.RTN_UNACK,
            ):
                out.extend(self.acknowledge(alarm.id, user, comment, at))
        return out

    def shelve(
        self,
        alarm_id: str,
        user: str,
        reason: str,
        until: float | datetime,
        at: float | datetime,
    ) -> list[AlarmTransition]:
        """Hide an alarm until `until` (wall time), by a person, with a reason.

        Raises:
            ShelveRefused: the rule is `shelvable: false`.
            TransitionRefused: already shelved, or out of service.
        """
        alarm = self.get(alarm_id)
        when, end = _epoch(at), _epoch(until)
        if not alarm.shelvable:
            raise ShelveRefused(alarm_id, alarm.state, "shelve", "this alarm is not shelvable")
        if alarm.state in (AlarmState.SHELVED, AlarmState.OUT_OF_SERVICE):
            raise TransitionRefused(alarm_id, alarm.state, "shelve")
        if end <= when:
            raise TransitionRefused(alarm_id, alarm.state, "shelve", "the end is not in the future")
        before = alarm.state
        if alarm.overlay is None:
            self._begin_overlay(alarm)
        alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason = end, user, reason
        self._show(alarm, when)
        return self._transition(alarm, before, when, user, reason or "shelved")

    def unshelve(
        self, alarm_id: str, user: str, at: float | datetime, reason: str = "unshelved"
    ) -> list[AlarmTransition]:
        alarm = self.get(alarm_id)
        if alarm.shelved_until is None:
            raise TransitionRefused(alarm_id, alarm.state, "unshelve", "it is not shelved")
        when = _epoch(at)
        before = alarm.state
        alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason = None, None, ""
        self._show(alarm, when)
        return self._transition(alarm, before, when, user, reason)

    def expire_shelves(self, at: float | datetime) -> list[AlarmTransition]:
        """Unshelve (by `system`) every alarm whose shelving time is over."""
        when = _epoch(at)
        out: list[AlarmTransition] = []
        for alarm in self._alarms.values():
            if alarm.shelved_until is not None and alarm.shelved_until <= when:
                out.extend(self.unshelve(alarm.id, SYSTEM, when, "shelving expired"))
        return out

    def remove_from_service(
        self, alarm_id: str, user: str, reason: str, at: float | datetime
    ) -> list[AlarmTransition]:
        """Take an alarm out of service (equipment decommissioned, sensor removed…).

        Raises:
            TransitionRefused: already out of service, or a life-safety alarm (never muted).
        """
        alarm = self.get(alarm_id)
        if alarm.life_safety:
            raise TransitionRefused(
                alarm_id, alarm.state, "remove from service", "a life-safety alarm is never muted"
            )
        if alarm.out_of_service:
            raise TransitionRefused(alarm_id, alarm.state, "remove from service", "already")
        when = _epoch(at)
        before = alarm.state
        if alarm.overlay is None:
            self._begin_overlay(alarm)
        alarm.out_of_service = True
        self._show(alarm, when)
        return self._transition(alarm, before, when, user, reason or "out of service")

    def return_to_service(
        self, alarm_id: str, user: str, at: float | datetime, reason: str = "back in service"
    ) -> list[AlarmTransition]:
        alarm = self.get(alarm_id)
        if not alarm.out_of_service:
            raise TransitionRefused(alarm_id, alarm.state, "return to service", "it is in service")
        when = _epoch(at)
        before = alarm.state
        alarm.out_of_service = False
        self._show(alarm, when)
        return self._transition(alarm, before, when, user, reason)

    # ------------------------------------------------------------------ load flags

    def flag(
        self,
        alarm_id: str,
        at: float | datetime,
        reason: str,
        *,
        chattering: bool | None = None,
        first_out: bool | None = None,
    ) -> list[AlarmTransition]:
        """Set the `chattering` or `first_out` flag (by `system`).

        Not a state change, but journaled and published like one (a transition whose `from` and
        `to` are the same state): the retained payload must show the flag, and the alarm-load
        report reads it back from the journal. Nothing is returned if the flag already had that
        value.
        """
        alarm = self.get(alarm_id)
        changed = False
        if chattering is not None and alarm.chattering != chattering:
            alarm.chattering, changed = chattering, True
        if first_out is not None and alarm.first_out != first_out:
            alarm.first_out, changed = first_out, True
        if not changed:
            return []
        when = _epoch(at)
        return [
            AlarmTransition(
                alarm_id=alarm.id,
                from_state=alarm.state,
                to_state=alarm.state,
                episode=alarm.episode,
                at=when,
                by=SYSTEM,
                reason=reason,
                value=alarm.value,
                alarm=alarm.copy(),
            )
        ]

    # ------------------------------------------------------------------ restart

    def restore(self, alarms: Iterable[Alarm]) -> None:
        """Take back the records saved before a restart. No transition, no new episode.

        Alarms of rules that no longer exist are ignored; the rule's current priority,
        `shelvable` and `life_safety` win over the stored ones (`reinstate` then unshelves, with a
        transition, an alarm whose rule is no longer shelvable).
        """
        for stored in alarms:
            rule = self._rules.get(stored.id)
            if rule is None:
                continue
            alarm = stored.copy()
            alarm.priority, alarm.shelvable = rule.priority, rule.shelvable
            alarm.life_safety = rule.life_safety
            alarm.device, alarm.rule = rule.device, rule.id
            if not alarm.life_safety:
                alarm.during = None
            self._render(alarm)
            self._alarms[alarm.id] = alarm

    def reinstate(self, at: float | datetime) -> list[AlarmTransition]:
        """After `restore`: alarms stored under an overlay their rule no longer allows show their
        true state again, as transitions by `system` — life-safety alarms suppressed or out of
        service (their rule was not life-safety then), and shelved alarms whose rule is not
        shelvable (any more). Nothing else: a restart says nothing by itself.
        """
        when = _epoch(at)
        out: list[AlarmTransition] = []
        for alarm in self._alarms.values():
            shelved = not alarm.shelvable and alarm.shelved_until is not None
            hidden = alarm.life_safety and bool(alarm.suppressed_by or alarm.out_of_service)
            if not (shelved or hidden):
                continue
            before = alarm.state
            if shelved:
                alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason = None, None, ""
            if hidden:
                alarm.suppressed_by, alarm.out_of_service = "", False
            self._show(alarm, when)
            reason = "life-safety alarm: never suppressed or muted" if hidden else "not shelvable"
            out.extend(self._transition(alarm, before, when, SYSTEM, reason))
        return out

    def during(self) -> dict[str, str]:
        """Alarm id -> the root cause it is active under: feed it to `RuleEngine.assume_active`."""
        return {a.id: a.during for a in self._alarms.values() if a.during}

    def active_condition_ids(self) -> list[str]:
        """Alarm ids whose condition was active: feed them to `RuleEngine.assume_active`."""
        return [a.id for a in self._alarms.values() if a.condition_active]

    # ------------------------------------------------------------------ helpers

    def _render(self, alarm: Alarm) -> None:
        rule = self._rules.get(alarm.id)
        if rule is None:
            return
        zh = {n: name.zh for n, name in rule.zones}
        en = {n: name.en for n, name in rule.zones}
        alarm.message_zh = render(rule.message.zh, alarm.values, zh)
        alarm.message_en = render(rule.message.en, alarm.values, en)
        names = {n: pick(name, self.locale) for n, name in rule.zones}
        alarm.message = render(pick(rule.message, self.locale), alarm.values, names)

    def _transition(
        self, alarm: Alarm, before: AlarmState, at: float, by: str, reason: str, same: bool = False
    ) -> list[AlarmTransition]:
        """The transition to journal and publish, if the state changed (or `same`: `during` did)."""
        if alarm.state == before and not same:
            # e.g. the condition moved under a shelve, or a shelve ended under out-of-service
            self._silent.add(alarm.id)
            return []
        return [
            AlarmTransition(
                alarm_id=alarm.id,
                from_state=before,
                to_state=alarm.state,
                episode=alarm.episode,
                at=at,
                by=by,
                reason=reason,
                value=alarm.value,
                alarm=alarm.copy(),
            )
        ]
