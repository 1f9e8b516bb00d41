"""Alarm management around the gateway's core path: chattering latch, floods, delays kept on disk.

The core path is drivers -> rule engine -> alarm book -> store -> MQTT (`gateway.service`). Three
things of ISA-18.2 / EEMUA 191 alarm management need to sit *inside* that path rather than listen to
it as a component, and they live here so the service stays short:

- the chattering latch (`rules.floods.ChatterFilter`) filters the engine's condition changes before
  the alarm book sees them, and its flag is journaled and published like a transition;
- flood detection (`rules.floods.FloodDetector`) counts announced activations across the site,
  publishes `{"type": "flood", ...}` on `P/events` and marks the first-out alarm;
- on/off-delays in progress are written to SQLite as they start and end, so a gateway killed with
  SIGKILL resumes a pending on-delay instead of forgetting it (`RuleEngine.restore_timers`).

Those delays and the records that change without a transition are not committed on their own: the
gateway takes them (`pending_writes`) into its next transaction, the one that journals the reading's
transitions, so a reading that raises an alarm and starts a delay costs one fsync, not two.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from config.alarm_options import AlarmsConfig
from rules.alarms import AlarmBook, AlarmTransition
from rules.engine import ConditionChange, PendingTimer, RuleEngine
from rules.floods import (
    Activations,
    ChatterFilter,
    ChatterFlag,
    ChatterSettings,
    Flood,
    FloodDetector,
    FloodSettings,
)

log = logging.getLogger("fgw.alarming")


class AlarmManagement:
    """Owned by the `Gateway`; built after the alarm book and engine have been restored.

    Args:
        options: the site's `alarms:` section.
        book: the alarm book (flags are raised on it).
        engine: the rule engine, whose delays are restored from `timers`.
        timers: delays in progress saved on disk (alarm id -> kind, wall-clock start).
        emit: journals, publishes and tells transitions (the gateway's one way to do so).
        publish_event: a message for `P/events` (a flood's start and end).
        monotonic: now, for timers.
        wall: now, for timestamps.
    """

    def __init__(
        self,
        options: AlarmsConfig,
        book: AlarmBook,
        engine: RuleEngine,
        timers: Mapping[str, tuple[str, float]],
        *,
        emit: Callable[[Sequence[AlarmTransition]], None],
        publish_event: Callable[[Mapping[str, Any]], None],
        monotonic: float,
        wall: float,
    ) -> None:
        self.book, self.engine = book, engine
        self._emit, self._publish_event = emit, publish_event
        self.chatter = ChatterFilter(
            ChatterSettings(
                activations=options.chattering.activations,
                window=options.chattering.window,
                quiet=options.chattering.quiet,
            )
        )
        self.floods = FloodDetector(
            FloodSettings(
                alarms=options.flood.alarms,
                window=options.flood.window,
                end_at=options.flood.end_threshold,
            )
        )
        self.activations = Activations({a.id: a.episode for a in book.all()})
        self.chatter.restore([a.id for a in book.all() if a.chattering], monotonic)
        saved = {alarm_id: PendingTimer(*timer) for alarm_id, timer in timers.items()}
        engine.restore_timers(saved, monotonic, wall)
        self.floods_total = 0
        self._pending_flags: list[ChatterFlag] = []
        self._unsaved: dict[str, dict[str, object]] = {}  # silent records not yet on disk
        self._unsaved_timers: dict[str, tuple[str, float] | None] = {}  # delays not yet on disk
        self._save_failed = False

    # ------------------------------------------------------------------ in the core path

    def filter(
        self, changes: Sequence[ConditionChange], monotonic: float, wall: float
    ) -> list[ConditionChange]:
        """What the alarm book should see of the engine's changes (chattering alarms latched)."""
        if not changes:
            return []
        passed, flags = self.chatter.filter(changes, monotonic)
        self._pending_flags.extend(flags)  # shown after the change that caused them
        return passed

    def tick(self, monotonic: float, wall: float) -> None:
        """Release latched clears of calmed alarms; end a flood whose burst is over."""
        released, flags = self.chatter.tick(monotonic, wall)
        self._flags(flags, wall)  # calm first, then the clear it was holding
        transitions: list[AlarmTransition] = []
        for change in released:
            transitions.extend(self.book.apply(change))
        self._emit(transitions)
        self._floods(self.floods.tick(monotonic, wall), wall)

    def committed(self, transitions: Sequence[AlarmTransition], monotonic: float) -> None:
        """After transitions were journaled and published: count activations for floods."""
        for t in transitions:
            if t.from_state != t.to_state and self.activations.is_new(
                t.alarm_id, t.to_state, t.episode
            ):
                self._floods(self.floods.observe(t.alarm_id, monotonic, t.at), t.at)

    def after_changes(self, wall: float) -> None:
        """After the book took the filtered changes: raise chattering flags (so the flag shows on
        the activation that caused it). What changed without a transition — delays that started
        or ended — goes with the gateway's next write (`pending_writes`)."""
        flags, self._pending_flags = self._pending_flags, []
        self._flags(flags, wall)

    def pending_writes(
        self,
    ) -> tuple[list[dict[str, object]], dict[str, tuple[str, float] | None]]:
        """Alarm records changed without a transition (see `AlarmBook.take_silent`) and delays
        that started or ended, for the gateway's next transaction: kept until `written()`, so a
        refused write loses none of them and the newest of each wins."""
        for alarm in self.book.take_silent():
            self._unsaved[alarm.id] = alarm.record()
        for alarm_id, timer in self.engine.take_timer_changes().items():
            self._unsaved_timers[alarm_id] = (timer.kind, timer.started) if timer else None
        return list(self._unsaved.values()), dict(self._unsaved_timers)

    def written(self) -> None:
        """What `pending_writes` returned is committed."""
        self._unsaved.clear()
        self._unsaved_timers.clear()
        self._save_failed = False

    def write_failed(self, exc: sqlite3.Error) -> None:
        """The transaction was refused (disk full): keep them, say so once."""
        if not self._save_failed and (self._unsaved or self._unsaved_timers):
            log.error(
                "alarm store: cannot save %d records and %d delays (%s)",
                len(self._unsaved),
                len(self._unsaved_timers),
                exc,
            )
            self._save_failed = True

    # ------------------------------------------------------------------ helpers

    def _flags(self, flags: Sequence[ChatterFlag], wall: float) -> None:
        for flag in flags:
            log.warning("alarm %s %s", flag.alarm_id, flag.reason, extra={"alarm": flag.alarm_id})
            self._emit(self.book.flag(flag.alarm_id, wall, flag.reason, chattering=flag.on))

    def _floods(self, floods: Sequence[tuple[str, Flood]], wall: float) -> None:
        window = self.floods.settings.window
        for state, flood in floods:
            event = flood.event(state, window)
            if state == "started":
                self.floods_total += 1
                log.warning(
                    "alarm flood: %d alarms within %gs, first out %s",
                    len(flood.alarms),
                    window,
                    flood.first_out,
                    extra={"alarm": flood.first_out},
                )
            else:
                log.warning("alarm flood over: %d alarms in all", len(flood.alarms))
            self._publish_event(event)
            if state == "started":
                reason = f"first out of a flood of {len(flood.alarms)} alarms"
                self._emit(self.book.flag(flood.first_out, wall, reason, first_out=True))
