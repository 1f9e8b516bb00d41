"""A rule's tree compiled once to closures: evaluation is calls of small functions, no tree walk.

The three-valued logic (`MISSING`), the deadband and the helpers' semantics are described in
docs/design/expressions.md; no data makes an evaluation raise.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from ground.expr.errors import MAX_WINDOW_ENTRIES
from ground.expr.scope import Changed, Count, Held, Rate, Scope
from ground.expr.syntax import Node, walk
from ground.expr.values import EMPTY, MISSING, Result, _Missing, is_number

_Fn = Callable[[Scope], Result]
_PURE: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max}
_NOT_NUMBERS = (_Missing, str)  # what a sign cannot apply to (bools and numbers it can)


def _arith(op: str) -> Callable[[Any, Any], Any]:
    return {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a / b,
        "%": lambda a, b: a % b,
    }[op]


def _compare(op: str) -> Callable[[Any, Any], bool]:
    return {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
    }[op]


def _safe(fn: Callable[[], Result]) -> Result:
    try:
        result = fn()
    except (TypeError, ZeroDivisionError, OverflowError, ValueError):
        return MISSING
    if isinstance(result, float) and math.isnan(result):
        return MISSING
    return result


class Compiler:
    """Compiles one tree; `slots` and `windows` describe the helper memory its closures use."""

    def __init__(self) -> None:
        self.slots: list[Callable[[], Rate | Count | Changed | Held]] = []
        self.windows: list[float] = []

    def slot(self, factory: Callable[[], Any], window: float) -> int:
        self.slots.append(factory)
        self.windows.append(window)
        return len(self.slots) - 1

    def compile(self, node: Node, polarity: int) -> _Fn:
        kind = node.kind
        if kind == "const":
            value = node.value
            return lambda s: value
        if kind == "name":
            return _name(node.value)
        if kind in ("neg", "pos"):
            inner = self.compile(node.args[0], 0)
            sign = -1 if kind == "neg" else 1

            def unary(s: Scope) -> Result:
                v = inner(s)
                if isinstance(v, _NOT_NUMBERS):
                    return MISSING
                return sign * v

            return unary
        if kind == "arith":
            left, right = (self.compile(a, 0) for a in node.args)
            op = _arith(node.op)

            def arith(s: Scope) -> Result:
                a, b = left(s), right(s)
                if a is MISSING or b is MISSING:
                    return MISSING
                try:
                    result: Result = op(a, b)
                except (TypeError, ZeroDivisionError, OverflowError, ValueError):
                    return MISSING
                if result != result:  # NaN, e.g. inf - inf
                    return MISSING
                return result

            return arith
        if kind == "compare":
            return self._compare(node, polarity)
        if kind == "not":
            inner = self.compile(node.args[0], -polarity)

            def negate(s: Scope) -> Result:
                v = inner(s)
                return MISSING if v is MISSING else not v

            return negate
        if kind in ("and", "or"):
            items = [self.compile(a, polarity) for a in node.args]
            return _and(items) if kind == "and" else _or(items)
        return self._call(node, polarity)

    def _compare(self, node: Node, polarity: int) -> _Fn:
        left, right = (self.compile(a, 0) for a in node.args)
        op = node.op
        cmp = _compare(op)
        # shift sign: which way `db` moves the right side so the comparison keeps holding
        shift = 0 if op in ("==", "!=") else polarity * (1 if op in (">", ">=") else -1)
        lhs, rhs = node.args
        if lhs.kind == "name" and "." not in lhs.value and rhs.kind == "const":
            return _compare_name_const(lhs.value, cmp, rhs.value, shift)

        def compare(s: Scope) -> Result:
            a, b = left(s), right(s)
            if a is MISSING or b is MISSING:
                return MISSING
            if shift and s.deadband and is_number(a) and is_number(b):
                b = b - shift * s.deadband
            try:
                return cmp(a, b)
            except TypeError:
                return MISSING

        return compare

    def _call(self, node: Node, polarity: int) -> _Fn:
        name = node.op
        if name in ("abs", "min", "max"):
            args = [self.compile(a, 0) for a in node.args]
            py = _PURE[name]
            if name != "abs" and len(args) == 1:  # min(x) is x (Python would want an iterable)
                return args[0]

            def pure(s: Scope) -> Result:
                values = []
                for a in args:
                    v = a(s)
                    if v is MISSING:
                        return MISSING
                    values.append(v)
                try:
                    result: Result = py(*values)
                except (TypeError, ZeroDivisionError, OverflowError, ValueError):
                    return MISSING
                if result != result:  # NaN
                    return MISSING
                return result

            return pure
        if name == "rate":
            return self._rate(node)
        if name == "changed":
            return self._changed(node)
        if name == "count":
            return self._count(node)
        return self._held(node, polarity)

    def _rate(self, node: Node) -> _Fn:
        point = node.args[0].value
        get = _name(point)
        window = node.window
        index = self.slot(Rate, window)

        def rate(s: Scope) -> Result:
            slot: Rate = s.state.slots[index]  # type: ignore[union-attr, assignment]
            samples = slot.samples
            if point in s.fresh:
                v = get(s)
                if is_number(v) or isinstance(v, bool):
                    slot.latest = v
                    if not samples or samples[-1][1] != v:
                        samples.append((s.now, v))
                        if len(samples) > MAX_WINDOW_ENTRIES:
                            samples.popleft()
            horizon = s.now - window
            while len(samples) > 1 and samples[1][0] <= horizon:
                samples.popleft()  # samples[0] stays: the value carried into the window
            if slot.latest is MISSING or not samples:
                return MISSING
            return _safe(lambda: slot.latest - samples[0][1])  # type: ignore[operator]

        return rate

    def _changed(self, node: Node) -> _Fn:
        point = node.args[0].value
        get = _name(point)
        index = self.slot(Changed, 0.0)

        def changed(s: Scope) -> Result:
            slot: Changed = s.state.slots[index]  # type: ignore[union-attr, assignment]
            if point in s.fresh:
                v = get(s)
                if v is not MISSING:
                    slot.previous, slot.latest = slot.latest, v
            if slot.latest is MISSING:
                return MISSING
            return slot.previous is not MISSING and slot.previous != slot.latest

        return changed

    def _count(self, node: Node) -> _Fn:
        inner = self.compile(node.args[0], 0)
        names = frozenset(n.value for n in walk(node.args[0]) if n.kind == "name")
        window = node.window
        index = self.slot(Count, window)

        def count(s: Scope) -> Result:
            slot: Count = s.state.slots[index]  # type: ignore[union-attr, assignment]
            hits = slot.hits
            if not names.isdisjoint(s.fresh):
                v = inner(s)
                if v is not MISSING and v:
                    hits.append(s.now)
                    if len(hits) > MAX_WINDOW_ENTRIES:
                        hits.popleft()
            horizon = s.now - window
            while hits and hits[0] <= horizon:
                hits.popleft()
            return len(hits)

        return count

    def _held(self, node: Node, polarity: int) -> _Fn:
        inner = self.compile(node.args[0], polarity)
        window = node.window
        index = self.slot(Held, window)

        def held(s: Scope) -> Result:
            slot: Held = s.state.slots[index]  # type: ignore[union-attr, assignment]
            v = inner(s)
            if v is MISSING or not v:
                slot.since = None
                return MISSING if v is MISSING else False
            if slot.since is None:
                slot.since = s.now
            return s.now - slot.since >= window

        return held


def _compare_name_const(name: str, cmp: Callable[[Any, Any], bool], const: Any, shift: int) -> _Fn:
    """`point OP constant`, the commonest comparison of all, in one closure (the hot path)."""
    const_is_number = is_number(const)

    def compare(s: Scope) -> Result:
        a = s.values.get(name, MISSING)
        if a is MISSING:
            return MISSING
        b = const
        if shift and s.deadband and const_is_number and is_number(a):
            b = b - shift * s.deadband
        try:
            return cmp(a, b)
        except TypeError:
            return MISSING

    return compare


def _name(name: str) -> _Fn:
    if "." in name:
        device, point = name.split(".", 1)
        return lambda s: s.devices.get(device, EMPTY).get(point, MISSING)
    return lambda s: s.values.get(name, MISSING)


def _and(items: list[_Fn]) -> _Fn:
    def conj(s: Scope) -> Result:
        unknown = False
        for item in items:
            v = item(s)
            if v is MISSING:
                unknown = True
            elif not v:
                return False
        return MISSING if unknown else True

    return conj


def _or(items: list[_Fn]) -> _Fn:
    def disj(s: Scope) -> Result:
        unknown = False
        for item in items:
            v = item(s)
            if v is MISSING:
                unknown = True
            elif v:
                return True
        return MISSING if unknown else False

    return disj
