"""Whether a device answers: the comm_loss rule of PRODUCT §3, as a pure state machine.

A device is *offline* after `polls` consecutive failed polls, or after `after` seconds without a
successful poll (once at least one poll has failed: a slow poll interval alone is not a loss). The
clock is passed in (monotonic seconds), so tests drive it without sleeping.

`record_ok` / `record_failure` return a `HealthChange` only when the state flips, so the driver logs
and emits `DeviceStatus` once when a device becomes unavailable and once when it recovers — never once
per poll. The first determination after start-up (first answer, or first loss) is a change too, so
consumers start from a known state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HealthChange:
    """The device's communication state flipped."""

    online: bool
    reason: str


@dataclass(slots=True, unsafe_hash=True)
class DeviceStats:
    """Counters for /metrics and `GET /api/v1/devices` (PRODUCT §7).

    Treat it as immutable. Not a frozen dataclass because a frozen one builds each instance through
    `object.__setattr__`, which is slower, and the health check asks every device for its
    stats every second; equality and hashing are those of a frozen one.

    Attributes:
        polls: poll attempts so far.
        errors: failed polls plus error answers (exception responses, undecodable points).
        last_seen: wall-clock time of the last successful poll, or None.
        last_poll_seconds: how long the last poll took.
        online: None until the first poll decided it.
        last_error: the latest error text, for the console.
    """

    polls: int
    errors: int
    last_seen: float | None
    last_poll_seconds: float | None
    online: bool | None
    last_error: str = ""


class DeviceHealth:
    """Counts one device's polls and decides when its communication is lost.

    Args:
        polls: consecutive failed polls that mean comm loss (`comm_loss_polls`).
        after: seconds without a successful poll that mean comm loss (`comm_loss_after`).
        now: monotonic time of creation; the `after` timer runs from here until the first answer.
    """

    def __init__(self, polls: int = 3, after: float = 10.0, now: float = 0.0) -> None:
        self.polls = polls
        self.after = after
        self.online: bool | None = None
        self.failures = 0  # consecutive
        self.last_ok = now  # monotonic; creation time until the first answer
        self.total_polls = 0
        self.errors = 0
        self.last_seen: float | None = None
        self.last_poll_seconds: float | None = None
        self.last_error = ""

    def start(self, now: float) -> None:
        """Polling begins: the `after` timer of a device not yet heard from runs from here."""
        if self.online is None:
            self.last_ok = now

    def record_ok(
        self, now: float, wall: float | None = None, duration: float | None = None, errors: int = 0
    ) -> HealthChange | None:
        """The device answered a poll.

        Args:
            now: monotonic time.
            wall: wall-clock time, kept as `last_seen`.
            duration: how long the poll took.
            errors: error answers within the poll (exception responses, undecodable points): they
                count as errors but the device is alive.
        """
        self.total_polls += 1
        self.errors += errors
        self.failures = 0
        self.last_ok = now
        self.last_seen = wall if wall is not None else self.last_seen
        self.last_poll_seconds = duration
        if self.online is not True:
            reason = "first answer" if self.online is None else "answers again"
            self.online = True
            return HealthChange(True, reason)
        return None

    def record_failure(
        self, now: float, error: str, duration: float | None = None
    ) -> HealthChange | None:
        """A poll got no answer (timeout, connection refused or lost)."""
        self.total_polls += 1
        self.errors += 1
        self.failures += 1
        self.last_error = error
        self.last_poll_seconds = duration
        return self.check(now)

    def check(self, now: float) -> HealthChange | None:
        """Apply the time rule; call it also when no poll is made (a device in back-off)."""
        if self.online is False or self.failures == 0:
            return None
        if self.failures >= self.polls:
            reason = f"no answer to {self.failures} polls: {self.last_error}"
        elif now - self.last_ok >= self.after:
            reason = f"no answer for {now - self.last_ok:.1f}s: {self.last_error}"
        else:
            return None
        self.online = False
        return HealthChange(False, reason)

    def stats(self) -> DeviceStats:
        return DeviceStats(
            polls=self.total_polls,
            errors=self.errors,
            last_seen=self.last_seen,
            last_poll_seconds=self.last_poll_seconds,
            online=self.online,
            last_error=self.last_error,
        )
