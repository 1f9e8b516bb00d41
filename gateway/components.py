"""The component contract: what a component is told (`Component`) and what it may use.

The gateway's core path is fixed: drivers -> rule engine -> alarm book -> alarm store -> MQTT. Every
other capability — history, export, tickets, notifications, the console — is a *component* that is
told about readings, alarm transitions and the passing of time, and may run a background task.

A component is built from a `ComponentContext` (the site, the clocks, a read-only view of the
alarms and readings, the operator's alarm commands, the event bus, ...) and the `Capabilities`
other components offer; never from the service itself. This module imports no other module of
the gateway at run time (for the type checker, only modules that never import it back), so every
component can import it and the service every component without a cycle
(docs/design/components.md). The table of components is `gateway.registry`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ground.model import DeviceStatus, Reading

if TYPE_CHECKING:
    from config.site import Rule, Site
    from gateway.accounts import Accounts
    from gateway.api.live import LiveState
    from gateway.wear import WearMeter
    from rules.alarms import Alarm, AlarmTransition
    from rules.engine import ConditionChange
    from rules.incidents import Incident

Event = Mapping[str, Any]
"""A message for `P/events` (`{"type": ..., ...}`)."""


class Component:
    """Base class with do-nothing hooks; override what the component needs.

    Hooks run on the gateway's event loop in the order things happened, so they must not block:
    queue slow work and do it in `run()`.
    """

    name: str = "component"

    def on_readings(self, batch: Sequence[Reading]) -> None:
        """A batch of readings, after the rule engine has seen it."""

    def on_status(self, status: DeviceStatus) -> None:
        """A device's communication changed."""

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        """Alarm transitions, after they were committed to the journal and queued for MQTT — for
        transitions of readings, once the broker acknowledged them (or `MqttPublisher.delivered`'s
        wait at most): a hook's own work, such as a ticket's commit, does not delay the alarm.
        Hooks still come in the order things happened: readings and statuses that arrived
        meanwhile are told after them."""

    def on_tick(self, wall: float, monotonic: float) -> None:
        """About four times a second: for timers of the component's own."""

    def before_commit(self, transitions: Sequence[AlarmTransition]) -> None:
        """Transitions about to be journaled: stage what must be in their transaction (`stage`).
        Only components that override `stage` are asked; must not raise nor block."""

    def stage(self, db: sqlite3.Connection) -> None:
        """Write what is staged inside the journal's transaction (on the store's connection)."""

    def staged(self) -> None:
        """The transaction `stage` wrote into committed (not called when it rolled back)."""

    def stats(self) -> dict[str, Any]:
        """Counters for `/healthz` and `/metrics` (`StatsRegistry`); empty: nothing to report."""
        return {}

    async def run(self) -> None:
        """A background task (the default has none and returns at once)."""

    async def close(self) -> None:
        """Flush and release, before the publisher says `offline` and storage closes."""


# ---------------------------------------------------------------------------------- the context


@dataclass(slots=True)
class Clock:
    """The gateway's clocks: `monotonic()` for timers, `wall()` for timestamps (both injectable)."""

    monotonic: Callable[[], float]
    wall: Callable[[], float]


class AlarmView(Protocol):
    """The alarm book, read-only (`rules.alarms.AlarmBook`)."""

    def get(self, alarm_id: str) -> Alarm:
        """Raises `UnknownAlarm` (a `KeyError`)."""
        ...

    def all(self) -> list[Alarm]: ...

    def non_normal(self) -> list[Alarm]: ...

    def rule(self, alarm_id: str) -> Rule:
        """Raises `KeyError`."""
        ...


class EngineView(Protocol):
    """What the rule engine knows of the devices now (`rules.engine.RuleEngine`), read-only."""

    def values(self, device: str) -> dict[str, Any]: ...

    def online(self, device: str) -> bool: ...

    def active(self) -> list[str]:
        """Alarm ids whose condition is true now."""
        ...


@dataclass(frozen=True, slots=True)
class AlarmCommands:
    """The operator's actions on alarms, journaled and published like any transition.

    Each raises `UnknownAlarm` (404) or `TransitionRefused` (409) as `Gateway`'s methods say.
    """

    acknowledge: Callable[[str, str, str], None]
    """(alarm id, user, comment)"""
    acknowledge_device: Callable[[str, str, str], list[str]]
    """(device, user, comment) -> the acknowledged alarms' ids"""
    shelve: Callable[[str, str, float, str], dict[str, Any]]
    """(alarm id, user, minutes, reason) -> the alarm's payload"""
    unshelve: Callable[[str, str], dict[str, Any]]
    remove_from_service: Callable[[str, str, str], dict[str, Any]]
    """(alarm id, user, reason) -> the alarm's payload"""
    return_to_service: Callable[[str, str], dict[str, Any]]
    journal: Callable[[str, int], list[dict[str, Any]]]
    """(alarm id, limit) -> the alarm's journal, oldest first"""


class EventBus:
    """`P/events`: what is published goes to MQTT (`sink`), then to every subscriber, in order."""

    def __init__(self, sink: Callable[[Event], None]) -> None:
        self._sink = sink
        self._listeners: list[Callable[[Event], None]] = []

    def publish(self, event: Event) -> None:
        self._sink(event)
        for listener in self._listeners:
            listener(event)

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """`listener` sees every event published from now on (the console's live stream)."""
        self._listeners.append(listener)


class StatsRegistry:
    """Components' counters by component name, in the order they were built."""

    def __init__(self) -> None:
        self._sources: dict[str, Callable[[], dict[str, Any]]] = {}

    def register(self, name: str, source: Callable[[], dict[str, Any]]) -> None:
        self._sources[name] = source

    def get(self, name: str) -> Callable[[], dict[str, Any]] | None:
        return self._sources.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)


class StatsSource(Protocol):
    """A driver: per device, its counters (a `DeviceStats` or a plain mapping)."""

    def stats(self) -> Mapping[str, Any]: ...


class Broker(Protocol):
    @property
    def where(self) -> str: ...


class PublisherView(Protocol):
    """The MQTT publisher's progress (`gateway.publisher.MqttPublisher`), read-only."""

    @property
    def outbox(self) -> Sized: ...

    @property
    def published(self) -> int: ...

    @property
    def broker(self) -> Broker: ...

    def stats(self) -> dict[str, Any]: ...


class ServiceStatus(Protocol):
    """The service's own counters, read when asked (never copied): for health and metrics."""

    @property
    def drivers(self) -> Mapping[str, StatsSource]: ...

    @property
    def publisher(self) -> PublisherView: ...

    @property
    def transitions_total(self) -> int: ...

    @property
    def dropped_batches(self) -> int: ...

    @property
    def engine_queue(self) -> int:
        """Reading batches and statuses waiting for the engine."""
        ...

    @property
    def journal_error(self) -> str | None: ...

    @property
    def journal_backlog(self) -> int:
        """Journal rows waiting in memory while the disk refuses them."""
        ...

    def health(self) -> dict[str, Any]:
        """What `/healthz` reports (`gateway.health`)."""
        ...


@dataclass(frozen=True, slots=True)
class ComponentContext:
    """What every component may use of the running gateway; built once by the service."""

    site: Site
    clock: Clock
    alarms: AlarmView
    engine: EngineView
    commands: AlarmCommands
    events: EventBus
    db: sqlite3.Connection
    """The journal's connection: a component's tables in the journal's file share its commits."""
    system_condition: Callable[[ConditionChange], None]
    """A condition of the gateway itself (`gateway.wear_alarm`), through the alarm book."""
    status: ServiceStatus
    stats: StatsRegistry


# ---------------------------------------------------------------------------------- capabilities


class History(Protocol):
    """The local history of readings (`gateway.storage.history.HistoryStore`)."""

    raw_window: float
    """Seconds for which raw readings are kept (minute aggregates beyond)."""

    def query(
        self, device: str, point: str, start: float, end: float, max_points: int = 1000
    ) -> list[dict[str, Any]]: ...

    def add(self, batch: Sequence[Reading]) -> None:
        """Queue a batch for the writer; never blocks."""
        ...

    def minutes(
        self, device: str, point: str, start: float, end: float
    ) -> Sequence[tuple[Any, ...]]:
        """Exact 1-minute aggregates of one point (`HistoryStore.minutes`)."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class HealthView(Protocol):
    """The health monitor (`gateway.health.HealthMonitor`)."""

    @property
    def wear(self) -> WearMeter: ...

    def report(self) -> dict[str, Any]: ...


class TicketDesk(Protocol):
    """Maintenance tickets and the equipment ledger (`gateway.maintenance.Maintenance`)."""

    def list_tickets(
        self, status: str | None = None, device: str | None = None
    ) -> list[dict[str, Any]]: ...

    def get_ticket(self, ticket_id: int | str) -> dict[str, Any]: ...

    def create_ticket(
        self, device: str, title: str, urgency: str, by: str, note: str = ""
    ) -> dict[str, Any]: ...

    def transition(
        self, ticket_id: int | str, to: str, by: str, note: str = "", assignee: str | None = None
    ) -> dict[str, Any]: ...

    def assets(self) -> list[dict[str, Any]]: ...


class IncidentDesk(Protocol):
    """Incidents and drills (`gateway.incidents.IncidentsComponent`)."""

    def open_incidents(self) -> list[Incident]: ...

    def listing(self, state: str = "open") -> list[dict[str, Any]]: ...

    def get(self, incident_id: int) -> dict[str, Any]: ...

    def complete_step(self, incident_id: int, step: str, by: str, note: str) -> dict[str, Any]: ...

    def close_incident(self, incident_id: int, by: str, cause: str) -> dict[str, Any]: ...

    def drill(self, playbook: str, device: str | None, by: str) -> dict[str, Any]: ...


class Announcer(Protocol):
    """The notification side (`gateway.notify`): one message to the channels of a priority."""

    def announce(
        self, priority: str, subject: str, text: str, body: Mapping[str, Any], *, drill: bool
    ) -> int:
        """Queue the message; returns on how many channels. A drill goes nowhere unless the site
        says `notify.drills: true`."""
        ...


class Console(Protocol):
    """The console component's state that `create_app` serves (`gateway.api.component`)."""

    @property
    def accounts(self) -> Accounts: ...

    @property
    def live(self) -> LiveState: ...


@dataclass(slots=True)
class Capabilities:
    """What components offer each other and the API; None: not on this gateway.

    Filled while the components are built (a factory sets its own field), read afterwards.
    """

    history: History
    health: HealthView | None = None
    console: Console | None = None
    maintenance: TicketDesk | None = None
    notify: Announcer | None = None
    incidents: IncidentDesk | None = None
