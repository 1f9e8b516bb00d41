"""What `/healthz` reports, and what the systemd watchdog acts on: is the gateway doing its job?

    {"status": "ok" | "degraded" | "unhealthy", "checks": {name: {"status": ..., ...}}}

*unhealthy* means the process is stuck and a restart would help: polling stalled (no poll completed
on any device for `stall_intervals` intervals) or publishing stalled (the broker is connected but
the outbox does not drain). The systemd notifier stops feeding the watchdog then, so systemd restarts
the service. *degraded* means the gateway works but something needs a person: the broker or InfluxDB
is unreachable (messages are queued), storage refuses writes (disk full), devices are offline, the
engine dropped readings, the storage is nearly full or written far faster than expected (`wear`).
A restart would not fix those, so they never starve the watchdog.

Progress is measured by counters sampled over time (polls completed, messages acknowledged), on
every tick and on every report, with an injectable monotonic clock.
"""

from __future__ import annotations

from typing import Any

from gateway.components import Capabilities, Component, ComponentContext
from gateway.wear import WearMeter, values_per_second

OK, DEGRADED, UNHEALTHY = "ok", "degraded", "unhealthy"
_RANK = {OK: 0, DEGRADED: 1, UNHEALTHY: 2}

STALL_INTERVALS = 3
"""Poll intervals without any completed poll that make polling *stalled*."""

DEAD_DEVICE_INTERVAL = 11.0
"""A device that does not answer is tried at least this often (its back-off cap plus a timeout):
with every device dead, polls still complete this often, so that is not a stall."""

PUBLISH_STALL = 30.0
"""Seconds connected with messages waiting and none acknowledged that make publishing *stalled*."""


class _Progress:
    """When a counter last moved, on the monotonic clock."""

    def __init__(self) -> None:
        self.value: int | None = None
        self.since = 0.0

    def sample(self, value: int, now: float) -> float:
        """Record `value`; return seconds since it last changed."""
        if value != self.value:
            self.value, self.since = value, now
        return now - self.since


REPORTED = ("influx", "history", "notify")
"""Components whose `stats()` are checks of their own (`_component_check`)."""


class HealthMonitor(Component):
    """Samples the gateway's counters and reports its health.

    Args:
        context: the gateway's site, counters (`status`), components' stats and monotonic clock.
        stall_intervals: poll intervals without a completed poll before polling is stalled.
        publish_stall: seconds without an acknowledgement, while connected and not empty, before
            publishing is stalled.
    """

    name = "health"

    def __init__(
        self,
        context: ComponentContext,
        *,
        stall_intervals: int = STALL_INTERVALS,
        publish_stall: float = PUBLISH_STALL,
    ) -> None:
        self.site = site = context.site
        self.status = context.status
        self.components = context.stats
        self.clock = context.clock
        periods = [d.spec.poll for d in site.devices.values() if d.spec.modbus is not None]
        timeouts = [b.timeout for b in site.buses.values()] or [0.0]
        self.poll_interval = max(max(periods, default=0.0), DEAD_DEVICE_INTERVAL + max(timeouts))
        self.polled = bool(periods)
        self.poll_stall = stall_intervals * self.poll_interval
        self.publish_stall = publish_stall
        self._polls = _Progress()
        self._acks = _Progress()
        self._dropped = _Progress()
        self.wear = WearMeter(site.storage_dir, values_per_second(site))

    def on_tick(self, wall: float, monotonic: float) -> None:
        self._sample(monotonic)
        self.wear.sample(monotonic)

    def _sample(self, now: float) -> dict[str, float]:
        polls = 0
        for driver in self.status.drivers.values():
            for stats in driver.stats().values():
                polls += int(getattr(stats, "polls", 0) or 0)
        publisher = self.status.publisher
        waiting = len(publisher.outbox)
        # while nothing waits there is nothing to drain: count that as progress
        acked = publisher.published if waiting else -1 - publisher.published
        return {
            "polls": self._polls.sample(polls, now),
            "acks": self._acks.sample(acked, now),
            "dropped": self._dropped.sample(self.status.dropped_batches, now),
        }

    # ------------------------------------------------------------------------------ report

    def report(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        quiet = self._sample(now)
        checks = {
            "polling": self._polling(quiet["polls"]),
            "publishing": self._publishing(quiet["acks"]),
            "storage": self._storage(),
            "devices": self._devices(),
            "engine": self._engine(quiet["dropped"]),
            "wear": self.wear.report(now),
        }
        for name in self.components:
            source = self.components.get(name)
            if name in REPORTED and source is not None:
                checks[name] = _component_check(source())
        status = max((c["status"] for c in checks.values()), key=_RANK.__getitem__, default=OK)
        return {"status": status, "checks": checks}

    def _polling(self, quiet: float) -> dict[str, Any]:
        if not self.polled:
            return {"status": OK, "detail": "no polled devices"}
        check: dict[str, Any] = {
            "status": OK,
            "seconds_since_progress": round(quiet, 1),
            "stall_after": self.poll_stall,
        }
        if quiet > self.poll_stall:
            check["status"] = UNHEALTHY
            check["detail"] = f"no poll completed on any device for {quiet:.0f}s"
        return check

    def _publishing(self, quiet: float) -> dict[str, Any]:
        publisher = self.status.publisher
        stats = publisher.stats()
        check: dict[str, Any] = {
            "status": OK,
            "connected": stats["connected"],
            "queued": stats["queued"],
            "dropped": stats["dropped"],
        }
        if not stats["connected"]:
            check["status"] = DEGRADED
            check["detail"] = f"broker {publisher.broker.where} unreachable; messages are queued"
        elif stats["queued"] and quiet > self.publish_stall:
            check["status"] = UNHEALTHY
            check["detail"] = f"connected but nothing acknowledged for {quiet:.0f}s"
        return check

    def _storage(self) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        journal_error = self.status.journal_error
        if journal_error:
            errors["journal"] = journal_error
            errors["journal_backlog"] = self.status.journal_backlog
        outbox_error = getattr(self.status.publisher.outbox, "error", None)
        if outbox_error:
            errors["outbox"] = outbox_error
        if errors:
            return {"status": DEGRADED, "detail": "storage refuses writes", **errors}
        return {"status": OK}

    def _devices(self) -> dict[str, Any]:
        offline = []
        for driver in self.status.drivers.values():
            for device, stats in driver.stats().items():
                online = stats.get("online") if isinstance(stats, dict) else stats.online
                if online is False:
                    offline.append(device)
        check: dict[str, Any] = {"status": OK, "total": len(self.site.devices)}
        if offline:
            check.update(status=DEGRADED, offline=sorted(offline))
        return check

    def _engine(self, quiet: float) -> dict[str, Any]:
        dropped = self.status.dropped_batches
        if dropped and quiet < self.poll_stall:
            return {"status": DEGRADED, "dropped_batches": dropped, "detail": "engine behind"}
        return {"status": OK, "dropped_batches": dropped}


def _component_check(stats: dict[str, Any]) -> dict[str, Any]:
    check = {"status": OK, **stats}
    if stats.get("error") or stats.get("queue_error"):
        check["status"] = DEGRADED
        check["detail"] = "storage refuses writes"
    elif stats.get("given_up") or stats.get("failing"):
        check["status"] = DEGRADED
        failing = ", ".join(stats.get("failing") or ()) or "none now"
        check["detail"] = (
            f"notifications given up: {stats.get('given_up', 0)}; channels failing: {failing}"
        )
    elif stats.get("reachable") is False:
        check["status"] = DEGRADED
        check["detail"] = f"unreachable: {stats.get('last_error')}; queued on disk"
    return check


def build(context: ComponentContext, capabilities: Capabilities) -> Component:
    """The `gateway.registry` factory; offers `health` (`Gateway.health()`, the wear meter)."""
    monitor = HealthMonitor(context)
    capabilities.health = monitor
    return monitor
