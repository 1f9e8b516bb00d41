"""Escalation: per priority, who is told about an unacknowledged alarm, how soon, and how often again.

Pure code on an injected clock (the gateway's monotonic seconds). The notification channels that
carry the messages live in `gateway.notify`; this module only decides *when* and *to whom*.

Why these rules:

- Escalation follows an alarm while it is `active_unack`: announced, active, and nobody has said
  they are on it. Acknowledging it, its return to normal (`rtn_unack` waits for an ack but needs no
  one to run), shelving, suppression and out-of-service all end it. A new episode starts afresh.
  A life-safety alarm (PRODUCT §9) keeps escalating in `rtn_unack` too: a fire or an entrapment
  that cleared before anyone acknowledged it still needs a person to know of it.
- A policy is a list of steps per priority: `after` the alarm was raised, tell `notify` (channel
  ids), and again every `repeat` until it is acknowledged (e.g. critical: at once, again every
  5 min; high: after 10 min unacknowledged; then the manager after 30 min).
- Late ticks never cause bursts: a step that missed several repeats (a suspended clock) is sent
  once and rescheduled to its next slot in the future.
- After a restart the schedule goes on from the alarm's `raised_at`. Given what was made before
  (`made`: messages per step, from the durable notifications), a step is neither sent twice nor
  forgotten: a step or repeat whose time passed while the gateway was down is due once at once.
  Without that record, steps already due are taken as sent (no round is ever re-sent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ACTIVE_UNACK = "active_unack"
RTN_UNACK = "rtn_unack"


def escalating(state: str, life_safety: bool) -> bool:
    """Whether an alarm in `state` is escalated: unacknowledged and active, or (life safety) not
    yet acknowledged after it returned to normal."""
    return state == ACTIVE_UNACK or (life_safety and state == RTN_UNACK)


@dataclass(frozen=True, slots=True)
class Step:
    """Tell `notify` (channel ids) `after` seconds unacknowledged, then every `repeat` seconds."""

    after: float
    notify: tuple[str, ...]
    repeat: float | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to send: which alarm episode, to which channels, and the how-manieth it is."""

    alarm_id: str
    episode: int
    priority: str
    channels: tuple[str, ...]
    step: int
    repeat: int  # 0 for the first message of a step


@dataclass(slots=True)
class _Tracked:
    priority: str
    episode: int
    start: float
    next_at: list[float | None] = field(default_factory=list)  # per step
    sent: list[int] = field(default_factory=list)  # per step


class Escalator:
    """Follows alarms and says which notifications are due.

    Args:
        policy: priority -> steps. Priorities not in it are never notified.
    """

    def __init__(self, policy: Mapping[str, Sequence[Step]]) -> None:
        self.policy = {p: tuple(steps) for p, steps in policy.items()}
        self._tracked: dict[str, _Tracked] = {}

    def tracked(self) -> list[str]:
        return sorted(self._tracked)

    def observe(
        self,
        alarm_id: str,
        priority: str,
        state: str,
        episode: int,
        now: float,
        life_safety: bool = False,
    ) -> None:
        """An alarm's state (after a transition): starts, keeps or ends its escalation."""
        current = self._tracked.get(alarm_id)
        if not escalating(state, life_safety) or not self.policy.get(priority):
            self._tracked.pop(alarm_id, None)
            return
        if current is not None and current.episode == episode:
            return
        self._tracked[alarm_id] = self._track(priority, episode, now, now)

    def restore(
        self,
        alarm_id: str,
        priority: str,
        episode: int,
        elapsed: float,
        now: float,
        made: Mapping[int, int] | None = None,
    ) -> None:
        """After a restart: an escalated alarm (`escalating`) raised `elapsed` seconds ago (see docstring).

        Args:
            made: per step index, how many messages of this episode were made before the restart.
        """
        if not self.policy.get(priority):
            return
        elapsed = max(0.0, elapsed)
        if made is None:
            self._tracked[alarm_id] = self._track(priority, episode, now - elapsed, now + 1e-9)
            return
        start = now - elapsed
        tracked = _Tracked(priority, episode, start)
        for i, step in enumerate(self.policy[priority]):
            count = max(0, made.get(i, 0))
            at: float | None = start + step.after
            if count and step.repeat:
                at = start + step.after + count * step.repeat
            elif count:
                at = None  # a step without repeat: made once, done
            if at is not None and at < now:
                at = now  # its time passed while the gateway was down: once, now
            tracked.next_at.append(at)
            tracked.sent.append(count)
        self._tracked[alarm_id] = tracked

    def _track(self, priority: str, episode: int, start: float, first: float) -> _Tracked:
        """Steps are scheduled from `start`; slots before `first` count as already sent."""
        tracked = _Tracked(priority, episode, start)
        for step in self.policy[priority]:
            at = start + step.after
            sent = 0
            if at < first:
                sent = 1
                if step.repeat:
                    slot = _next_slot(at, step.repeat, first)
                    sent = round((slot - at) / step.repeat)
                    at = slot
                else:
                    at = math.inf
            tracked.next_at.append(None if at == math.inf else at)
            tracked.sent.append(sent)
        return tracked

    def tick(self, now: float) -> list[Notification]:
        """Every notification due at `now`, each step at most once per call."""
        out: list[Notification] = []
        for alarm_id, tracked in self._tracked.items():
            steps = self.policy[tracked.priority]
            for i, step in enumerate(steps):
                at = tracked.next_at[i]
                if at is None or at > now:
                    continue
                out.append(
                    Notification(
                        alarm_id=alarm_id,
                        episode=tracked.episode,
                        priority=tracked.priority,
                        channels=step.notify,
                        step=i,
                        repeat=tracked.sent[i],
                    )
                )
                tracked.sent[i] += 1
                tracked.next_at[i] = _next_slot(at, step.repeat, now) if step.repeat else None
        return out

    def next_deadline(self) -> float | None:
        times = [t for tr in self._tracked.values() for t in tr.next_at if t is not None]
        return min(times) if times else None


def _next_slot(at: float, repeat: float | None, after: float) -> float:
    """The first `at + k*repeat` (k >= 1) later than `after`."""
    assert repeat is not None and repeat > 0
    k = max(1, math.floor((after - at) / repeat) + 1)
    return at + k * repeat
