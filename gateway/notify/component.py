"""The notification component: escalation on the gateway's clock, one sending task per channel.

Hooks never block the gateway's loop: `on_transitions` and `on_tick` only update the escalation
schedule and queue messages; each channel's task (`fgw[notify:ID].send`) delivers them in order,
retrying with the shared back-off (a mail server down for a minute delays a message, it does not
lose it; after `MAX_ATTEMPTS` a message is dropped, counted and logged). A channel's failures are
logged once when it fails and once when it works again, not once per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.backoff import Backoff
from gateway.components import Component
from gateway.notify.message import Message, compose
from gateway.notify.smtp import EmailSender
from gateway.notify.webhook import DeliveryError, WebhookSender
from rules.escalation import Escalator, Notification, Step

if TYPE_CHECKING:
    from gateway.service import Gateway
    from rules.alarms import AlarmTransition

log = logging.getLogger("fgw.notify")

MAX_QUEUED = 1000
"""Messages waiting per channel beyond this are dropped (counted): memory stays bounded."""

MAX_ATTEMPTS = 8
"""Tries per message before it is given up (about two minutes with the default back-off)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for one channel: the text for e-mail, the JSON for webhooks."""

    notification: Notification
    message: Message
    body: dict[str, Any]


@dataclass(slots=True)
class ChannelStats:
    sent: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    last_error: str = ""
    queue: asyncio.Queue[Outgoing] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))


class NotifyComponent(Component):
    """Tells people about unacknowledged alarms per the site's `notify:` section."""

    name = "notify"

    def __init__(self, gateway: Gateway, backoff: Backoff | None = None) -> None:
        self.gateway = gateway
        site = gateway.site
        config = site.file.notify
        base = site.path.parent
        self.locale = site.file.site.locale
        self.site_name = site.file.site.name or site.id
        self.senders: dict[str, EmailSender | WebhookSender] = {}
        for channel in config.channels:
            sender = EmailSender if channel.kind == "email" else WebhookSender
            self.senders[channel.id] = sender(channel, base)
        self.channels = {cid: ChannelStats() for cid in self.senders}
        policy = {
            priority: [Step(s.after, tuple(s.notify), s.repeat) for s in steps]
            for priority, steps in config.escalation.items()
            if steps
        }
        self.escalator = Escalator(policy)
        self._backoff = backoff
        self._monotonic = gateway._monotonic
        now_mono, now_wall = gateway._monotonic(), gateway._wall()
        for alarm in gateway.book.all():  # after a restart: carry on with the schedule
            if alarm.state == "active_unack" and alarm.raised_at is not None:
                self.escalator.restore(
                    alarm.id, alarm.priority, alarm.episode, now_wall - alarm.raised_at, now_mono
                )

    # ------------------------------------------------------------------ hooks

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        now = self._monotonic()
        for t in transitions:
            self.escalator.observe(t.alarm_id, t.alarm.priority, str(t.to_state), t.episode, now)
        self._send_due(now)  # "at once" means this tick, not the next one

    def on_tick(self, wall: float, monotonic: float) -> None:
        self._send_due(monotonic)

    def _send_due(self, now: float) -> None:
        for notification in self.escalator.tick(now):
            try:
                alarm = self.gateway.book.get(notification.alarm_id)
            except KeyError:
                continue
            payload = alarm.payload()
            device = self.gateway.site.devices.get(alarm.device)
            message = compose(
                payload,
                locale=self.locale,
                site_name=self.site_name,
                repeat=notification.repeat,
                device_name=device.spec.name if device else "",
            )
            body = {
                "type": "alarm_notification",
                "site": self.gateway.site.id,
                "step": notification.step,
                "repeat": notification.repeat,
                "subject": message.subject,
                "text": message.body,
                "alarm": payload,
            }
            for channel_id in notification.channels:
                stats = self.channels.get(channel_id)
                if stats is None:
                    continue
                try:
                    stats.queue.put_nowait(Outgoing(notification, message, body))
                except asyncio.QueueFull:
                    stats.dropped += 1
                    if stats.dropped in (1, 10, 100) or stats.dropped % 1000 == 0:
                        log.warning("notify %s: queue full, %d dropped", channel_id, stats.dropped)

    def announce(
        self, priority: str, subject: str, text: str, body: Mapping[str, Any], *, drill: bool
    ) -> int:
        """One message, outside escalation (an incident's overdue step), to every channel of
        `priority`'s escalation steps, once. A drill's goes nowhere unless `notify.drills` is true.
        Returns on how many channels it was queued."""
        if drill and not self.gateway.site.file.notify.drills:
            return 0
        steps = self.escalator.policy.get(priority) or ()
        channels = tuple(dict.fromkeys(c for step in steps for c in step.notify))
        key = str(body.get("incident", {}).get("id", ""))
        notification = Notification(f"incident:{key}", 0, priority, tuple(channels), 0, 0)
        queued = 0
        for channel_id in channels:
            stats = self.channels.get(channel_id)
            if stats is None:
                continue
            try:
                stats.queue.put_nowait(Outgoing(notification, Message(subject, text), dict(body)))
                queued += 1
            except asyncio.QueueFull:
                stats.dropped += 1
        return queued

    # ------------------------------------------------------------------ sending

    async def run(self) -> None:
        if not self.senders:
            return
        async with asyncio.TaskGroup() as tg:
            for channel_id in self.senders:
                tg.create_task(self._deliver(channel_id), name=f"fgw[notify:{channel_id}].send")

    async def _deliver(self, channel_id: str) -> None:
        sender = self.senders[channel_id]
        stats = self.channels[channel_id]
        backoff = self._backoff or Backoff(initial=1.0, cap=30.0)
        failing = False
        while True:
            item = await stats.queue.get()
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    if isinstance(sender, EmailSender):
                        await sender.send(item.message)
                    else:
                        await sender.send(item.body)
                except DeliveryError as exc:
                    stats.failed_attempts += 1
                    stats.last_error = str(exc)
                    if not failing:
                        log.warning("notify %s failing: %s", channel_id, exc)
                        failing = True
                    if attempt == MAX_ATTEMPTS:
                        stats.dropped += 1
                        log.error(
                            "notify %s: gave up on %s after %d tries",
                            channel_id,
                            item.notification.alarm_id,
                            attempt,
                        )
                        break
                    await asyncio.sleep(backoff.next_delay())
                    continue
                stats.sent += 1
                backoff.reset()
                if failing:
                    log.info("notify %s works again", channel_id)
                    failing = False
                break

    async def close(self) -> None:
        for sender in self.senders.values():
            if isinstance(sender, WebhookSender):
                await sender.close()

    def stats(self) -> dict[str, dict[str, Any]]:
        return {
            cid: {
                "sent": s.sent,
                "failed_attempts": s.failed_attempts,
                "dropped": s.dropped,
                "queued": s.queue.qsize(),
                "last_error": s.last_error,
            }
            for cid, s in self.channels.items()
        }


def build(gateway: Gateway) -> NotifyComponent | None:
    """The `COMPONENTS` factory: a component only when the site has notification channels."""
    if not gateway.site.file.notify.channels:
        return None
    return NotifyComponent(gateway)
