"""The alarm state machine (ISA-18.2 shape): condition changes and operator actions in, transitions out.

Pure code. Every transition is returned as an `AlarmTransition` (who, when, why, and a snapshot of the
alarm) for the journal and `P/events`; a request that the state machine does not allow raises
`TransitionRefused` (the API maps it to 409). The states, the overlays (out of service, shelved,
suppressed) and what life safety changes are described in docs/design/alarm-engine.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from config.site import Rule
from rules.alarm_model import (
    ACTIVE_STATES,
    BASE_STATES,
    SYSTEM,
    Alarm,
    AlarmState,
    AlarmTransition,
    ShelveRefused,
    TransitionRefused,
    UnknownAlarm,
    epoch,
    iso,
)
from rules.engine import ConditionChange
from rules.messages import pick, render

__all__ = [
    "ACTIVE_STATES",
    "BASE_STATES",
    "SYSTEM",
    "Alarm",
    "AlarmBook",
    "AlarmState",
    "AlarmTransition",
    "ShelveRefused",
    "TransitionRefused",
    "UnknownAlarm",
    "iso",
]

log = logging.getLogger(__name__)


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
        """Show the top overlay, or — when none is left — resolve the base state
        (docs/design/alarm-engine.md, "When the last overlay ends")."""
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
        when = epoch(at)
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
        when, end = epoch(at), epoch(until)
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
        when = epoch(at)
        before = alarm.state
        alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason = None, None, ""
        self._show(alarm, when)
        return self._transition(alarm, before, when, user, reason)

    def expire_shelves(self, at: float | datetime) -> list[AlarmTransition]:
        """Unshelve (by `system`) every alarm whose shelving time is over."""
        when = epoch(at)
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
        when = epoch(at)
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
        when = epoch(at)
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
        when = epoch(at)
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
        when = epoch(at)
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
