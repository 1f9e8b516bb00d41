"""The rule engine: readings in, condition changes out, with on/off delays and deadband.

Pure code: it never reads a clock. Every call gets `now` (monotonic seconds) for timers and windows;
wall time comes from the readings (and, for timer-driven changes, from the offset between the two
clocks seen at the last reading or status). A rule's verdict is three-valued: *unknown* never raises
and never clears. Suppression by cause is `rules.suppression`, delays across restarts
`rules.timers`; the semantics and the shape of the hot path are in docs/design/alarm-engine.md.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence

from config.site import COMM_LOSS, Rule
from ground.expr import MISSING, Expression, ExpressionError, parse_expression
from ground.model import DeviceStatus, Quality, Reading, Value
from rules import timers as _timers
from rules.rulestate import (
    NO_FOREIGN,
    NO_FRESH,
    ROOT_CAUSES,
    ConditionChange,
    DeviceRecord,
    PendingTimer,
    RuleState,
    by_order,
)
from rules.suppression import Suppression

__all__ = ["ROOT_CAUSES", "ConditionChange", "PendingTimer", "RuleEngine"]

log = logging.getLogger(__name__)

_ABSENT = object()
_GOOD = Quality.GOOD


class RuleEngine:
    """Evaluates every device's rules. Not thread-safe: one owner feeds it in order.

    Args:
        rules: every rule of the site (`Site.rules()`); the `comm_loss` rules have `when == ""`.
        depends_on: device -> devices it depends on (its supply, its controller).
    """

    def __init__(
        self, rules: Sequence[Rule], depends_on: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self._rules: dict[str, list[RuleState]] = {}
        self._comm: dict[str, RuleState] = {}
        self._devices: dict[str, DeviceRecord] = {}
        self._values: dict[str, dict[str, Value]] = {}
        self._offline: set[str] = set()
        self._depends_on = {d: list(up) for d, up in (depends_on or {}).items()}
        self._heap: list[tuple[float, int, RuleState]] = []
        self._seq = itertools.count()
        self._wall_offset = 0.0  # wall - monotonic, from the last reading/status seen
        self._by_alarm: dict[str, RuleState] = {}
        self._timers_dirty: dict[str, RuleState] = {}
        self._parsed: dict[str, Expression] = {}  # one Expression per distinct `when:` text
        self._shared: dict[object, object] = {}  # one object per distinct delay/deadband
        # device -> point -> rules of any device naming it as `device.point` (with that name)
        self._foreign: dict[str, dict[str, list[tuple[RuleState, str]]]] = {}
        self.ignored_readings = 0  # unknown device, or a device we know is offline
        self.broken_rules: list[str] = []
        for order, rule in enumerate(rules):
            self._add(rule, order)
        self._link()
        self._rule_count = sum(len(r) for r in self._rules.values())
        suppression = Suppression(
            self._depends_on, self._comm, self._rules, self._values, self._offline
        )
        self._report = suppression.report
        self._resync_dependents = suppression.resync_dependents

    # ------------------------------------------------------------------ setup

    def _add(self, rule: Rule, order: int) -> None:
        device = rule.device
        dev = self._devices.get(device)
        if dev is None:
            values = self._values[device] = {}
            dev = self._devices[device] = DeviceRecord(device, values, self._values)
            self._rules[device] = dev.states
        if rule.id == COMM_LOSS or not rule.when:
            comm = RuleState(rule, None, order, dev, self._shared)
            self._comm[device] = self._by_alarm[rule.alarm_id] = dev.comm = comm
            return
        expr = self._parsed.get(rule.when)
        if expr is None:
            try:
                expr = self._parsed[rule.when] = parse_expression(rule.when)
            except ExpressionError as exc:  # the loader refuses these; never crash if one slips
                log.error("rule %s not loaded: %s", rule.alarm_id, exc)
                self.broken_rules.append(rule.alarm_id)
                return
        rs = RuleState(rule, expr, order, dev, self._shared)
        rs.bit = 1 << len(dev.states)
        dev.busy |= rs.bit
        dev.states.append(rs)
        self._by_alarm[rule.alarm_id] = rs
        for name in expr.names:
            other, _, point = name.rpartition(".")
            if other:
                self._foreign.setdefault(other, {}).setdefault(point, []).append((rs, name))

    def _link(self) -> None:
        """Build each device's point index, one per distinct list of `when:` texts (a template's),
        and hand every device the rules of others that read it."""
        shared: dict[tuple[str, ...], dict[str, tuple[int, tuple[int, ...]]]] = {}
        exprs: dict[tuple[str, ...], tuple[Expression, ...]] = {}
        for dev in self._devices.values():
            texts = tuple(rs.expr.text for rs in dev.states if rs.expr is not None)
            index = shared.get(texts)
            if index is None:
                found: dict[str, list[int]] = {}
                for pos, rs in enumerate(dev.states):
                    assert rs.expr is not None
                    for name in sorted(rs.expr.names):
                        if "." not in name:
                            found.setdefault(name, []).append(pos)
                index = shared[texts] = {
                    point: (sum(1 << pos for pos in at), tuple(at)) for point, at in found.items()
                }
                exprs[texts] = tuple(rs.expr for rs in dev.states)  # type: ignore[misc]
            dev.index = index
            dev.exprs = exprs[texts]
            foreign = self._foreign.get(dev.id)
            if foreign:
                dev.foreign = {point: tuple(entries) for point, entries in foreign.items()}
        self._foreign.clear()

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

    def assume_active(
        self, alarm_ids: Iterable[str], during: Mapping[str, str] | None = None
    ) -> None:
        """After a restart: these alarms were active when we stopped (from the alarm store).

        Their rules start active, so fresh data that says otherwise clears them (a rule that starts
        inactive would never report a clear, and the restored alarm would stay up forever). A
        restored `comm_loss` clears on the device's first good reading. `during` (alarm id -> root
        cause, of life-safety alarms) is taken as reported, so a cause gone meanwhile is reported
        gone when its device answers or its rule clears.
        """
        wanted = set(alarm_ids)
        for alarm_id, cause in (during or {}).items():
            rs = self._by_alarm.get(alarm_id)
            if rs is not None and rs.safe and alarm_id in wanted:
                rs.during = cause
        for device, states in self._rules.items():
            comm = self._comm.get(device)
            for rs in [*states, *([comm] if comm else [])]:
                if rs.rule.alarm_id in wanted:
                    rs.active = True
                    rs.reported = (True, False)
                    rs.dev.quiet &= ~rs.bit
                    if rs is comm:
                        rs.dev.comm_restored = device not in self._offline

    def take_timer_changes(self) -> dict[str, PendingTimer | None]:
        """On/off-delays started (a `PendingTimer`) or ended (None) since the last call, by alarm id."""
        return _timers.take_changes(self._timers_dirty, self._wall_offset)

    def pending_timers(self) -> dict[str, PendingTimer]:
        """Every on/off-delay in progress (for tests and the console)."""
        return _timers.in_progress(self._by_alarm, self._wall_offset)

    def restore_timers(self, timers: Mapping[str, PendingTimer], now: float, wall: float) -> None:
        """After a restart: take back delays in progress (`rules.timers.restore`)."""
        self._wall_offset = wall - now
        _timers.restore(self._by_alarm, timers, now, wall)

    def ingest(self, batch: Sequence[Reading], now: float) -> list[ConditionChange]:
        """Apply a batch of readings and evaluate the rules that name their points.

        A point read twice in one batch (two door events) is evaluated twice, in order, so that
        `count()` and `changed()` see every reading. This is the hot path (every reading of every
        poll goes through it): keep it flat.
        """
        out: list[ConditionChange] = []
        touched: dict[RuleState, set[str] | frozenset[str]] = {}
        seen: dict[str, set[str]] = {}  # device -> points read so far in this batch
        devices = self._devices
        last_device: str | None = None
        dev: DeviceRecord | None = None
        values: dict[str, Value] = {}
        index: dict[str, tuple[int, tuple[int, ...]]] = {}
        states: list[RuleState] = []
        foreign = NO_FOREIGN
        points_seen: set[str] = set()
        busy = quiet = 0
        quiet_dev: DeviceRecord | None = None  # the device of `quiet_due`
        quiet_due = 0  # quiet rules of `quiet_dev` whose points changed
        last_ts: float | None = None
        for reading in batch:
            device = reading.device
            if device is not last_device:
                last_device = device
                dev = devices.get(device)
                if dev is not None:
                    if dev.offline:
                        dev = None
                    else:
                        values, index, states = dev.values, dev.index, dev.states
                        foreign, busy, quiet = dev.foreign, dev.busy, dev.quiet
                points_seen = seen.setdefault(device, set())
            if dev is None:
                self.ignored_readings += 1
                continue
            if quiet_due and quiet_dev is not dev:
                self._verdicts(quiet_dev, quiet_due, now, touched)  # type: ignore[arg-type]
                quiet_due = 0
            quiet_dev = dev
            point = reading.point
            if point in points_seen:
                if last_ts is not None:
                    self._wall_offset = last_ts - now
                if quiet_due:
                    self._verdicts(dev, quiet_due, now, touched)
                    quiet_due = 0
                self._evaluate_all(touched, now, out)
                touched, points_seen = {}, set()
                seen = {device: points_seen}
                busy, quiet = dev.busy, dev.quiet  # the evaluations may have changed them
            points_seen.add(point)
            last_ts = reading.ts
            value = reading.value
            # NaN counts as bad (value != value only for NaN)
            good = reading.quality is _GOOD and value is not None and value == value
            if good:
                old = values.get(point, _ABSENT)
                changed = old is not value and (old != value or type(old) is not type(value))
                values[point] = value  # type: ignore[assignment]
                if dev.comm_restored:  # comm_loss restored as active: the device answers
                    self._answers(dev, reading.ts, out)
            else:
                values.pop(point, None)
                changed = True
            entry = index.get(point)
            if entry is not None:
                due = entry[0]  # the rules naming the point
                if changed:
                    if due & quiet:
                        quiet_due |= due & quiet
                        due &= ~quiet
                else:
                    due &= busy  # a repeated value changes nothing for an idle rule
                for pos in entry[1] if due else ():
                    if due >> pos & 1:
                        rs = states[pos]
                        if rs.state is None:  # no helpers: `fresh` is never looked at
                            touched[rs] = NO_FRESH
                            continue
                        names = touched.get(rs)
                        if names is None:
                            names = touched[rs] = set()
                        if good:
                            names.add(point)  # type: ignore[union-attr]
            if foreign:
                entries = foreign.get(point)
                if entries is not None:
                    for rs, name in entries:
                        if changed or not rs.idle:
                            if rs.state is None:
                                touched[rs] = NO_FRESH
                                continue
                            names = touched.get(rs)
                            if names is None:
                                names = touched[rs] = set()
                            if good:
                                names.add(name)  # type: ignore[union-attr]
        if last_ts is not None:
            self._wall_offset = last_ts - now
        if quiet_due:
            self._verdicts(quiet_dev, quiet_due, now, touched)  # type: ignore[arg-type]
        if touched:
            self._evaluate_all(touched, now, out)
        return out

    @staticmethod
    def _verdicts(
        dev: DeviceRecord, due: int, now: float, touched: dict[RuleState, set[str] | frozenset[str]]
    ) -> None:
        """Evaluate the device's quiet rules in `due` (bits); those that came out true go on to
        the full evaluation. A quiet rule (idle and inactive) whose verdict is false or unknown
        keeps everything as it is, so its own object is not even reached."""
        dev.now = now
        dev.fresh = NO_FRESH
        dev.state = None
        dev.deadband = 0.0  # inactive, no on-delay running
        exprs = dev.exprs
        while due:
            low = due & -due
            due ^= low
            pos = low.bit_length() - 1
            if exprs[pos].evaluate(dev):
                touched[dev.states[pos]] = NO_FRESH

    def _answers(self, dev: DeviceRecord, ts: float, out: list[ConditionChange]) -> None:
        """The first good reading of a device whose comm_loss was restored as active clears it."""
        dev.comm_restored = False
        comm = dev.comm
        if comm is not None and comm.active:
            comm.active = False
            self._report(comm, ts, "device answers", out)
            for rs in dev.states:  # a life-safety rule restored `during` this comm_loss
                self._report(rs, ts, "device answers", out)
            self._resync_dependents(dev.id, ts, out)

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
        dev = self._devices[device]
        dev.offline = offline
        dev.comm_restored = False  # comm_loss follows the status from now on
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
            refs: dict[RuleState, set[str] | frozenset[str]] = {}
            for entries in dev.foreign.values():
                for rs, _name in entries:
                    if rs.dev is not dev:
                        refs.setdefault(rs, NO_FRESH)
            self._evaluate_all(refs, now, out)
        self._resync_dependents(device, status.ts, out)
        return out

    def tick(self, now: float) -> list[ConditionChange]:
        """Expire timers and windows whose deadline has passed (call it a few times a second)."""
        out: list[ConditionChange] = []
        due: dict[RuleState, set[str] | frozenset[str]] = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, rs = heapq.heappop(heap)
            if rs.deadline == deadline:
                rs.deadline = None
                due[rs] = NO_FRESH
        self._evaluate_all(due, now, out)
        return out

    # ------------------------------------------------------------------ evaluation

    def _evaluate_all(
        self,
        touched: dict[RuleState, set[str] | frozenset[str]],
        now: float,
        out: list[ConditionChange],
    ) -> None:
        if len(touched) == 1:
            for rs, fresh in touched.items():
                self._evaluate(rs, fresh, now, out)
            return
        for rs in sorted(touched, key=by_order):
            self._evaluate(rs, touched[rs], now, out)

    def _evaluate(
        self,
        rs: RuleState,
        fresh: set[str] | frozenset[str],
        now: float,
        out: list[ConditionChange],
    ) -> None:
        expr = rs.expr
        dev = rs.dev
        if expr is None or dev.offline:
            return
        active = rs.active
        was_pending, was_clear = rs.pending_since, rs.clear_since
        pending_since, clear_since = was_pending, was_clear
        state = rs.state
        dev.now = now  # the device is its rules' evaluation scope
        dev.fresh = fresh
        dev.state = state
        dev.deadband = rs.deadband if active or pending_since is not None else 0.0
        result = expr.evaluate(dev)
        if result is MISSING:  # unknown: no evidence either way, restart any timer in progress
            pending_since = clear_since = None
        elif result:
            clear_since = None
            if not active:
                if pending_since is None:
                    pending_since = now
                if now - pending_since >= rs.for_:
                    active, pending_since = True, None
        else:
            pending_since = None
            if active:
                if clear_since is None:
                    clear_since = now
                if now - clear_since >= rs.clear_for:
                    active, clear_since = False, None
        rs.pending_since, rs.clear_since = pending_since, clear_since
        if pending_since is None and clear_since is None:
            if was_pending is not None or was_clear is not None:
                self._timers_dirty[rs.alarm_id] = rs
            if state is None:
                dev.busy &= ~rs.bit  # idle
                if rs.deadline is not None:
                    rs.deadline = None  # its heap entry is stale now
            else:
                self._schedule(rs)
        else:
            if pending_since != was_pending or clear_since != was_clear:
                self._timers_dirty[rs.alarm_id] = rs
            dev.busy |= rs.bit
            self._schedule(rs)
        if state is None and pending_since is None and clear_since is None and not active:
            dev.quiet |= rs.bit
        else:
            dev.quiet &= ~rs.bit
        if rs.active != active:
            rs.active = active
            ts = now + self._wall_offset
            self._report(rs, ts, "condition true" if active else "condition cleared", out)
            if rs.root:
                self._resync_dependents(dev.id, ts, out)
        elif active and rs.follows and rs.reported[0]:
            shown = tuple(dev.values.get(p) for p in rs.follows)
            if shown != rs.shown:
                self._report(rs, now + self._wall_offset, "values changed", out, update=True)

    def _schedule(self, rs: RuleState) -> None:
        candidates = []
        if rs.pending_since is not None:
            candidates.append(rs.pending_since + rs.for_)
        if rs.clear_since is not None:
            candidates.append(rs.clear_since + rs.clear_for)
        if rs.expr is not None and rs.state is not None:
            t = rs.expr.next_deadline(rs.state)
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
