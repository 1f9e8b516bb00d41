"""The rule expression language: grammar, precedence, helpers, missing values, and what it refuses."""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground.expr import (
    MAX_LENGTH,
    MISSING,
    ExpressionError,
    Scope,
    parse_expression,
    truth,
)
from tests.support import examples


def ev(text: str, **values: object) -> object:
    return parse_expression(text)(values)


# ------------------------------------------------------------------ grammar and precedence


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 * 3 % 4", 2),
        ("-2 * 3", -6),
        ("- -2", 2),
        ("+3", 3),
        ("7 / 2", 3.5),
        ("-7 % 3", 2),
        ("1e3 + .5", 1000.5),
        ("2.5e-1", 0.25),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 4", False),
        ("3 >= 4", False),
        ("1 == 1.0", True),
        ("1 != 1", False),
        ("true == 1", True),
        ("True + True", 2),
        ("False", False),
        ("not 1 > 2", True),
        ("not true or true", True),
        ("true or false and false", True),
        ("(true or false) and false", False),
        ("1 + 2 > 2 and 3 < 4", True),
        ("'denied' == \"denied\"", True),
        ("'it\\'s' == \"it's\"", True),
        ("abs(-3)", 3),
        ("min(4, 2, 9)", 2),
        ("max(4, 2, 9)", 9),
        ("min(7)", 7),
        ("max(1, 2) * 2", 4),
    ],
)
def test_values_and_precedence(text: str, expected: object) -> None:
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_names_and_cross_device_references() -> None:
    e = parse_expression("fire-1.fire and x > 1 or pump_2.flow < min(a, b)")
    assert e.names == frozenset({"fire-1.fire", "x", "pump_2.flow", "a", "b"})
    assert e.points == ("fire-1.fire", "x", "pump_2.flow", "a", "b")
    assert e.text == "fire-1.fire and x > 1 or pump_2.flow < min(a, b)"
    assert e({"fire-1.fire": True, "x": 2}) is True
    assert e({"fire-1.fire": False, "x": 2, "pump_2.flow": 1, "a": 3, "b": 4}) is True


def test_minus_without_spaces_between_plain_names_is_subtraction() -> None:
    assert parse_expression("flow-1").names == {"flow"}
    assert ev("flow-1", flow=3) == 2
    assert ev("a-b", a=5, b=2) == 3
    # …but before a dot the dash belongs to the device id (documented: use spaces)
    assert parse_expression("a-b.c").names == {"a-b.c"}
    assert parse_expression("a - b.c").names == {"a", "b.c"}


def test_template_expressions_parse() -> None:
    for text in [
        "running and outlet_pressure < pressure_setpoint - 1.5",
        "rate(starts, 1h) > 6",
        "min(voltage_l1, voltage_l2, voltage_l3) >= 50 and min(voltage_l1, voltage_l2) < 198",
        "alarm_button or held(not moving and not door_open and occupied, 30s)",
        "count(last_event == 'denied', 60s) >= 5",
        "fire or zones != 0",
        "changed(floor)",
    ]:
        parse_expression(text)


def test_chained_comparison_is_refused_with_advice() -> None:
    with pytest.raises(ExpressionError, match="chained comparisons"):
        parse_expression("a < b < c")


# ------------------------------------------------------------------ missing values


def test_missing_semantics() -> None:
    assert ev("x > 5") is MISSING
    assert ev("not (x > 5)") is MISSING  # never fires on data it does not have
    assert ev("x + 1") is MISSING
    assert ev("-x") is MISSING
    assert ev("abs(x)") is MISSING
    assert ev("min(x, 1)") is MISSING
    assert ev("x > 5 and false") is False  # Kleene: false wins
    assert ev("x > 5 and true") is MISSING
    assert ev("x > 5 or true") is True
    assert ev("x > 5 or false") is MISSING
    assert truth(MISSING) is None
    assert truth(ev("1 > 0")) is True
    assert truth(ev("0")) is False


def test_errors_at_runtime_are_missing_never_exceptions() -> None:
    assert ev("1 / 0") is MISSING
    assert ev("x % 0", x=3) is MISSING
    assert ev("x / y", x=1.0, y=0.0) is MISSING
    assert ev("s < 1", s="abc") is MISSING
    assert ev("s + 1", s="abc") is MISSING
    assert ev("-s", s="abc") is MISSING
    assert ev("min(s, 1)", s="abc") is MISSING
    assert ev("s == 1", s="abc") is False
    assert ev("x * 10 - x * 10", x=1e308) is MISSING  # inf - inf is NaN: not a value


# ------------------------------------------------------------------ helpers


def test_rate_is_latest_minus_oldest_inside_window() -> None:
    e = parse_expression("rate(starts, 1h)")
    state = e.new_state()

    def at(now: float, starts: int | None = None) -> object:
        values = {} if starts is None else {"starts": starts}
        fresh = {"starts"} if starts is not None else set()
        return e.evaluate(Scope(values, now=now, fresh=fresh, state=state))

    assert at(0) is MISSING
    assert at(0, 10) == 0
    assert at(600, 12) == 2
    assert at(1200, 12) == 2
    assert at(1800, 17) == 7
    # 10 (t=0) leaves the window at 3600+600: from then on the oldest kept value is 12
    assert at(3600, 17) == 7
    assert at(4200.5) == 5
    assert e.next_deadline(state) == 1800 + 3600


def test_count_counts_true_evaluations_caused_by_new_readings() -> None:
    e = parse_expression("count(last_event == 'denied', 60s)")
    state = e.new_state()

    def read(now: float, value: str | None) -> object:
        fresh = {"last_event"} if value is not None else set()
        values = {"last_event": value} if value is not None else {"last_event": "denied"}
        return e.evaluate(Scope(values, now=now, fresh=fresh, state=state))

    assert read(0, "denied") == 1
    assert read(1, "granted") == 1
    assert read(2, "denied") == 2
    assert (
        read(3, None) == 2
    )  # a tick: the latest value is still 'denied' but it is not a new reading
    assert read(59, "denied") == 3
    assert e.next_deadline(state) == 60
    assert read(60, None) == 2  # the first hit left the window
    assert read(200, None) == 0


def test_changed_compares_with_the_previous_reading() -> None:
    e = parse_expression("changed(floor)")
    state = e.new_state()

    def read(now: float, floor: int) -> object:
        return e.evaluate(Scope({"floor": floor}, now=now, fresh={"floor"}, state=state))

    assert e.evaluate(Scope({}, state=state)) is MISSING
    assert read(0, 3) is False
    assert read(1, 3) is False
    assert read(2, 4) is True
    assert e.evaluate(Scope({"floor": 4}, now=3, state=state)) is True  # until the next reading
    assert read(4, 4) is False


def test_held_needs_the_condition_continuously() -> None:
    e = parse_expression("held(x > 1, 30s)")
    state = e.new_state()

    def at(now: float, x: float | None) -> object:
        values = {} if x is None else {"x": x}
        return e.evaluate(Scope(values, now=now, fresh={"x"}, state=state))

    assert at(0, 2) is False
    assert e.next_deadline(state) == 30
    assert at(29.9, 2) is False
    assert at(30, 2) is True
    assert at(31, 0) is False
    assert at(32, 2) is False
    assert at(61.9, 2) is False
    assert at(62, 2) is True
    assert at(63, None) is MISSING  # unknown is not "continuously true": the clock restarts
    assert at(64, 2) is False


def test_helpers_get_their_own_state_when_none_is_given() -> None:
    assert ev("held(x, 1s)", x=True) is False
    assert parse_expression("rate(x, 1s)").stateful
    assert not parse_expression("x > 1").stateful


def test_deadband_shifts_thresholds_in_the_clearing_direction() -> None:
    above = parse_expression("x > 7.1")
    below = parse_expression("x < 20")
    negated = parse_expression("not (x > 5)")
    assert above.evaluate(Scope({"x": 7.0}, deadband=0.5)) is True
    assert above.evaluate(Scope({"x": 6.5}, deadband=0.5)) is False
    assert below.evaluate(Scope({"x": 20.4}, deadband=0.5)) is True
    assert below.evaluate(Scope({"x": 20.6}, deadband=0.5)) is False
    assert negated.evaluate(Scope({"x": 5.3}, deadband=0.5)) is True
    assert negated.evaluate(Scope({"x": 5.6}, deadband=0.5)) is False
    assert parse_expression("x == 1").evaluate(Scope({"x": 1.2}, deadband=0.5)) is False


# ------------------------------------------------------------------ refusals

HOSTILE = [
    ("__import__('os')", "__import__"),
    ("a.__class__", "__class__"),
    ("x[0]", "indexing"),
    ("open('f')", "unknown function 'open'"),
    ("lambda: 1", "'lambda'"),
    ("(1).real", "attribute access"),
    ("eval('1')", "unknown function 'eval'"),
    ("exec('1')", "unknown function 'exec'"),
    ("import os", "'import'"),
    ("x = 1", "assignment"),
    ("min(a=1)", "keyword arguments"),
    ("a; b", "';'"),
    ("x.y.z", "attribute access"),
    ("fire-1.fire(1)", "calling"),
    ("x ** 2", "power"),
    ("x // 2", "'//'"),
    ("[1, 2]", "lists"),
    ("{1: 2}", "'{'"),
    ("a if b else c", "'if'"),
    ("x is None", "'is'"),
    ("10s", "only allowed as the window"),
    ("rate(x + 1, 1s)", "point name"),
    ("rate(x)", "window"),
    ("held(x, 0s)", "longer than 0"),
    ("abs(x, 1s)", "takes no window"),
    ("abs()", "one argument"),
    ("count(1s, x)", "window as the last argument"),
    ("changed(1)", "point name"),
    ("12abc", "bad number"),
    ("'open", "unterminated string"),
    ("", "empty"),
    ("1 2", "unexpected '2' at column 3"),
    ("(1 + 2", "expected ')'"),
    ("1 +", "end of expression"),
    ("a and", "end of expression"),
    ("x & y", "'and'"),
    ("1" * (MAX_LENGTH + 1), "longer than"),
    ("(" * 60 + "1" + ")" * 60, "nested deeper"),
    ("-" * 80 + "1", "nested deeper"),
    ("not " * 80 + "x", "nested deeper"),
    ("+".join(["1"] * 1500), "too complex"),
]


@pytest.mark.parametrize(("text", "needle"), HOSTILE, ids=[h[0][:30] for h in HOSTILE])
def test_hostile_input_is_refused_by_name(text: str, needle: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    assert needle in str(info.value)


def test_error_message_has_the_column() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_expression("flow > (1 + 2))")
    assert str(info.value) == "unexpected ')' at column 15"
    assert info.value.column == 15


_PIECES = [
    *"ab_1.-+*/%<>=!()'\" ,sm[]:;",
    "and ",
    "not ",
    "or ",
    "min(",
    "rate(",
    "held(",
    "count(",
    "changed(",
    "10s",
    "__",
    "fire-1.x",
    "1e3",
    "true",
]


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_random_text_raises_only_expression_errors(text: str) -> None:
    try:
        e = parse_expression(text)
    except ExpressionError:
        return
    e({"a": 1, "b": 0.0, "ab": "x"})  # whatever parses also evaluates without raising


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_unicode_raises_only_expression_errors(text: str) -> None:
    try:
        parse_expression(text)
    except ExpressionError:
        pass


# ------------------------------------------------------------------ agreement with Python

_OPS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}
_CMP = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

numbers = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
)


def _tree(leaves: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaves,
        lambda inner: st.tuples(st.sampled_from(sorted(_OPS)), inner, inner),
        max_leaves=8,
    )


def _text(node: object) -> str:
    if isinstance(node, tuple):
        op, a, b = node
        return f"({_text(a)} {op} {_text(b)})"
    return repr(node)


def _python(node: object) -> object:
    """What Python gives, with our rule that an error is MISSING."""
    if isinstance(node, tuple):
        op, a, b = node
        x, y = _python(a), _python(b)
        if x is MISSING or y is MISSING:
            return MISSING
        try:
            result = _OPS[op](x, y)
        except (ZeroDivisionError, OverflowError):
            return MISSING
        return MISSING if isinstance(result, float) and math.isnan(result) else result
    return node


@settings(max_examples=examples(300), deadline=None)
@given(_tree(numbers))
def test_arithmetic_agrees_with_python(tree: object) -> None:
    expected = _python(tree)
    got = parse_expression(_text(tree))({})
    if expected is MISSING:
        assert got is MISSING
    else:
        assert got == expected


@settings(max_examples=examples(300), deadline=None)
@given(_tree(numbers), st.sampled_from(sorted(_CMP)), _tree(numbers), st.booleans())
def test_comparison_agrees_with_python(left: object, op: str, right: object, negate: bool) -> None:
    a, b = _python(left), _python(right)
    text = f"{_text(left)} {op} {_text(right)}"
    got = parse_expression(f"not ({text})" if negate else text)({})
    if a is MISSING or b is MISSING:
        assert got is MISSING
    else:
        expected = _CMP[op](a, b)
        assert got is ((not expected) if negate else expected)
