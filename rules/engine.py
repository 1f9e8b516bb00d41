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
- At thousands of rules the state does not fit the CPU caches and each poll lands on another
  device, so a reading costs mostly the separate objects it reaches. A device is one record (its
  values, its rules in a list, and the evaluation scope, in one object); its point index (point ->
  positions of the rules naming it) is shared by every device with the same rules, as a template's
  are, so it stays hot; which rules are idle is one int of bits on the record; a rule's delays and
  deadband are copied into its state (one shared object per distinct number), so an evaluation does
  not also reach the `Rule`.
- A *quiet* rule (idle and inactive) can only change on a true verdict: a false or unknown one
  leaves it as it is. So a changed value first evaluates the quiet rules' expressions on the device
  record alone (a bit per rule, the expressions shared like the index); only a true verdict goes on
  to the full evaluation, which reaches the rule's own state. Almost every evaluation is one of
  these: alarms are rare.
- A rule's verdict is three-valued (see `ground.expr`): *unknown* (a point missing, bad or stale)
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
- Life safety first (PRODUCT §9): a life-safety rule is never reported suppressed. While it is
  active under a cause (a dead supply up the chain, or its own device's comm_loss, which freezes it
  as it was), it is reported with `during` = that alarm id instead; a change of `during` alone is
  reported too, and `during` is "" once the cause is gone or the rule is inactive.
- A rule that `follows` points (`message_follows: [zones]`) and is active is reported again, still
  active, when one of them changes value (a second fire zone): its message must say so. Such points
  are named by the rule's `when`, so a change evaluates the rule anyway.

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

from config.site import COMM_LOSS, Rule
from ground.expr import MISSING, Expression, ExpressionError, ExprState, Scope, parse_expression
from ground.model import DeviceStatus, Quality, Reading, Value

log = logging.getLogger(__name__)

ROOT_CAUSES = frozenset({COMM_LOSS, "breaker_trip", "phase_loss"})
"""Rules that, when active on a device, suppress the alarms of the devices that depend on it."""

_ABSENT = object()
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
        during: for a life-safety rule (never suppressed): the root cause it is active under, or "".
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
    during: str = ""


@dataclass(frozen=True, slots=True)
class PendingTimer:
    """An on-delay (`for`, kind `on`) or off-delay (`clear_for`, kind `off`) in progress.

    `started` is wall-clock epoch seconds: the only clock that means anything after a restart.
    """

    kind: str
    started: float


class _Device(Scope):
    """One device: its values, its rules, and the evaluation scope its rules run in, all in one
    object, so that a poll of the device touches this record and little else.

    At thousands of rules the engine's state does not fit the CPU caches and every poll lands on
    a different device: what a reading costs is mostly how many separate objects it reaches.
    `index` (point -> positions in `states`) is shared by every device with the same rules (one
    per template), so it stays hot; `foreign` holds the rules of other devices that read this one
    (`device.point`), usually none.
    """

    __slots__ = ("busy", "comm", "comm_restored", "exprs", "foreign", "id", "index", "offline",
                 "quiet", "states")  # fmt: skip

    def __init__(self, device: str, values: dict[str, Value], devices: dict[str, dict[str, Value]]):
        super().__init__(values, devices)
        self.id = device
        self.states: list[_RuleState] = []
        # point -> (bits of the rules naming it, their positions in `states`)
        self.index: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.foreign: dict[str, tuple[tuple[_RuleState, str], ...]] = _NO_FOREIGN
        self.comm: _RuleState | None = None
        self.comm_restored = False  # comm_loss restored as active while online (`assume_active`)
        self.offline = False
        # bit i set: states[i] is not idle (see `_RuleState.idle`); one int, so a reading that
        # repeats a value decides without reaching the rules' own objects
        self.busy = 0
        # bit i set: states[i] is idle and inactive, so only a true verdict can change it: its
        # expression (`exprs[i]`, shared like `index`) is evaluated without reaching the rule
        self.quiet = 0
        self.exprs: tuple[Expression, ...] = ()


_NO_FOREIGN: dict[str, tuple[tuple[_RuleState, str], ...]] = {}
_NO_FRESH: frozenset[str] = frozenset()  # stateless expressions never look at `fresh`


class _RuleState:
    """One rule's evaluation state. What the hot path needs of the rule (its delays, deadband,
    device) is copied here, so an evaluation does not also reach the `Rule`."""

    __slots__ = ("active", "alarm_id", "bit", "clear_for", "clear_since", "deadband", "deadline",
                 "dev", "during", "expr", "follows", "for_", "order", "pending_since", "reported",
                 "root", "rule", "safe", "shown", "state")  # fmt: skip

    def __init__(
        self, rule: Rule, expr: Expression | None, order: int, dev: _Device, shared: dict
    ) -> None:
        self.rule = rule
        self.expr = expr  # None for comm_loss
        self.order = order
        self.dev = dev
        self.alarm_id = rule.alarm_id
        self.root = rule.id in ROOT_CAUSES
        # one object per distinct number, shared by every rule: fewer cold objects per evaluation
        self.for_ = shared.setdefault((type(rule.for_), rule.for_), rule.for_)
        self.clear_for = shared.setdefault((type(rule.clear_for), rule.clear_for), rule.clear_for)
        self.deadband = shared.setdefault((type(rule.deadband), rule.deadband), rule.deadband)
        self.state: ExprState | None = (
            expr.new_state() if expr is not None and expr.stateful else None
        )  # helper memory, when the expression has helpers
        self.active = False
        self.pending_since: float | None = None  # on-delay running since
        self.clear_since: float | None = None  # off-delay running since
        self.deadline: float | None = None
        self.reported: tuple[bool, bool] = (False, False)  # (active, suppressed) as last reported
        self.safe = rule.life_safety  # never suppressed: reported with `during` instead
        self.during = ""  # as last reported
        self.follows = rule.follows  # points whose change while active is reported
        self.shown: tuple[Value | None, ...] = ()  # their values as last reported
        self.bit = 0  # this rule's bit in `dev.busy` (set once it has its place in `dev.states`)

    @property
    def idle(self) -> bool:
        """Stateless, no delay running, evaluated since the last reset: a repeated value changes
        nothing. Kept as a bit of the device's `busy` (the hot path reads that)."""
        return not self.dev.busy & self.bit

    @idle.setter
    def idle(self, idle: bool) -> None:
        dev = self.dev
        if idle:
            dev.busy &= ~self.bit
            if not self.active:
                dev.quiet |= self.bit
        else:
            dev.busy |= self.bit
            dev.quiet &= ~self.bit

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
        self._devices: dict[str, _Device] = {}
        self._values: dict[str, dict[str, Value]] = {}
        self._offline: set[str] = set()
        self._depends_on = {d: list(up) for d, up in (depends_on or {}).items()}
        self._heap: list[tuple[float, int, _RuleState]] = []
        self._seq = itertools.count()
        self._wall_offset = 0.0  # wall - monotonic, from the last reading/status seen
        self._by_alarm: dict[str, _RuleState] = {}
        self._timers_dirty: dict[str, _RuleState] = {}
        self._parsed: dict[str, Expression] = {}  # one Expression per distinct `when:` text
        self._shared: dict[object, object] = {}  # one object per distinct delay/deadband
        # device -> point -> rules of any device naming it as `device.point` (with that name)
        self._foreign: dict[str, dict[str, list[tuple[_RuleState, str]]]] = {}
        self.ignored_readings = 0  # unknown device, or a device we know is offline
        self.broken_rules: list[str] = []
        for order, rule in enumerate(rules):
            self._add(rule, order)
        self._link()
        self._rule_count = sum(len(r) for r in self._rules.values())
        self._dependents = self._invert(self._depends_on)

    # ------------------------------------------------------------------ setup

    def _add(self, rule: Rule, order: int) -> None:
        device = rule.device
        dev = self._devices.get(device)
        if dev is None:
            values = self._values[device] = {}
            dev = self._devices[device] = _Device(device, values, self._values)
            self._rules[device] = dev.states
        if rule.id == COMM_LOSS or not rule.when:
            comm = _RuleState(rule, None, order, dev, self._shared)
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
        rs = _RuleState(rule, expr, order, dev, self._shared)
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
        touched: dict[_RuleState, set[str] | frozenset[str]] = {}
        seen: dict[str, set[str]] = {}  # device -> points read so far in this batch
        devices = self._devices
        last_device: str | None = None
        dev: _Device | None = None
        values: dict[str, Value] = {}
        index: dict[str, tuple[int, tuple[int, ...]]] = {}
        states: list[_RuleState] = []
        foreign = _NO_FOREIGN
        points_seen: set[str] = set()
        busy = quiet = 0
        quiet_dev: _Device | None = None  # the device of `quiet_due`
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
                            touched[rs] = _NO_FRESH
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
                                touched[rs] = _NO_FRESH
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
        dev: _Device, due: int, now: float, touched: dict[_RuleState, set[str] | frozenset[str]]
    ) -> None:
        """Evaluate the device's quiet rules in `due` (bits); those that came out true go on to
        the full evaluation. A quiet rule (idle and inactive) whose verdict is false or unknown
        keeps everything as it is, so its own object is not even reached."""
        dev.now = now
        dev.fresh = _NO_FRESH
        dev.state = None
        dev.deadband = 0.0  # inactive, no on-delay running
        exprs = dev.exprs
        while due:
            low = due & -due
            due ^= low
            pos = low.bit_length() - 1
            if exprs[pos].evaluate(dev):
                touched[dev.states[pos]] = _NO_FRESH

    def _answers(self, dev: _Device, ts: float, out: list[ConditionChange]) -> None:
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
            refs: dict[_RuleState, set[str] | frozenset[str]] = {}
            for entries in dev.foreign.values():
                for rs, _name in entries:
                    if rs.dev is not dev:
                        refs.setdefault(rs, _NO_FRESH)
            self._evaluate_all(refs, now, out)
        self._resync_dependents(device, status.ts, out)
        return out

    def tick(self, now: float) -> list[ConditionChange]:
        """Expire timers and windows whose deadline has passed (call it a few times a second)."""
        out: list[ConditionChange] = []
        due: dict[_RuleState, set[str] | frozenset[str]] = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, rs = heapq.heappop(heap)
            if rs.deadline == deadline:
                rs.deadline = None
                due[rs] = _NO_FRESH
        self._evaluate_all(due, now, out)
        return out

    # ------------------------------------------------------------------ evaluation

    def _evaluate_all(
        self,
        touched: dict[_RuleState, set[str] | frozenset[str]],
        now: float,
        out: list[ConditionChange],
    ) -> None:
        if len(touched) == 1:
            for rs, fresh in touched.items():
                self._evaluate(rs, fresh, now, out)
            return
        for rs in sorted(touched, key=_order):
            self._evaluate(rs, touched[rs], now, out)

    def _evaluate(
        self,
        rs: _RuleState,
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

    def _schedule(self, rs: _RuleState) -> None:
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

    def _report(
        self,
        rs: _RuleState,
        ts: float,
        reason: str,
        out: list[ConditionChange],
        update: bool = False,
    ) -> None:
        """Report the rule's condition if it changed (or `update`: its followed values did)."""
        rule = rs.rule
        cause = self._cause(rule.device, rule.id)
        if rs.safe:
            suppressed, during = False, cause if rs.active else ""
        else:
            suppressed, during = bool(cause) and (rs.active or rs.reported[1]), ""
        if (rs.active, suppressed) == rs.reported and during == rs.during and not update:
            return
        rs.reported = (rs.active, suppressed)
        rs.during = during
        values = dict(self._values[rule.device])
        if rs.follows:
            rs.shown = tuple(values.get(p) for p in rs.follows)
        value = self._shown_value(rs)
        if suppressed:
            reason = f"{reason}; suppressed by {cause}"
        elif during:
            reason = f"{reason}; during {cause}"
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
                during=during,
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
