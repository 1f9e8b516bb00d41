"""The rule expression language: `parse_expression(text)` gives an `Expression` to evaluate.

`syntax` tokenizes and parses (refusing anything outside the grammar), `compiler` turns the tree
into closures, `scope` holds what an evaluation sees. The language itself is described in
docs/design/expressions.md.
"""

from ground.expr.errors import MAX_HEIGHT, MAX_LENGTH, MAX_NESTING, ExpressionError
from ground.expr.expression import Expression, parse_expression
from ground.expr.scope import ExprState, Scope
from ground.expr.values import MISSING, Result, truth

__all__ = [
    "MAX_HEIGHT",
    "MAX_LENGTH",
    "MAX_NESTING",
    "MISSING",
    "ExprState",
    "Expression",
    "ExpressionError",
    "Result",
    "Scope",
    "parse_expression",
    "truth",
]
