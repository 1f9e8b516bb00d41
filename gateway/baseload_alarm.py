"""The night baseload alarm `{meter}.baseload_rise` (PRODUCT §11), opt-in per energy meter.

A meter with `baseload_rise:` in the site file has its night judged once (`gateway.baseload`):
`settle` seconds after 05:00 site time, from the history's minute aggregates, in a worker thread
(29 nights of minutes: the event loop keeps serving alarms meanwhile). The verdict goes through
`Gateway.system_condition` — the book, journal, outbox and notifications of any alarm: a risen
night raises it (or rewords it with the new figures while it stays active), a night back within
the ratio clears it, a night without verdict (gaps, too few reference nights) leaves it as it is.

Warning class (`low` or `medium`), never life-safety. The rule engine does not know the alarm, so
it is nobody's root cause and suppresses, delays or mutes nothing; nor is it suppressed by the
meter's comm_loss: it judges stored good readings, and a night the meter was silent has gaps.

The nights judged are kept in `<storage>/baseload.json` (`NightLedger`), written after the
alarm's commit: a restart does not judge a night twice, and a crash between the two judges it
again with the same verdict, which changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from config.models import BaseloadRise
from gateway.baseload import MinuteSource, Verdict, evaluate, latest_night, night
from gateway.baseload_rules import RULE
from gateway.components import Capabilities, Component, ComponentContext
from rules.engine import ConditionChange

if TYPE_CHECKING:
    from config.site import Site

log = logging.getLogger("fgw.baseload")

SETTLE = 300.0
"""Seconds after 05:00 before a night is judged: its last minutes reach the history file by then
(at least two of the history's commit intervals and a minute, see `settle_of`)."""
RETRY = 600.0
"""Seconds before a failed evaluation (history unreadable) is tried again."""
LEDGER = "baseload.json"
T = TypeVar("T")


def settle_of(site: Site) -> float:
    """Seconds after 05:00 before judging: `SETTLE`, or longer for a slow history commit."""
    return max(SETTLE, 2 * site.file.history.commit_interval + 60.0)


class NightLedger:
    """The last night judged per meter and its verdict, in a small JSON file (mode 0600).

    A file that cannot be read counts as empty (the latest night is judged again: harmless).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.verdicts: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("night baseload ledger %s unreadable (%s): judging again", path, exc)
            return
        if isinstance(data, dict):
            self.verdicts = {m: v for m, v in data.items() if isinstance(v, dict)}

    def last(self, meter: str) -> str | None:
        """The last night judged for `meter` (YYYY-MM-DD), None when none was."""
        night_name = self.verdicts.get(meter, {}).get("night")
        return night_name if isinstance(night_name, str) else None

    def record(self, verdicts: Iterable[Verdict]) -> None:
        for verdict in verdicts:
            self.verdicts[verdict.meter] = asdict(verdict)

    def save(self) -> None:
        """Write the file atomically (a temporary file, fsync, rename)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.verdicts, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class BaseloadAlarm(Component):
    """Judges each opted-in meter's night once and raises or clears `{meter}.baseload_rise`.

    Args:
        site: the site (its opted-in meters, time zone and storage folder).
        history: the minute aggregates the nights are judged from (the history store).
        system_condition: raises and clears the alarm through the alarm book.
        settle: seconds after 05:00 site time before a night is judged.
    """

    name = "baseload_alarm"

    def __init__(
        self,
        site: Site,
        history: MinuteSource,
        system_condition: Callable[[ConditionChange], None],
        settle: float | None = None,
    ) -> None:
        self.history = history
        self.system_condition = system_condition
        self.zone = ZoneInfo(site.file.site.timezone)
        self.settle = settle_of(site) if settle is None else settle
        self.meters: dict[str, BaseloadRise] = {
            d.id: d.spec.baseload_rise
            for d in site.devices.values()
            if d.spec.baseload_rise is not None
        }
        self.spacing = {m: max(60.0, site.devices[m].spec.poll) for m in self.meters}
        self.ledger = NightLedger(site.storage_dir / LEDGER)
        self.failing: str | None = None  # why the last evaluation failed, until one works
        self.next_due = float("-inf")  # wall time before which no night is due: look at once
        self.judged = 0  # verdicts made since the start (a night without verdict included)
        self._now = 0.0
        self._wake = asyncio.Event()
        self._threads: set[asyncio.Future[Any]] = set()  # judging or saving, in a worker thread

    def due(self, wall: float) -> tuple[date, list[str]]:
        """The latest night that may be judged at `wall`, and the meters not yet judged on it."""
        day = latest_night(wall, self.zone, self.settle)
        name = day.isoformat()
        return day, [m for m in self.meters if (self.ledger.last(m) or "") < name]

    def on_tick(self, wall: float, monotonic: float) -> None:
        if wall < self.next_due:
            return
        self._now = wall
        day, meters = self.due(wall)
        if meters:
            self._wake.set()  # again while one runs: it finds the meters judged, does nothing
        else:  # nothing until the next night has ended and settled
            self.next_due = night(day + timedelta(days=1), self.zone).end + self.settle

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.evaluate_due(self._now)
            except Exception:
                # a fault of this once-a-night warning must not end the gateway's task group
                # (and with it the fire and lift alarms): logged whole, tried again later
                log.exception("night baseload evaluation failed")
                self.next_due = self._now + RETRY

    async def evaluate_due(self, wall: float) -> list[Verdict]:
        """Judge the latest night of every meter not yet judged on it, raise or clear, record."""
        day, meters = self.due(wall)
        if not meters:
            return []
        try:
            verdicts = await self._in_thread(self._judge, day, meters)
        except Exception as exc:  # the history unreadable: no verdict, tried again later
            self.next_due = wall + RETRY
            self._wake.clear()  # a tick during the try: not again before RETRY
            if self.failing is None:
                log.error("night baseload of %s not judged: %s", day, exc)
            self.failing = str(exc) or type(exc).__name__
            return []
        if self.failing is not None:
            log.info("night baseload judged again after: %s", self.failing)
            self.failing = None
        self.judged += len(verdicts)
        for verdict in verdicts:
            self._tell(verdict, wall)
        self.ledger.record(verdicts)
        try:
            await self._in_thread(self.ledger.save)
        except OSError as exc:  # judged again after a restart, with the same verdict
            log.warning("night baseload ledger not saved: %s", exc)
        return verdicts

    def _judge(self, day: date, meters: list[str]) -> list[Verdict]:
        history = self.history
        return [
            evaluate(history, m, day, self.zone, self.meters[m], self.spacing[m]) for m in meters
        ]

    def _tell(self, verdict: Verdict, wall: float) -> None:
        meter = verdict.meter
        if verdict.risen is None or verdict.night_kw is None or verdict.reference_kw is None:
            log.info(
                "night baseload of %s on %s: no verdict, %s", meter, verdict.night, verdict.why
            )
            return
        rule = self.meters[meter]
        times = verdict.times
        values: dict[str, Any] = {
            "meter": meter,
            "night": verdict.night,
            "night_kw": round(verdict.night_kw, 3),
            "reference_kw": round(verdict.reference_kw, 3),
            "nights": verdict.nights,
            "ratio": rule.ratio,
        }
        if times is not None:
            values["times"] = round(times, 3)
        reason = (
            f"night {verdict.night}: {verdict.night_kw:.2f} kW against {verdict.reference_kw:.2f} kW "
            f"over {verdict.nights} nights (limit {rule.ratio:g}x)"
        )
        self.system_condition(
            ConditionChange(
                alarm_id=f"{meter}.{RULE}",
                device=meter,
                rule=RULE,
                active=verdict.risen,
                suppressed=False,
                value=values["night_kw"],
                values=values,
                ts_wall=wall,
                reason=reason,
            )
        )

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread that a cancellation does not abandon (`close` waits)."""
        job = asyncio.get_running_loop().run_in_executor(None, fn, *args)
        self._threads.add(job)
        job.add_done_callback(self._threads.discard)
        return await asyncio.shield(job)

    async def close(self) -> None:
        """Let a judgement or a save under way finish: the history store closes after this, and
        a ledger half-saved at a clean stop would have the night judged again."""
        if self._threads:
            await asyncio.wait(list(self._threads), timeout=30.0)


def build(context: ComponentContext, capabilities: Capabilities) -> Component | None:
    """The `gateway.registry` factory (listed only when a meter opts in); none without a history."""
    if capabilities.history is None:
        return None
    return BaseloadAlarm(context.site, capabilities.history, context.system_condition)
