"""Durable notifications: a hypothesis state machine over alarm transitions, acknowledgements,
restarts, crashes mid-send and channel failures, on a real gateway and its real SQLite file.

The channels are in-memory receivers that can be down; the senders' steps
(`NotifyComponent.attempt`) are driven one at a time, so a crash can land between a channel
taking a message and the row being marked sent — the one duplicate a crash may cause.

Properties: every transition that makes a notification due commits its rows with it (none lost,
across crashes); a row never comes back once it ended; nothing is sent for an episode after its
acknowledgement; after the channels recover every row ends sent or moot, every sent row was
received, and duplicates are at most one per crash mid-send.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from config.site import load_site
from gateway.notify.component import DONE, IDLE, LATER, NotifyComponent
from gateway.notify.webhook import DeliveryError
from gateway.service import Gateway
from ground.backoff import Backoff
from ground.model import Quality, Reading
from rules.alarms import TransitionRefused
from tests.support import examples, free_port

WALL0 = 1_800_000_000.0
FIRE, PUMP = "fire-1.fire_alarm", "pump-1.pump_fault"
CHANNELS = ("a", "b")

SITE = """
site: {{id: durable, name: 河畔花园, locale: zh-CN}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
playbooks: [{{id: fire, enabled: false}}]  # escalation alone: no overdue steps announced here
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 30}}}}
  - {{id: pump-1, template: booster_pump, modbus: {{bus: bus, unit: 1}}}}
notify:
  channels:
    - {{id: a, kind: webhook, url: "http://127.0.0.1:9/a"}}
    - {{id: b, kind: webhook, url: "http://127.0.0.1:9/b"}}
  escalation:
    critical: {{after: 0s, notify: [a, b], repeat: 5m}}
    high: {{after: 10m, notify: [b]}}
"""


class Clock:
    def __init__(self) -> None:
        self.mono = 100.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return WALL0 + self.mono


class Receiver:
    """A channel's far end: takes messages while up, remembers every one it took."""

    def __init__(self, acked: set[tuple[str, int]]) -> None:
        self.up = True
        self.received: list[tuple[str, int, int, int]] = []
        self._acked = acked

    def key(self, content: dict[str, Any]) -> tuple[str, int, int, int]:
        alarm = content["alarm"]
        return (alarm["id"], alarm["episode"], content["step"], content["repeat"])

    async def send(self, content: dict[str, Any]) -> None:
        if not self.up:
            raise DeliveryError("HTTP 503")
        key = self.key(content)
        assert key[:2] not in self._acked, f"sent after its acknowledgement: {key}"
        self.received.append(key)


def rows(db: sqlite3.Connection) -> dict[tuple[str, str, int, int, int], str]:
    found = db.execute(
        "SELECT channel, alarm_id, episode, step, repeat, state FROM notifications"
    ).fetchall()
    return {tuple(r[:5]): r[5] for r in found}  # type: ignore[misc]


class DurableNotifications(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(TMP.mktemp("durable"))
        self.path = self.folder / "site.yaml"
        self.path.write_text(SITE.format(mqtt=free_port(), modbus=free_port()))
        self.clock = Clock()
        self.loop = asyncio.new_event_loop()
        self.acked: set[tuple[str, int]] = set()
        self.receivers = {cid: Receiver(self.acked) for cid in CHANNELS}
        self.crashes_in_flight = 0
        self.seen: dict[tuple[str, str, int, int, int], str] = {}
        self._start()

    def _start(self) -> None:
        self.gw = Gateway(
            load_site(self.path), monotonic=self.clock.monotonic, wall=self.clock.wall
        )
        self.notify = next(c for c in self.gw.components if isinstance(c, NotifyComponent))
        self.loop.run_until_complete(self.notify.close())  # the real HTTP clients: not used here
        for cid in CHANNELS:
            self.notify.senders[cid] = self.receivers[cid]  # type: ignore[assignment]
        self.backoff = {cid: Backoff(initial=1.0, cap=60.0) for cid in CHANNELS}

    def _crash(self) -> None:
        """As a SIGKILL: nothing more is written; the file keeps what was committed."""
        self.gw.history.close()
        self.gw.store.close()
        self._start()

    def read(self, device: str, **values: Any) -> None:
        wall = self.clock.wall()
        self.gw.readings([Reading(device, p, v, Quality.GOOD, wall) for p, v in values.items()])
        self.gw.process_queued()

    # ------------------------------------------------------------------ rules

    @rule(on=st.booleans())
    def fire(self, on: bool) -> None:
        self.read("fire-1", fire=on, zones=4 if on else 0)

    @rule(on=st.booleans())
    def pump_fault(self, on: bool) -> None:
        self.read("pump-1", fault=on)

    @rule(alarm=st.sampled_from([FIRE, PUMP]))
    def acknowledge(self, alarm: str) -> None:
        before = self.gw.book.get(alarm)
        try:
            self.gw.acknowledge(alarm, "ann", "on my way")
        except TransitionRefused:
            return
        self.acked.add((alarm, before.episode))

    @rule(seconds=st.sampled_from([1.0, 30.0, 61.0, 300.0, 600.0]))
    def advance(self, seconds: float) -> None:
        end = self.clock.mono + seconds
        while self.clock.mono < end:
            self.clock.mono = min(end, self.clock.mono + 30.0)
            self.gw.tick_once()

    @rule(channel=st.sampled_from(CHANNELS), up=st.booleans())
    def channel_state(self, channel: str, up: bool) -> None:
        self.receivers[channel].up = up

    @rule(channel=st.sampled_from(CHANNELS))
    def deliver(self, channel: str) -> None:
        self.loop.run_until_complete(self.notify.attempt(channel, self.backoff[channel]))

    @rule()
    def restart(self) -> None:
        self._crash()

    @precondition(lambda self: any(r.up for r in self.receivers.values()))
    @rule(channel=st.sampled_from(CHANNELS))
    def crash_mid_send(self, channel: str) -> None:
        """The channel takes a message; the process dies before the row is marked sent."""
        receiver = self.receivers[channel]
        row = self.notify.store.next_due(channel)
        if receiver.up and row is not None and row.due <= self.clock.wall():
            self.loop.run_until_complete(receiver.send(row.content))
            self.crashes_in_flight += 1
        self._crash()

    # ------------------------------------------------------------------ invariants

    @invariant()
    def nothing_due_is_lost_and_nothing_ended_comes_back(self) -> None:
        db = self.gw.store.connection
        now = rows(db)
        for key, state in self.seen.items():
            assert key in now, f"row lost: {key}"
            assert state == "pending" or now[key] == state, f"{key}: {state} -> {now[key]}"
        self.seen = now
        announced = db.execute(
            "SELECT DISTINCT episode FROM alarm_journal WHERE alarm_id = ? AND to_state = ?",
            (FIRE, "active_unack"),
        ).fetchall()
        for (episode,) in announced:  # a critical alarm: both channels at once, same commit
            for cid in CHANNELS:
                assert (cid, FIRE, episode, 0, 0) in now, f"no row for {FIRE} #{episode} on {cid}"

    def teardown(self) -> None:
        try:
            for receiver in self.receivers.values():
                receiver.up = True
            for cid in CHANNELS:  # drain: no more ticks, so no new repeats
                for _ in range(500):
                    outcome, wait = self.loop.run_until_complete(
                        self.notify.attempt(cid, self.backoff[cid])
                    )
                    if outcome == IDLE:
                        break
                    if outcome == LATER:
                        self.clock.mono += wait
                    assert outcome in (DONE, LATER), outcome  # every channel is up: no FAILED
            final = rows(self.gw.store.connection)
            assert set(final.values()) <= {"sent", "moot"}, Counter(final.values())
            for cid, receiver in self.receivers.items():
                got = Counter(receiver.received)
                sent = {k[1:] for k, s in final.items() if k[0] == cid and s == "sent"}
                assert sent <= set(got), f"{cid}: marked sent, never received"
                assert set(got) <= {k[1:] for k in final if k[0] == cid}
            duplicates = sum(
                n - 1 for r in self.receivers.values() for n in Counter(r.received).values()
            )
            assert duplicates <= self.crashes_in_flight
        finally:
            self.gw.history.close()
            self.gw.store.close()
            self.loop.close()


TMP: Any = None


@pytest.fixture
def tmp_factory(tmp_path_factory: pytest.TempPathFactory) -> Any:
    global TMP
    TMP = tmp_path_factory
    return tmp_path_factory


def test_durable_notifications_state_machine(tmp_factory: Any) -> None:
    DurableNotifications.TestCase.settings = settings(
        max_examples=examples(20),
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    DurableNotifications.TestCase().runTest()


# ------------------------------------------------------------------ examples on a real robot
