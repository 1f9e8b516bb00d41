"""The notification component: escalation on the gateway's clock, durable rows, a sender per channel.

- A notification that an alarm transition makes due is staged in `before_commit` and written by
  `stage` inside the journal's own transaction (PRODUCT §9); one that falls due on the clock (a
  later step, a `repeat:`) is committed on the tick. Both are rows of `NotificationStore`.
- Each channel's task (`fgw[notify:ID].send`) works through its due rows, oldest first, with the
  shared back-off capped at `RETRY_CAP`; one channel failing never holds another back.
- A row ends when the channel takes it, when its alarm is acknowledged (moot, in the ack's own
  transaction), or after the channel's `give_up_after` (counted, logged once per message, shown
  on `/healthz`, `/metrics` and the console's health panel).
- A channel's failures are logged once when it fails and once when it works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.alarm_options import ROBOTS, ChannelConfig
from gateway.components import Capabilities, Component, ComponentContext
from gateway.notify.message import Message, compose
from gateway.notify.robots import RobotSender
from gateway.notify.smtp import EmailSender
from gateway.notify.store import GIVEN_UP, KEEP_ENDED, SENT, NewRow, NotificationStore
from gateway.notify.webhook import DeliveryError, WebhookSender
from ground.backoff import Backoff
from rules.escalation import Escalator, Notification, Step, escalating

if TYPE_CHECKING:
    from pathlib import Path

    from rules.alarms import AlarmTransition

log = logging.getLogger("fgw.notify")

RETRY_CAP = 60.0
"""Longest wait between two attempts on a failing channel (PRODUCT §9)."""

MIN_TRIES = 3
"""Tries before a notification may be given up, whatever the wall clock says: a clock set forward
(NTP after a boot without a real-time clock) must not end a message that was never really tried."""

Sender = EmailSender | WebhookSender | RobotSender

DONE, FAILED, LATER, IDLE = "done", "failed", "later", "idle"
"""What one attempt of a channel's sender came to (`NotifyComponent.attempt`)."""


@dataclass(slots=True)
class ChannelStats:
    """What a channel's sender did since start (the rows themselves are in the store)."""

    sent: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    last_error: str = ""
    failing: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    unmarked: set[int] = field(default_factory=set)  # sent, but the disk refused to record it


def make_sender(channel: ChannelConfig, base: Path, wall: Callable[[], float]) -> Sender:
    """The sender for a channel's kind (reads its secret files now: a missing one fails start)."""
    if channel.kind == "email":
        return EmailSender(channel, base)
    if channel.kind in ROBOTS:
        return RobotSender(channel, base, wall)
    return WebhookSender(channel, base)


class NotifyComponent(Component):
    """Tells people about unacknowledged alarms per the site's `notify:` section."""

    name = "notify"

    def __init__(
        self, context: ComponentContext, backoff: Callable[[], Backoff] | None = None
    ) -> None:
        self.site = site = context.site
        self.alarms = context.alarms
        config = site.file.notify
        base = site.path.parent
        self.locale = site.file.site.locale
        self.site_name = site.file.site.name or site.id
        self.public_url = site.file.console.public_url
        self._monotonic = context.clock.monotonic
        self._wall = context.clock.wall
        self.senders: dict[str, Sender] = {
            c.id: make_sender(c, base, self._wall) for c in config.channels
        }
        self.give_up_after = {c.id: c.give_up_after for c in config.channels}
        self.channels = {cid: ChannelStats() for cid in self.senders}
        self._backoff = backoff or (lambda: Backoff(initial=1.0, cap=RETRY_CAP))
        self.store = NotificationStore(context.db)
        self._write_error: str | None = None
        policy = {
            priority: [Step(s.after, tuple(s.notify), s.repeat) for s in steps]
            for priority, steps in config.escalation.items()
            if steps
        }
        self.escalator = Escalator(policy)
        now_mono, now_wall = self._monotonic(), self._wall()
        with contextlib.suppress(sqlite3.Error):  # a full disk must not stop the start
            self.store.prune(now_wall - KEEP_ENDED)
        made = self.store.created_per_step()
        for alarm in self.alarms.all():  # after a restart: carry on with the schedule
            if escalating(str(alarm.state), alarm.life_safety) and alarm.raised_at is not None:
                self.escalator.restore(
                    alarm.id,
                    alarm.priority,
                    alarm.episode,
                    now_wall - alarm.raised_at,
                    now_mono,
                    made=made.get((alarm.id, alarm.episode), {}),
                )

    # ------------------------------------------------------------------ in the alarm's transaction

    def before_commit(self, transitions: Sequence[AlarmTransition]) -> None:
        """Transitions about to be journaled: follow them and stage what they make due or moot."""
        now, wall = self._monotonic(), self._wall()
        for t in transitions:
            self.escalator.observe(
                t.alarm_id,
                t.alarm.priority,
                str(t.to_state),
                t.episode,
                now,
                life_safety=t.alarm.life_safety,
            )
            if _acknowledged(t):
                self.store.moot(t.alarm_id, t.episode, wall)
        self.store.add(self._rows(self.escalator.tick(now)), wall)

    def stage(self, db: sqlite3.Connection) -> None:
        self.store.stage(db)

    def staged(self) -> None:
        self._wake(self.store.staged())

    # ------------------------------------------------------------------ on the clock

    def on_tick(self, wall: float, monotonic: float) -> None:
        self.store.add(self._rows(self.escalator.tick(monotonic)), wall)
        if not self.store.has_staged:
            return
        try:
            self._wake(self.store.commit())
        except sqlite3.Error as exc:  # disk full: kept staged, tried again next tick
            if self._write_error is None:
                log.error("notifications: cannot write (%s); they wait in memory", exc)
            self._write_error = str(exc)
            return
        if self._write_error is not None:
            log.info("notifications: writing again")
            self._write_error = None

    def _wake(self, channels: set[str]) -> None:
        for channel_id in channels:
            stats = self.channels.get(channel_id)
            if stats is not None:
                stats.wake.set()

    def _rows(self, due: Sequence[Notification]) -> list[NewRow]:
        rows: list[NewRow] = []
        for notification in due:
            try:
                alarm = self.alarms.get(notification.alarm_id)
            except KeyError:
                continue
            content = self._content(alarm.payload(), alarm.record(), notification)
            rows.extend(
                NewRow(cid, notification.alarm_id, notification.episode, notification.step,
                       notification.repeat, content)
                for cid in notification.channels
                if cid in self.senders
            )  # fmt: skip
        return rows

    def _content(
        self, payload: dict[str, Any], record: dict[str, Any], notification: Notification
    ) -> dict[str, Any]:
        """What every channel sends, as stored: the webhook's JSON, of which the others take parts."""
        device = self.site.devices.get(str(payload.get("device")))
        during = record.get("during") or payload.get("during")
        link = None
        if self.public_url:
            link = f"{self.public_url}/#/alarm/{urllib.parse.quote(str(payload['id']), safe='')}"
        message = compose(
            payload,
            locale=self.locale,
            site_name=self.site_name,
            repeat=notification.repeat,
            device_name=device.spec.name if device and device.spec.name else "",
            during=str(during) if during else None,
            link=link,
        )
        content: dict[str, Any] = {
            "type": "alarm_notification",
            "site": self.site.id,
            "step": notification.step,
            "repeat": notification.repeat,
            "subject": message.subject,
            "text": message.body,
            "alarm": payload,
        }
        if link:
            content["link"] = link
        if during:
            content["during"] = during
        return content

    def announce(
        self, priority: str, subject: str, text: str, body: Mapping[str, Any], *, drill: bool
    ) -> int:
        """One message, outside escalation (an incident's overdue step), to every channel of
        `priority`'s escalation steps, once. A drill's goes nowhere unless `notify.drills` is true.

        Durable like the alarms' notifications: one row per channel, keyed by incident and step,
        so it is sent once across restarts; no acknowledgement makes it moot. Returns on how many
        channels it was queued."""
        if drill and not self.site.file.notify.drills:
            return 0
        steps = self.escalator.policy.get(priority) or ()
        channels = [
            c for c in dict.fromkeys(c for s in steps for c in s.notify) if c in self.senders
        ]
        incident = body.get("incident") or {}
        incident_id = int(incident.get("id", 0) or 0)
        key = f"incident:{incident_id}:{body.get('step') or ''}"
        content = {**body, "subject": subject, "text": text}
        self.store.add(
            [NewRow(cid, key, incident_id, 0, 0, content) for cid in channels], self._wall()
        )
        return len(channels)

    # ------------------------------------------------------------------ sending

    async def run(self) -> None:
        if not self.senders:
            return
        async with asyncio.TaskGroup() as tg:
            for channel_id in self.senders:
                tg.create_task(self._deliver(channel_id), name=f"fgw[notify:{channel_id}].send")

    async def _deliver(self, channel_id: str) -> None:
        """Work through the channel's due rows until cancelled."""
        stats = self.channels[channel_id]
        backoff = self._backoff()
        while True:
            stats.wake.clear()
            outcome, seconds = await self.attempt(channel_id, backoff)
            if outcome == IDLE:
                await stats.wake.wait()
            elif outcome == LATER:
                await _wait(stats.wake, seconds)  # new rows may be due sooner
            elif outcome == FAILED:
                await asyncio.sleep(seconds)  # the channel's back-off: new rows wait too

    async def attempt(self, channel_id: str, backoff: Backoff) -> tuple[str, float]:
        """One step of a channel's sender: send its most overdue row, or say how long to wait.

        Returns:
            `(DONE, 0)` a row ended (sent, given up); `(FAILED, s)` the channel refused it, try
            again in `s`; `(LATER, s)` the next row is due in `s`; `(IDLE, 0)` nothing pending.
        """
        stats = self.channels[channel_id]
        try:
            row = self.store.next_due(channel_id)
        except sqlite3.Error:
            return LATER, 1.0
        if row is None:
            return IDLE, 0.0
        now = self._wall()
        if now < row.due <= now + RETRY_CAP:  # further ahead: the wall clock went back, try now
            return LATER, row.due - now
        if row.id in stats.unmarked:
            self._end(stats, row.id, SENT, "")
            return DONE, 0.0
        if row.attempts >= MIN_TRIES and now - row.created >= self.give_up_after[channel_id]:
            self._end(stats, row.id, GIVEN_UP, stats.last_error)
            stats.given_up += 1
            log.error(
                "notify %s: gave up on %s (episode %d) after %d tries over %.0fs: %s",
                channel_id, row.alarm_id, row.episode, row.attempts, now - row.created,
                stats.last_error,
            )  # fmt: skip
            return DONE, 0.0
        try:
            await self._send(channel_id, row.content)
        except DeliveryError as exc:
            stats.failed_attempts += 1
            stats.last_error = str(exc)
            if not stats.failing:
                log.warning("notify %s failing: %s", channel_id, exc)
                stats.failing = True
            delay = backoff.next_delay()
            with contextlib.suppress(sqlite3.Error):  # else the row stays due: same wait
                self.store.failed(row.id, str(exc), self._wall() + delay)
            return FAILED, delay
        stats.sent += 1
        self._end(stats, row.id, SENT, "")
        backoff.reset()
        if stats.failing:
            log.info("notify %s works again", channel_id)
            stats.failing = False
        return DONE, 0.0

    async def _send(self, channel_id: str, content: dict[str, Any]) -> None:
        sender = self.senders[channel_id]
        if isinstance(sender, EmailSender):
            await sender.send(Message(str(content["subject"]), str(content["text"])))
        else:
            await sender.send(content)

    def _end(self, stats: ChannelStats, row_id: int, state: str, error: str) -> None:
        try:
            self.store.end(row_id, state, self._wall(), error)
        except sqlite3.Error:
            stats.unmarked.add(row_id)  # never sent again: marked once the disk takes it
            return
        stats.unmarked.discard(row_id)

    async def close(self) -> None:
        for sender in self.senders.values():
            if isinstance(sender, WebhookSender | RobotSender):
                await sender.close()

    def stats(self) -> dict[str, Any]:
        """Per channel: this run's counters and the stored rows by state; for health and metrics."""
        try:
            counts = self.store.counts()
        except sqlite3.Error:
            counts = {}
        channels: dict[str, Any] = {}
        for cid, s in self.channels.items():
            rows = counts.get(cid, {})
            channels[cid] = {
                "sent": s.sent,
                "failed_attempts": s.failed_attempts,
                "failing": s.failing,
                "pending": rows.get("pending", 0),
                "given_up": rows.get(GIVEN_UP, 0),
                "last_error": s.last_error,
            }
        return {
            "channels": channels,
            "given_up": sum(c["given_up"] for c in channels.values()),
            "failing": sorted(cid for cid, c in channels.items() if c["failing"]),
            "error": self._write_error,
        }


def _acknowledged(t: AlarmTransition) -> bool:
    """An acknowledgement: `active_unack -> active_ack` or `rtn_unack -> normal`."""
    return (str(t.from_state), str(t.to_state)) in (
        ("active_unack", "active_ack"),
        ("rtn_unack", "normal"),
    ) and t.alarm.acked_at is not None


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` passed."""
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        pass


def build(context: ComponentContext, capabilities: Capabilities) -> NotifyComponent | None:
    """The `gateway.registry` factory: a component only when the site has notification channels;
    offers `notify` (incidents announce through it)."""
    if not context.site.file.notify.channels:
        return None
    component = NotifyComponent(context)
    capabilities.notify = component
    return component
