"""Suppression by cause: which root-cause alarm up the `depends_on` chain hides a rule's change,
and the reporting of every change with its cause (or, for a life-safety rule, its `during`).

A life-safety rule is never reported suppressed (PRODUCT §9); docs/design/alarm-engine.md has the
rules of what is reported when.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from config.site import COMM_LOSS
from ground.model import Value
from rules.rulestate import ROOT_CAUSES, ConditionChange, RuleState


class Suppression:
    """Reports rule changes with their root cause. It reads the engine's tables; of a rule's state
    it writes only what was last reported (`reported`, `during`, `shown`).

    Args:
        depends_on: device -> the devices it depends on (its supply, its controller).
        comm: device -> its comm_loss rule.
        rules: device -> its other rules.
        values: device -> its latest good values.
        offline: the devices known not to answer.
    """

    def __init__(
        self,
        depends_on: Mapping[str, Sequence[str]],
        comm: Mapping[str, RuleState],
        rules: Mapping[str, Sequence[RuleState]],
        values: Mapping[str, Mapping[str, Value]],
        offline: set[str],
    ) -> None:
        self._depends_on = depends_on
        self._comm = comm
        self._rules = rules
        self._values = values
        self._offline = offline
        self._dependents = invert(depends_on)

    def cause(self, device: str, rule_id: str) -> str:
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

    def report(
        self,
        rs: RuleState,
        ts: float,
        reason: str,
        out: list[ConditionChange],
        update: bool = False,
    ) -> None:
        """Report the rule's condition if it changed (or `update`: its followed values did)."""
        rule = rs.rule
        cause = self.cause(rule.device, rule.id)
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
        value = self.shown_value(rs)
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

    def shown_value(self, rs: RuleState) -> Value | None:
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

    def resync_dependents(self, device: str, ts: float, out: list[ConditionChange]) -> None:
        for below in self._dependents.get(device, ()):
            comm = self._comm.get(below)
            reason = "root cause changed"
            if comm is not None:
                self.report(comm, ts, reason, out)
            for rs in self._rules.get(below, ()):
                self.report(rs, ts, reason, out)


def invert(depends_on: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
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
