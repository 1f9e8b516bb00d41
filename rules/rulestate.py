"""What the engine reports (`ConditionChange`, `PendingTimer`) and the records it keeps per device
and per rule. The records' layout serves the hot path: docs/design/alarm-engine.md says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.site import COMM_LOSS, Rule
from ground.expr import Expression, ExprState, Scope
from ground.model import Value

ROOT_CAUSES = frozenset({COMM_LOSS, "breaker_trip", "phase_loss"})
"""Rules that, when active on a device, suppress the alarms of the devices that depend on it."""


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


class DeviceRecord(Scope):
    """One device: its values, its rules, and the evaluation scope its rules run in, in one object
    so that a poll of the device touches this record and little else.

    `index` (point -> positions in `states`) is shared by every device with the same rules (one
    per template); `foreign` holds the rules of other devices that read this one (`device.point`).
    """

    values: dict[str, Value]  # the engine files readings here (a Scope only reads)

    __slots__ = ("busy", "comm", "comm_restored", "exprs", "foreign", "id", "index", "offline",
                 "quiet", "states")  # fmt: skip

    def __init__(self, device: str, values: dict[str, Value], devices: dict[str, dict[str, Value]]):
        super().__init__(values, devices)
        self.id = device
        self.states: list[RuleState] = []
        # point -> (bits of the rules naming it, their positions in `states`)
        self.index: dict[str, tuple[int, tuple[int, ...]]] = {}
        self.foreign: dict[str, tuple[tuple[RuleState, str], ...]] = NO_FOREIGN
        self.comm: RuleState | None = None
        self.comm_restored = False  # comm_loss restored as active while online (`assume_active`)
        self.offline = False
        # bit i set: states[i] is not idle (see `RuleState.idle`); one int, so a reading that
        # repeats a value decides without reaching the rules' own objects
        self.busy = 0
        # bit i set: states[i] is idle and inactive, so only a true verdict can change it: its
        # expression (`exprs[i]`, shared like `index`) is evaluated without reaching the rule
        self.quiet = 0
        self.exprs: tuple[Expression, ...] = ()


NO_FOREIGN: dict[str, tuple[tuple[RuleState, str], ...]] = {}
NO_FRESH: frozenset[str] = frozenset()  # stateless expressions never look at `fresh`


class RuleState:
    """One rule's evaluation state. What the hot path needs of the rule (its delays, deadband,
    device) is copied here, so an evaluation does not also reach the `Rule`."""

    __slots__ = ("active", "alarm_id", "bit", "clear_for", "clear_since", "deadband", "deadline",
                 "dev", "during", "expr", "follows", "for_", "order", "pending_since", "reported",
                 "root", "rule", "safe", "shown", "state")  # fmt: skip

    def __init__(
        self,
        rule: Rule,
        expr: Expression | None,
        order: int,
        dev: DeviceRecord,
        shared: dict[Any, Any],
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


def by_order(rs: RuleState) -> int:
    """Rules are evaluated in the site's order, so their changes come out in a stable order."""
    return rs.order
