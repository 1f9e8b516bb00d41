"""A parsed rule condition (`Expression`) and the one way to make one (`parse_expression`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ground.expr.compiler import Compiler
from ground.expr.scope import ExprState, Scope
from ground.expr.syntax import Node, parse_tree, walk
from ground.expr.values import Result
from ground.model import Value


class Expression:
    """A parsed rule condition: its text, the points it names, and a compiled evaluator."""

    __slots__ = ("_fn", "_slots", "_windows", "names", "points", "text")

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        ordered = [n.value for n in walk(tree) if n.kind == "name"]
        self.points: tuple[str, ...] = tuple(dict.fromkeys(ordered))  # in order of appearance
        self.names: frozenset[str] = frozenset(ordered)
        compiler = Compiler()
        self._fn = compiler.compile(tree, 1)
        self._slots = compiler.slots
        self._windows = compiler.windows

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    @property
    def stateful(self) -> bool:
        """True when the expression uses rate/count/changed/held and needs an `ExprState`."""
        return bool(self._slots)

    def new_state(self) -> ExprState:
        return ExprState([make() for make in self._slots])

    def next_deadline(self, state: ExprState) -> float | None:
        """When (monotonic) a `held`/`count`/`rate` window may change the result on its own."""
        return state.next_deadline(self._windows)

    def evaluate(self, scope: Scope) -> Result:
        """The expression's value, or `MISSING`. Never raises on any data."""
        if self._slots and scope.state is None:
            scope.state = self.new_state()
        return self._fn(scope)

    def __call__(
        self,
        values: Mapping[str, Value] | None = None,
        **kw: Any,
    ) -> Result:
        """Convenience for tests and tools: `values` may also hold `device.point` keys."""
        values = dict(values or {})
        devices: dict[str, dict[str, Value]] = {}
        for key, v in values.items():
            if "." in key:
                device, point = key.split(".", 1)
                devices.setdefault(device, {})[point] = v
        return self.evaluate(Scope(values, devices, **kw))


def parse_expression(text: str) -> Expression:
    """Parse a rule's `when:` text.

    Raises:
        ExpressionError: the text is not in the language, too long (> 4 kB) or nested too deep.
    """
    tree = parse_tree(text)
    return Expression(text, tree)
