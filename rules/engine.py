"""The rule engine: readings in, condition changes out, with on/off delays, deadband and suppression.

Pure code: it never reads a clock. Every call gets `now` (monotonic seconds) for timers and windows;
wall time comes from the readings (and, for timer-driven changes, from the offset between the two
clocks seen at the last reading or status).

Why it is shaped like this:

- Rules are indexed by the `(device, point)` pairs they name, cross-device references included, so a
  reading re-evaluates only the rules that name its point; timers and windows sit in one heap, so
  `tick()` touches only rules whose deadline has passed. Thousands of rules cost nothing per reading
  that does not concern them.
- A reading that repeats the point's value (same type, equal) does not re-evaluate an *idle* rule:
  one without helpers (`rate/count/changed/held`) and without an on/off-delay running, evaluated
  since its last reset. Its verdict is a function of the values it reads (the deadband only widens
  the side the rule already stands on), so the same values give the same verdict and nothing to do.
  Most points of a poll (states, counters, set-points) repeat; this is where the time goes otherwise.
- Rules with the same `when:` text share one parsed `Expression` (helper memory is per rule).
- A rule's verdict is three-valued (see `rules.expr`): *unknown* (a point missing, bad or stale)
  never raises and never clears; it only restarts the `for`/`clear_for` timer in progress.
- `for` (on-delay): the condition must be true at every evaluation for `for` seconds before the rule
  is reported active. `clear_for` (off-delay): false that long before reported inactive.
- `deadband`: while the condition holds (on-delay running, or active), every numeric `<`, `<=`, `>`,
  `>=` of the rule is evaluated with its right-hand side shifted by `deadband` in the direction that
  keeps it true (`x > 7.1` is held while `x > 7.1 - db`; `x < 20` while `x < 20 + db`; under `not` the
  other way round). `==`/`!=` and comparisons inside `count()`/`rate()` are not shifted.
- Quality `bad` or `stale` makes a point missing; a NaN value counts as bad.
- comm_loss: the built-in `comm_loss` rule (`when == ""`) is active exactly while the device is
  offline (its `for`/`clear_for` are not applied: the driver already waits `comm_loss_polls` /
  `comm_loss_after` before it declares a device offline).
  While offline, the device's other rules are not evaluated, its values are dropped (cross-device
  references to it become missing), and its active rules are reported again with `suppressed=True`.
  When it is back, every rule restarts from fresh readings (timers and helper windows reset); a rule
  that was active stays active until fresh readings decide, and is reported unsuppressed.
- Suppression by cause (`depends_on`): while a device that this one depends on (directly or further
  up the chain) has `comm_loss`, `breaker_trip` or `phase_loss` active, this device's rule changes are
  reported with `suppressed=True` and `cause` = that alarm id. A rule that is inactive when
  suppression starts is not reported (no flood of `suppressed` for alarms that were quiet); one that
  was reported suppressed is reported again when suppression ends.

- Restarts: `take_timer_changes()` hands out the on/off-delays that started or ended since the last
  call (as wall-clock start times, for the store); `restore_timers()` takes them back after a restart.
  A restored delay is not scheduled: it waits for the rule's first evaluation on fresh data, which
  fires it at once if the delay has run out meanwhile (the time the gateway was down counts, as if
  the condition had held: it held when we stopped and holds when we are back), and drops it if the
  condition no longer holds.

The alarm layer (`rules.alarms`) turns the changes into ISA-18.2 states; shelving and out-of-service
live there, since they are decisions of people, not of data.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gateway.config.site import COMM_LOSS, Rule
from gateway.model import DeviceStatus, Quality, Reading, Value
from rules.expr import MISSING, Expression, ExpressionError, Scope, parse_expression

log = logging.getLogger(__name__)

ROOT_CAUSES = frozenset({COMM_LOSS, "breaker_trip", "phase_loss"})
"""Rules that, when active on a device, suppress the alarms of the devices that depend on it."""

_ABSENT = object()
_NO_INDEX: dict[str, list[tuple[_RuleState, str]]] = {}
_GOOD = Quality.GOOD


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A rule's reported condition changed: it became active/inactive, or (un)suppressed.

    Attributes:
        alarm_id: `{device}.{rule}`.
        value: the value worth showing: the first point the rule names (None if missing).
        values: the device's current good values, for formatting the alarm message.
        ts_wall: wall-clock seconds (epoch) of the reading or status that caused it.
        reason: a short human text (what happened).
        cause: the alarm id of the root cause when `suppressed`, else "".
    """

    alarm_id: str
    device: str
    rule: str
    active: bool
    suppressed: bool
    value: Value | None
    values: dict[str, Value]
    ts_wall: float
    reason: str
    cause: str = ""


@dataclass(frozen=True, slots=True)
class PendingTimer:
    """An on-delay (`for`, kind `on`) or off-delay (`clear_for`, kind `off`) in progress.

    `started` is wall-clock epoch seconds: the only clock that means anything after a restart.
    """

    kind: str
    started: float


@dataclass(eq=False, slots=True)
class _RuleState:
    rule: Rule
    expr: Expression | None  # None for comm_loss
    order: int
    state: object = None  # ExprState, when the expression has helpers
    active: bool = False
    pending_since: float | None = None  # on-delay running since
    clear_since: float | None = None  # off-delay running since
    deadline: float | None = None
    reported: tuple[bool, bool] = (False, False)  # (active, suppressed) as last reported
    # stateless, no delay running, evaluated since the last reset: repeated values change nothing
    idle: bool = False

    def reset(self) -> None:
        """Forget timers and helper windows (after a comm loss): start over from fresh readings."""
        self.pending_since = self.clear_since = None
        self.idle = False
        if self.expr is not None and self.expr.stateful:
            self.state = self.expr.new_state()


def _order(rs: _RuleState) -> int:
    return rs.order


class RuleEngine:
    """Evaluates every device's rules. Not thread-safe: one owner feeds it in order.

    Args:
        rules: every rule of the site (`Site.rules()`); the `comm_loss` rules have `when == ""`.
        depends_on: device -> devices it depends on (its supply, its controller).
    """

    def __init__(
        self, rules: Sequence[Rule], depends_on: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self._rules: dict[str, list[_RuleState]] = {}
        self._comm: dict[str, _RuleState] = {}
        # device -> point -> the rules naming it (with the name as written in the rule)
        self._index: dict[str, dict[str, list[tuple[_RuleState, str]]]] = {}
        self._values: dict[str, dict[str, Value]] = {}
        self._offline: set[str] = set()
        self._depends_on = {d: list(up) for d, up in (depends_on or {}).items()}
        self._heap: list[tuple[float, int, _RuleState]] = []
        self._seq = itertools.count()
        self._wall_offset = 0.0  # wall - monotonic, from the last reading/status seen
        self._by_alarm: dict[str, _RuleState] = {}
        self._timers_dirty: dict[str, _RuleState] = {}
        self._parsed: dict[str, Expression] = {}  # one Expression per distinct `when:` text
        self._scopes: dict[str, Scope] = {}  # one reusable evaluation scope per device
        self.ignored_readings = 0  # unknown device, or a device we know is offline
        self.broken_rules: list[str] = []
        for order, rule in enumerate(rules):
            self._add(rule, order)
        self._rule_count = sum(len(r) for r in self._rules.values())
        self._dependents = self._invert(self._depends_on)

    # ------------------------------------------------------------------ setup

    def _add(self, rule: Rule, order: int) -> None:
        device = rule.device
        self._rules.setdefault(device, [])
        values = self._values.setdefault(device, {})
        if device not in self._scopes:
            self._scopes[device] = Scope(values, self._values)
        if rule.id == COMM_LOSS or not rule.when:
            self._comm[device] = self._by_alarm[rule.alarm_id] = _RuleState(rule, None, order)
            return
        expr = self._parsed.get(rule.when)
        if expr is None:
            try:
                expr = self._parsed[rule.when] = parse_expression(rule.when)
            except ExpressionError as exc:  # the loader refuses these; never crash if one slips
                log.error("rule %s not loaded: %s", rule.alarm_id, exc)
                self.broken_rules.append(rule.alarm_id)
                return
        rs = _RuleState(rule, expr, order, expr.new_state() if expr.stateful else None)
        self._rules[device].append(rs)
        self._by_alarm[rule.alarm_id] = rs
        for name in expr.names:
            other, _, point = name.rpartition(".")
            key = (other or device, point)
            self._index.setdefault(key[0], {}).setdefault(key[1], []).append((rs, name))

    @staticmethod
    def _invert(depends_on: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """device -> every device below it (transitively), for resyncing suppression."""
        direct: dict[str, set[str]] = {}
        for device, ups in depends_on.items():
            for up in ups:
                direct.setdefault(up, set()).add(device)
        result: dict[str, list[str]] = {}
        for root in direct:
            seen: list[str] = []
            stack = sorted(direct[root])
            while stack:
                node = stack.pop()
                if node in seen or node == root:
                    continue
                seen.append(node)
                stack.extend(sorted(direct.get(node, ())))
            result[root] = seen
        return result

    # ------------------------------------------------------------------ public API

    def values(self, device: str) -> dict[str, Value]:
        """The device's latest good values (a copy)."""
        return dict(self._values.get(device, {}))

    def online(self, device: str) -> bool:
        return device not in self._offline

    def active(self) -> list[str]:
        """Alarm ids of every rule currently active (suppressed or not)."""
        result = [rs.rule.alarm_id for rs in self._comm.values() if rs.active]
        for states in self._rules.values():
            result.extend(rs.rule.alarm_id for rs in states if rs.active)
        return result

    def assume_active(self, alarm_ids: Iterable[str]) -> None:
        """After a restart: these alarms were active when we stopped (from the alarm store).

        Their rules start active, so fresh data that says otherwise clears them (a rule that starts
        inactive would never report a clear, and the restored alarm would stay up forever). A
        restored `comm_loss` clears on the device's first good reading.
        """
        wanted = set(alarm_ids)
        for device, states in self._rules.items():
            comm = self._comm.get(device)
            for rs in [*states, *([comm] if comm else [])]:
                if rs.rule.alarm_id in wanted:
                    rs.active = True
                    rs.reported = (True, False)

    def take_timer_changes(self) -> dict[str, PendingTimer | None]:
        """On/off-delays started (a `PendingTimer`) or ended (None) since the last call, by alarm id."""
        out: dict[str, PendingTimer | None] = {}
        for alarm_id, rs in self._timers_dirty.items():
            out[alarm_id] = self._pending(rs)
        self._timers_dirty.clear()
        return out

    def pending_timers(self) -> dict[str, PendingTimer]:
        """Every on/off-delay in progress (for tests and the console)."""
        out: dict[str, PendingTimer] = {}
        for alarm_id, rs in self._by_alarm.items():
            timer = self._pending(rs)
            if timer is not None:
                out[alarm_id] = timer
        return out

    def _pending(self, rs: _RuleState) -> PendingTimer | None:
        if rs.pending_since is not None:
            return PendingTimer("on", rs.pending_since + self._wall_offset)
        if rs.clear_since is not None:
            return PendingTimer("off", rs.clear_since + self._wall_offset)
        return None

    def restore_timers(self, timers: Mapping[str, PendingTimer], now: float, wall: float) -> None:
        """After a restart: take back delays in progress (see the module docstring).

        Unknown alarm ids, and delays that no longer fit the rule's restored state (an on-delay
        of a rule already active), are ignored.
        """
        self._wall_offset = wall - now
        for alarm_id, timer in timers.items():
            rs = self._by_alarm.get(alarm_id)
            if rs is None or rs.expr is None:
                continue
            delay = rs.rule.for_ if timer.kind == "on" else rs.rule.clear_for
            elapsed = min(max(wall - timer.started, 0.0), delay)
            if timer.kind == "on" and not rs.active:
                rs.pending_since = now - elapsed
                rs.idle = False
            elif timer.kind == "off" and rs.active:
                rs.clear_since = now - elapsed
                rs.idle = False

    def ingest(self, batch: Sequence[Reading], now: float) -> list[ConditionChange]:
        """Apply a batch of readings and evaluate the rules that name their points.

        A point read twice in one batch (two door events) is evaluated twice, in order, so that
        `count()` and `changed()` see every reading. This is the hot path (every reading of every
        poll goes through it): keep it flat.
        """
        out: list[ConditionChange] = []
        touched: dict[_RuleState, set[str]] = {}
        seen: dict[str, set[str]] = {}  # device -> points read so far in this batch
        all_values, offline, all_index = self._values, self._offline, self._index
        last_device: str | None = None
        values: dict[str, Value] | None = None
        index: dict[str, list[tuple[_RuleState, str]]] = {}
        points_seen: set[str] = set()
        comm: _RuleState | None = None
        last_ts: float | None = None
        for reading in batch:
            device = reading.device
            if device is not last_device:
                last_device = device
                values = all_values.get(device)
                if values is not None and device in offline:
                    values = None
                comm = self._comm.get(device)
                index = all_index.get(device, _NO_INDEX)
                points_seen = seen.setdefault(device, set())
            if values is None:
                self.ignored_readings += 1
                continue
            point = reading.point
            if point in points_seen:
                if last_ts is not None:
                    self._wall_offset = last_ts - now
                self._evaluate_all(touched, now, out)
                touched, points_seen = {}, set()
                seen = {device: points_seen}
            points_seen.add(point)
            last_ts = reading.ts
            value = reading.value
            # NaN counts as bad (value != value only for NaN)
            good = reading.quality is _GOOD and value is not None and value == value
            if good:
                old = values.get(point, _ABSENT)
                changed = old is not value and (old != value or type(old) is not type(value))
                values[point] = value  # type: ignore[assignment]
                if comm is not None and comm.active:  # restored as active: the device answers
                    comm.active = False
                    self._report(comm, reading.ts, "device answers", out)
                    self._resync_dependents(device, reading.ts, out)
            else:
                values.pop(point, None)
                changed = True
            entries = index.get(point)
            if entries is None:
                continue
            for rs, name in entries:
                if changed or not rs.idle:
                    names = touched.get(rs)
                    if names is None:
                        names = touched[rs] = set()
                    if good:
                        names.add(name)
        if last_ts is not None:
            self._wall_offset = last_ts - now
        if touched:
            self._evaluate_all(touched, now, out)
        return out

    def device_status(self, status: DeviceStatus, now: float) -> list[ConditionChange]:
        """A device stopped or resumed answering: comm_loss, freezing and resuming its rules."""
        device = status.device
        comm = self._comm.get(device)
        if device not in self._values:
            return []
        self._wall_offset = status.ts - now
        offline = not status.online
        if offline == (device in self._offline):
            return []
        out: list[ConditionChange] = []
        if offline:
            self._offline.add(device)
            self._values[device].clear()
        else:
            self._offline.discard(device)
            for rs in self._rules[device]:
                if rs.pending_since is not None or rs.clear_since is not None:
                    self._timers_dirty[rs.rule.alarm_id] = rs
                rs.reset()
                self._schedule(rs)
        reason = status.reason or ("device not answering" if offline else "device answers again")
        if comm is not None:
            comm.active = offline
            self._report(comm, status.ts, reason, out)
        for rs in self._rules[device]:
            self._report(rs, status.ts, reason, out)
        # other devices' rules that read this device's points see them go missing (or come back)
        if offline:
            refs: dict[_RuleState, set[str]] = {}
            for entries in self._index.get(device, {}).values():
                for rs, _name in entries:
                    if rs.rule.device != device:
                        refs.setdefault(rs, set())
            self._evaluate_all(refs, now, out)
        self._resync_dependents(device, status.ts, out)
        return out

    def tick(self, now: float) -> list[ConditionChange]:
        """Expire timers and windows whose deadline has passed (call it a few times a second)."""
        out: list[ConditionChange] = []
        due: dict[_RuleState, set[str]] = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, rs = heapq.heappop(heap)
            if rs.deadline == deadline:
                rs.deadline = None
                due[rs] = set()
        self._evaluate_all(due, now, out)
        return out

    # ------------------------------------------------------------------ evaluation

    def _evaluate_all(
        self, touched: dict[_RuleState, set[str]], now: float, out: list[ConditionChange]
    ) -> None:
        if len(touched) == 1:
            for rs, fresh in touched.items():
                self._evaluate(rs, fresh, now, out)
            return
        for rs in sorted(touched, key=_order):
            self._evaluate(rs, touched[rs], now, out)

    def _evaluate(
        self, rs: _RuleState, fresh: set[str], now: float, out: list[ConditionChange]
    ) -> None:
        rule = rs.rule
        expr = rs.expr
        if expr is None or rule.device in self._offline:
            return
        active = rs.active
        was_pending, was_clear = rs.pending_since, rs.clear_since
        pending_since, clear_since = was_pending, was_clear
        scope = self._scopes[rule.device]
        scope.now = now
        scope.fresh = fresh
        scope.state = rs.state  # type: ignore[assignment]
        scope.deadband = rule.deadband if active or pending_since is not None else 0.0
        result = expr.evaluate(scope)
        if result is MISSING:  # unknown: no evidence either way, restart any timer in progress
            rs.pending_since = rs.clear_since = None
        elif result:
            rs.clear_since = None
            if not active:
                if pending_since is None:
                    rs.pending_since = pending_since = now
                if now - pending_since >= rule.for_:
                    rs.active, rs.pending_since = True, None
        else:
            rs.pending_since = None
            if active:
                if clear_since is None:
                    rs.clear_since = clear_since = now
                if now - clear_since >= rule.clear_for:
                    rs.active, rs.clear_since = False, None
        if rs.pending_since is None and rs.clear_since is None:
            if was_pending is not None or was_clear is not None:
                self._timers_dirty[rule.alarm_id] = rs
            if rs.state is None:
                rs.idle = True
                if rs.deadline is not None:
                    rs.deadline = None  # its heap entry is stale now
            else:
                self._schedule(rs)
        else:
            if rs.pending_since != was_pending or rs.clear_since != was_clear:
                self._timers_dirty[rule.alarm_id] = rs
            rs.idle = False
            self._schedule(rs)
        if rs.active != active:
            ts = now + self._wall_offset
            self._report(rs, ts, "condition true" if rs.active else "condition cleared", out)
            if rule.id in ROOT_CAUSES:
                self._resync_dependents(rule.device, ts, out)

    def _schedule(self, rs: _RuleState) -> None:
        candidates = []
        if rs.pending_since is not None:
            candidates.append(rs.pending_since + rs.rule.for_)
        if rs.clear_since is not None:
            candidates.append(rs.clear_since + rs.rule.clear_for)
        if rs.expr is not None and rs.state is not None:
            t = rs.expr.next_deadline(rs.state)  # type: ignore[arg-type]
            if t is not None:
                candidates.append(t)
        deadline = min(candidates) if candidates else None
        if deadline == rs.deadline:
            return
        rs.deadline = deadline
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._seq), rs))
            if len(self._heap) > 4 * self._rule_count + 1024:  # stale entries: rebuild
                self._heap = [e for e in self._heap if e[2].deadline == e[0]]
                heapq.heapify(self._heap)

    # ------------------------------------------------------------------ reporting and suppression

    def _cause(self, device: str, rule_id: str) -> str:
        """The alarm id suppressing this rule, or ""."""
        if rule_id != COMM_LOSS and device in self._offline:
            return f"{device}.{COMM_LOSS}"
        seen: set[str] = set()
        queue = list(self._depends_on.get(device, ()))
        while queue:
            up = queue.pop(0)
            if up in seen:
                continue
            seen.add(up)
            comm = self._comm.get(up)
            if comm is not None and comm.active:
                return comm.rule.alarm_id
            for rs in self._rules.get(up, ()):
                if rs.active and rs.rule.id in ROOT_CAUSES:
                    return rs.rule.alarm_id
            queue.extend(self._depends_on.get(up, ()))
        return ""

    def _report(self, rs: _RuleState, ts: float, reason: str, out: list[ConditionChange]) -> None:
        rule = rs.rule
        cause = self._cause(rule.device, rule.id)
        suppressed = bool(cause) and (rs.active or rs.reported[1])
        if (rs.active, suppressed) == rs.reported:
            return
        rs.reported = (rs.active, suppressed)
        values = dict(self._values[rule.device])
        value = self._shown_value(rs)
        if suppressed:
            reason = f"{reason}; suppressed by {cause}"
        out.append(
            ConditionChange(
                alarm_id=rule.alarm_id,
                device=rule.device,
                rule=rule.id,
                active=rs.active,
                suppressed=suppressed,
                value=value,
                values=values,
                ts_wall=ts,
                reason=reason,
                cause=cause if suppressed else "",
            )
        )

    def _shown_value(self, rs: _RuleState) -> Value | None:
        """The first point the rule names that holds a number or text (a bool says little)."""
        if rs.expr is None:
            return None
        found: list[Value] = []
        for name in rs.expr.points:
            other, _, point = name.rpartition(".")
            value = self._values.get(other or rs.rule.device, {}).get(point)
            if value is not None and not isinstance(value, bool):
                return value
            if value is not None:
                found.append(value)
        return found[0] if found else None

    def _resync_dependents(self, device: str, ts: float, out: list[ConditionChange]) -> None:
        for below in self._dependents.get(device, ()):
            comm = self._comm.get(below)
            reason = "root cause changed"
            if comm is not None:
                self._report(comm, ts, reason, out)
            for rs in self._rules.get(below, ()):
                self._report(rs, ts, reason, out)
