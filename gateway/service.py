"""The gateway service: drivers -> rule engine -> alarm book -> alarm store + MQTT, for one site.

Readings arrive from the drivers through the `ReadingSink` methods, in arrival order: a batch with
nothing ahead of it goes through the pure rule engine and alarm book at once, in the driver's own
callback; otherwise it is queued for the task (`fgw[engine].process`) that works through the queue
and tells components, and another (`fgw[engine].tick`) advances timers. Each alarm transition is
committed to SQLite *before* it is handed to the publisher, so whatever subscribers saw is in the
journal after a power cut.

A reading's journal rows, outbox messages and the components' staged rows are one transaction;
components hear of its transitions once the broker has the alarm (docs/design/service.md).
Components are built from a `ComponentContext` and `Capabilities` (docs/design/components.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from config.site import Site
from drivers import build_drivers
from gateway.alarming import AlarmManagement
from gateway.baseload_rules import baseload_rules
from gateway.components import (
    AlarmCommands,
    Capabilities,
    Clock,
    Component,
    ComponentContext,
    EventBus,
    PublisherView,
    StatsRegistry,
    StatsSource,
)
from gateway.outbox_sqlite import SqliteOutbox
from gateway.publisher import MqttPublisher
from gateway.registry import build_components
from gateway.storage.history import HistoryStore
from gateway.storage.sqlite import AlarmStore
from gateway.wear_alarm import wear_rules
from ground.model import DeviceStatus, Reading
from ground.tasks import cancel_and_wait
from rules.alarms import Alarm, AlarmBook, AlarmTransition, UnknownAlarm
from rules.engine import ConditionChange, RuleEngine

log = logging.getLogger("fgw.service")

TICK_SECONDS = 0.25
"""How often timers (`for`, `clear_for`, windows) are advanced: bounds their lateness."""

SHELVE_MAX_MINUTES = 7 * 24 * 60
"""A shelve is temporary by nature; longer than a week is `remove_from_service`."""

MAX_DEFERRED = 64
"""Things components have not been told yet (while an alarm goes out) before they are told anyway."""

MAX_QUEUED_BATCHES = 10_000
"""Readings waiting for the engine beyond this are dropped (and counted); statuses never are."""

MAX_JOURNAL_BACKLOG = 100_000
"""Journal rows kept in memory while the disk refuses them (disk full); retried every tick."""

HEAP_FREEZE_AFTER = 10.0
"""Seconds after start when what start-up built (connections, the console's app) is frozen too."""


@dataclass(frozen=True, slots=True)
class _Transitions:
    """Transitions waiting to be told to components (a batch of readings is a plain sequence)."""

    transitions: Sequence[AlarmTransition]


class Gateway:
    """One site's running gateway. Use `await gateway.run(stop_event)`; one built and never run is
    closed with `await gateway.close()` or `async with Gateway(site) as gateway:`.

    Args:
        site: the validated site.
        monotonic: the clock for timers (injectable for tests).
        wall: the clock for timestamps.
    """

    def __init__(
        self,
        site: Site,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.site = site
        self.clock = Clock(monotonic=monotonic, wall=wall)
        rules = [*site.rules(), *site.bus_rules()]
        self.store = AlarmStore(site.storage_dir)
        self.engine = RuleEngine(rules, depends_on=site.depends_on())
        # the book also knows the gateway's own alarms (not the engine: they suppress nothing)
        own = [*wear_rules(site), *baseload_rules(site)]
        self.book = AlarmBook([*rules, *own], locale=site.file.site.locale)
        self.book.restore(Alarm.from_record(record) for record in self.store.alarm_records())
        # a restored active alarm must be able to clear: the engine starts from "inactive"
        self.engine.assume_active(self.book.active_condition_ids(), self.book.during())
        # alarms and events wait on disk for their PUBACK: a crash mid-outage loses none of them;
        # in the journal's file, so that a transition and its messages are one commit
        self.outbox = SqliteOutbox.shared(
            self.store.connection,
            self.store.path,
            max_droppable_bytes=site.file.mqtt.readings_queue_bytes,
        )
        self.publisher = MqttPublisher(site, snapshot=self._retained_snapshot, outbox=self.outbox)
        self.history = HistoryStore.for_site(site)
        self.events = EventBus(self.publisher.publish_event)
        self.journal_backlog: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.journal_error: str | None = None
        # chattering latch, floods, and delays restored from disk (gateway.alarming)
        self.alarming = AlarmManagement(
            site.file.alarms,
            self.book,
            self.engine,
            self.store.timers(),
            emit=self._emit,
            publish_event=self.events.publish,
            monotonic=monotonic(),
            wall=wall(),
        )
        self.drivers = build_drivers(site, self)
        self.context = ComponentContext(
            site=site,
            clock=self.clock,
            alarms=self.book,
            engine=self.engine,
            commands=AlarmCommands(
                acknowledge=self.acknowledge,
                acknowledge_device=self.acknowledge_device,
                shelve=self.shelve,
                unshelve=self.unshelve,
                remove_from_service=self.remove_from_service,
                return_to_service=self.return_to_service,
                journal=self.journal,
            ),
            events=self.events,
            db=self.store.connection,
            system_condition=self.system_condition,
            status=_Status(self),
            stats=StatsRegistry(),
        )
        self.capabilities = Capabilities(history=self.history)
        self.components: list[Component] = build_components(self.context, self.capabilities)
        # components whose rows commit in the journal's transaction (durable notifications)
        self._joined = [c for c in self.components if type(c).stage is not Component.stage]
        self._queue: deque[Sequence[Reading] | DeviceStatus] = deque()
        self._wakeup = asyncio.Event()
        self._deferring = False  # the `_process` task tells components after the send
        self._idle = False  # the `_process` task waits with nothing queued: readings may go inline
        self._deferred: deque[Sequence[Reading] | DeviceStatus | _Transitions] = deque()
        self.dropped_batches = 0
        self.transitions_total = 0
        self._closed = False
        # life-safety alarms stored suppressed or out of service come back, announced (PRODUCT §9)
        self._emit(self.book.reinstate(wall()))

    # ------------------------------------------------------------------ ReadingSink

    def readings(self, batch: Sequence[Reading]) -> None:
        if self._idle and not self._queue and not self._deferred:
            # nothing ahead of it: through the engine now, in the driver's own callback, rather
            # than a loop turn later in the engine's task (an alarm's path is one turn shorter);
            # components still hear of its transitions from the task, after the send
            self._deferring = True
            try:
                self._process_item(batch)
            finally:
                self._deferring = False
            if self._deferred:
                self._wakeup.set()
            return
        if len(self._queue) >= MAX_QUEUED_BATCHES:
            self.dropped_batches += 1
            if self.dropped_batches in (1, 10, 100) or self.dropped_batches % 1000 == 0:
                log.warning("engine behind: dropped %d reading batches", self.dropped_batches)
            return
        self._queue.append(batch)
        self._wakeup.set()

    def device_status(self, status: DeviceStatus) -> None:
        self._queue.append(status)
        self._wakeup.set()

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then shut down in order: drivers, engine, publisher."""
        log.info(
            "gateway starting",
            extra={"site": self.site.id, "devices": len(self.site.devices)},
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self.publisher.run(), name="fgw[mqtt-out].run")]
                for name, driver in self.drivers.items():
                    tasks.append(tg.create_task(driver.run(), name=f"fgw[{name}].run"))
                for component in self.components:
                    tasks.append(tg.create_task(component.run(), name=f"fgw[{component.name}].run"))
                tasks.append(tg.create_task(self._process(), name="fgw[engine].process"))
                tasks.append(tg.create_task(self._tick(), name="fgw[engine].tick"))
                await stop.wait()
                await cancel_and_wait(tasks)
        finally:
            self._closed = True
            await self._close_components()
            await self.publisher.stop()
            self._close_storage()
            log.info("gateway stopped", extra={"site": self.site.id})

    async def close(self) -> None:
        """Release what building opened — components, outbox, history, journal — for a gateway
        built and never run (`run` releases them itself). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._close_components()
        self._close_storage()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _close_components(self) -> None:
        for component in self.components:
            try:
                await component.close()
            except Exception:
                log.exception("component %s did not close cleanly", component.name)

    def _close_storage(self) -> None:
        self.outbox.close()
        self.history.close()
        self.store.close()

    async def _process(self) -> None:
        """The engine's task: like `process_queued`, but components hear of a batch's transitions
        (and of what came after them, in order) once the broker has the alarms — at most
        `publisher.delivered`'s wait later —, so no ticket's commit stands between a reading and
        its alarm, not even for readings queued behind it."""
        try:
            while True:
                self._idle = not self._queue and not self._deferred
                await self._wakeup.wait()
                self._idle = False
                self._wakeup.clear()
                while self._queue or self._deferred:
                    if self._queue:
                        self._deferring = True
                        try:
                            self._process_item(self._queue.popleft())
                        finally:
                            self._deferring = False
                    if not self._deferred:
                        continue
                    if not self._queue and await self._delivered_unless_more():
                        continue  # a reading came in meanwhile: its alarm first, telling after
                    if not self._queue or len(self._deferred) >= MAX_DEFERRED:
                        self._tell_deferred()
                await asyncio.sleep(0)
        finally:
            self._idle = False
            self._tell_deferred()

    async def _delivered_unless_more(self) -> bool:
        """Wait until the broker has the alarms (`publisher.delivered`), or until something new is
        queued, whichever comes first: waiting must not hold up the next reading. Returns whether
        something new came (then the caller handles it and waits again after)."""
        self._wakeup.clear()
        delivered = asyncio.ensure_future(self.publisher.delivered())
        more = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait((delivered, more), return_when=asyncio.FIRST_COMPLETED)
        finally:
            delivered.cancel()
            more.cancel()
        return bool(self._queue) and len(self._deferred) < MAX_DEFERRED

    def process_queued(self) -> None:
        """Feed every queued batch and status through the engine, telling components at once."""
        while self._queue:
            self._process_item(self._queue.popleft())

    def _process_item(self, item: Sequence[Reading] | DeviceStatus) -> None:
        now = self.clock.monotonic()
        if isinstance(item, DeviceStatus):
            changes = self.engine.device_status(item, now)
        else:
            changes = self.engine.ingest(item, now)
            if self.publisher.readings_enabled:
                self._publish_readings(item)
        if self._deferring and self._deferred:
            self._deferred.append(item)  # components are behind an alarm: keep their order
        else:
            self._tell_deferred()
            self._tell(item)
        self._handle(changes)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.tick_once()

    def tick_once(self) -> None:
        """Advance timers, shelves and components once (the `_tick` task's work)."""
        monotonic, wall = self.clock.monotonic(), self.clock.wall()
        self._write(())  # what a refused write left (journal rows, records, delays)
        self._handle(self.engine.tick(monotonic))
        self._emit(self.book.expire_shelves(wall))
        self.alarming.tick(monotonic, wall)
        for component in self.components:  # time, not an event: need not wait for deferred ones
            component.on_tick(wall, monotonic)
        self.store.checkpoint_if_due()

    def system_condition(self, change: ConditionChange) -> None:
        """A condition of the gateway itself (`gateway.wear_alarm`), through the same book, journal
        and outbox as the rules' conditions."""
        self._handle([change])

    def _handle(self, changes: Sequence[ConditionChange]) -> None:
        changes = self.alarming.filter(changes, self.clock.monotonic(), self.clock.wall())
        transitions: list[AlarmTransition] = []
        for change in changes:
            transitions.extend(self.book.apply(change))
        self._emit(transitions)
        self.alarming.after_changes(self.clock.wall())
        self._write(())  # delays changed by the flags' transitions, if any are left

    def _emit(self, transitions: Sequence[AlarmTransition]) -> None:
        """Journal and queue `transitions` in one transaction, send them, then tell components.

        The log lines come after the send: an alarm on its way to the duty technician should not wait
        for them.
        """
        if not transitions:
            self._write(())  # changes under an overlay, delays: no transition
            return
        for party in self._joined:
            try:
                party.before_commit(transitions)
            except Exception:  # a component's fault must not keep the alarm from the journal
                log.exception("component %s failed before the journal's commit", party.name)
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
        priorities: list[str] = []
        try:
            for t in transitions:  # into the outbox's memory; on disk with the journal rows
                self.transitions_total += 1
                payload, event = t.alarm.payload(), t.event()
                rows.append((t.alarm.record(), event))
                priorities.append(payload["priority"])
                self.publisher.publish_alarm(payload)
                self.events.publish(event)
        finally:
            rows.extend((t.alarm.record(), t.event()) for t in transitions[len(rows) :])
            self._write(rows)
        self.publisher.send_now()
        for t, priority in zip(transitions, priorities, strict=True):
            log.info(
                "alarm %s %s -> %s",
                t.alarm_id,
                t.from_state,
                t.to_state,
                extra={"alarm": t.alarm_id, "priority": priority, "episode": t.episode},
            )
        if self._deferring:
            self._deferred.append(_Transitions(transitions))
        else:
            self._tell_deferred()  # earlier ones first: components hear in order
            self._tell(_Transitions(transitions))
        self.alarming.committed(transitions, self.clock.monotonic())

    def _tell(self, what: Sequence[Reading] | DeviceStatus | _Transitions) -> None:
        """One thing, to every component, in the table's order."""
        if isinstance(what, _Transitions):
            for component in self.components:
                component.on_transitions(what.transitions)
        elif isinstance(what, DeviceStatus):
            for component in self.components:
                component.on_status(what)
        else:
            for component in self.components:
                component.on_readings(what)

    def _tell_deferred(self) -> None:
        while self._deferred:
            self._tell(self._deferred.popleft())

    def _write(self, rows: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Commit, in one transaction: journal `rows` (a transition's record and event, after any
        left by a refused write), records changed without a transition, delays that started or
        ended, and the outbox's new messages. The publisher sends nothing before this commit (its `peek`
        commits what is still unsaved first).

        A disk that refuses the write (full) must not silence alarms: the rows are kept in memory
        (bounded), published anyway, retried first on every tick, and reported by `health()`.
        """
        self.journal_backlog.extend(rows)
        records, timers = self.alarming.pending_writes()
        if not self.journal_backlog and not records and not timers:
            return
        try:
            self.store.write(
                self.clock.wall(),
                journal=self.journal_backlog,
                records=records,
                timers=timers,
                also=self._stage,
            )
        except sqlite3.Error as exc:
            self.alarming.write_failed(exc)
            if not self.journal_backlog:
                return
            if self.journal_error is None:
                log.error(
                    "alarm journal %s: cannot write (%s); alarms are still published, "
                    "their journal rows wait in memory",
                    self.store.path,
                    exc,
                )
            self.journal_error = str(exc)
            del self.journal_backlog[:-MAX_JOURNAL_BACKLOG]
            return
        self.outbox.staged()
        for party in self._joined:
            party.staged()
        self.alarming.written()
        if self.journal_error is not None:
            log.info("alarm journal: writing again (%d rows caught up)", len(self.journal_backlog))
            self.journal_error = None
        self.journal_backlog.clear()

    def _stage(self, db: sqlite3.Connection) -> None:
        """The journal transaction's other tables: the outbox, then the joined components'."""
        self.outbox.stage(db)
        for party in self._joined:
            party.stage(db)

    def health(self) -> dict[str, Any]:
        """`{"status": "ok" | "degraded" | "unhealthy", "checks": {...}}`, for `/healthz`."""
        monitor = self.capabilities.health
        return monitor.report() if monitor is not None else {"status": "ok", "checks": {}}

    def _publish_readings(self, batch: Sequence[Reading]) -> None:
        by_device: dict[str, list[Reading]] = {}
        for reading in batch:
            by_device.setdefault(reading.device, []).append(reading)
        for device, readings in by_device.items():
            self.publisher.publish_readings(device, readings)

    def _retained_snapshot(self) -> list[dict[str, Any]]:
        return [alarm.payload() for alarm in self.book.non_normal()]

    # ------------------------------------------------------------------ operator actions

    def acknowledge(self, alarm_id: str, user: str, comment: str = "") -> None:
        """Acknowledge one alarm (raises the book's refusal for a transition not allowed)."""
        self._emit(self.book.acknowledge(alarm_id, user, comment, self.clock.wall()))

    def acknowledge_device(self, device: str, user: str, comment: str = "") -> list[str]:
        """Acknowledge every alarm of `device` waiting for it; returns their ids (maybe none).

        Raises:
            UnknownAlarm: no such device (HTTP 404).
        """
        if device not in self.site.devices:
            raise UnknownAlarm(device)
        transitions = self.book.acknowledge_device(device, user, comment, self.clock.wall())
        self._emit(transitions)
        return [t.alarm_id for t in transitions]

    def shelve(self, alarm_id: str, user: str, minutes: float, reason: str) -> dict[str, Any]:
        """Shelve an alarm for `minutes` (at most 7 days), with a reason; returns its payload.

        Raises:
            UnknownAlarm (404); TransitionRefused (409: not shelvable, already shelved or out of
            service); ValueError (422: minutes not in (0, 10080]).
        """
        if not 0 < minutes <= SHELVE_MAX_MINUTES:
            raise ValueError(f"minutes must be in (0, {SHELVE_MAX_MINUTES}]")
        now = self.clock.wall()
        self._emit(self.book.shelve(alarm_id, user, reason, now + minutes * 60.0, now))
        return self.book.get(alarm_id).payload()

    def unshelve(self, alarm_id: str, user: str) -> dict[str, Any]:
        """End a shelve early; the alarm shows its true state again. Raises as `shelve`."""
        self._emit(self.book.unshelve(alarm_id, user, self.clock.wall()))
        return self.book.get(alarm_id).payload()

    def remove_from_service(self, alarm_id: str, user: str, reason: str) -> dict[str, Any]:
        """Take an alarm out of service (sensor removed, equipment decommissioned)."""
        self._emit(self.book.remove_from_service(alarm_id, user, reason, self.clock.wall()))
        return self.book.get(alarm_id).payload()

    def return_to_service(self, alarm_id: str, user: str) -> dict[str, Any]:
        self._emit(self.book.return_to_service(alarm_id, user, self.clock.wall()))
        return self.book.get(alarm_id).payload()

    def journal(self, alarm_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The alarm's journal, oldest first: who moved it from what to what, when and why.

        Raises:
            UnknownAlarm: no such alarm (HTTP 404).
        """
        self.book.get(alarm_id)
        return [
            {
                "seq": e.seq,
                "id": e.alarm_id,
                "episode": e.episode,
                "from": e.from_state,
                "to": e.to_state,
                "at": e.at,
                "by": e.by,
                "reason": e.reason,
                "value": e.value,
                "cause": e.event.get("cause"),
                "chattering": e.event.get("chattering", False),
                "first_out": e.event.get("first_out", False),
            }
            for e in self.store.journal(alarm_id, limit)
        ]


class _Status:
    """The service's counters as components see them (`ServiceStatus`): read at each access."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def drivers(self) -> Mapping[str, StatsSource]:
        return self._gateway.drivers

    @property
    def publisher(self) -> PublisherView:
        return self._gateway.publisher

    @property
    def transitions_total(self) -> int:
        return self._gateway.transitions_total

    @property
    def dropped_batches(self) -> int:
        return self._gateway.dropped_batches

    @property
    def engine_queue(self) -> int:
        return len(self._gateway._queue)

    @property
    def journal_error(self) -> str | None:
        return self._gateway.journal_error

    @property
    def journal_backlog(self) -> int:
        return len(self._gateway.journal_backlog)

    def health(self) -> dict[str, Any]:
        return self._gateway.health()


async def run_service(site: Site) -> int:
    """`fgw run`: the gateway until SIGTERM or SIGINT; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(site)
    freeze_heap()
    loop.call_later(HEAP_FREEZE_AFTER, gc.freeze)  # no collection: that would be the pause itself
    await gateway.run(stop)
    return 0


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's sight (`gc.freeze`), so that no
    full collection walks them again in an alarm's path (docs/design/service.md). Called by
    `fgw run` only, not for gateways built inside another program or a test.
    """
    gc.collect()
    gc.freeze()
