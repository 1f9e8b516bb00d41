"""The rule expression language: a tokenizer and a Pratt parser, compiled once to closures.

Rule `when:` texts come from site files written by people, so they are parsed by this small
language and never handed to `eval`, `exec`, `compile` or `ast`: nothing outside the grammar below
can run, and every refusal names what was refused and its column.

Grammar (loosest binding first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?      # no chains: a < b < c is refused
    sum     := term (("+" | "-") term)*
    term    := unary (("*" | "/" | "%") unary)*
    unary   := ("-" | "+") unary | primary
    primary := NUMBER | STRING | true | false | NAME | REF | "(" expr ")" | call
    call    := abs(expr) | min(expr, ...) | max(expr, ...) | changed(NAME)
             | rate(NAME, DURATION) | count(expr, DURATION) | held(expr, DURATION)

`NAME` is a point of the rule's own device (`flow`); `REF` a point of another device
(`fire-1.fire`): device ids may contain `-`, so `a-b.c` is ONE reference. A minus between two names
needs spaces only when the right-hand name is a reference (`x - fire-1.fire`); `flow-1` is still
`flow - 1`. A `DURATION` (`500ms 10s 5m 2h 1d`) is only allowed as a helper's window.

Three-valued logic: a point that was never read, or whose last reading was bad or stale, is
`MISSING`. Arithmetic or a comparison with `MISSING` gives `MISSING`; `not MISSING` is `MISSING`;
`and`/`or` follow Kleene logic (`false and MISSING` is false, `true or MISSING` is true, otherwise
MISSING). A rule whose result is `MISSING` is *unknown*: the engine never raises an alarm on it (and
never clears one on it either) — a rule never fires on data it does not have. Division or modulo by
zero, and operations on incompatible types (`'a' < 1`), give `MISSING`, never an exception.
Booleans compare and add like Python's (`true == 1`).

Stateful helpers keep their memory in an `ExprState` owned by the caller (one per rule), so one
parsed `Expression` can serve many devices:

- `rate(p, w)`: latest value of `p` minus the oldest value kept inside the last `w` (no
  extrapolation); with one reading it is 0; MISSING before the first.
- `count(e, w)`: how many evaluations caused by a NEW reading of one of `e`'s points had `e` true
  within the last `w`.
- `changed(p)`: the latest reading of `p` differs from the one before (stays so until the next
  reading); MISSING before the first reading, false after exactly one.
- `held(e, w)`: `e` has been continuously true for at least `w`; MISSING while `e` is MISSING.

Deadband: `Scope.deadband` (set by the engine while a rule is active) widens every numeric `<`,
`<=`, `>`, `>=` in the direction that keeps the rule true: `a > b` is evaluated as `a > b - db`,
`a < b` as `a < b + db`, and under `not` the other way round. Comparisons inside `count(...)` and
`rate(...)` are not shifted (they count events, not levels); `==`/`!=` never are.
"""

from __future__ import annotations

import keyword
import math
import operator
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ground.model import Value

MAX_LENGTH: Final = 4096
MAX_NESTING: Final = 50
MAX_HEIGHT: Final = 200  # tree height: keeps evaluation far from Python's recursion limit
MAX_WINDOW_ENTRIES: Final = (
    20_000  # per rate()/count() call: memory stays bounded whatever the rate
)


class ExpressionError(ValueError):
    """A rule text that is not in the language; the message names the problem and its column."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(f"{message} at column {column}" if column is not None else message)


class _Missing:
    """The value of a point we do not have. Falsy, but code tests identity (`is MISSING`)."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
Result = Value | _Missing
_EMPTY: Mapping[str, Value] = {}


# ---------------------------------------------------------------------------------------- tokens

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<duration>\d+(?:\.\d+)?(?:ms|s|m|h|d)(?![A-Za-z0-9_]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.]))
  | (?P<ref>[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|%|\(|\)|,)
    """,
    re.VERBOSE,
)
_REFUSED_CHARS: Final = {
    "[": "indexing and lists are not allowed: '['",
    "]": "indexing and lists are not allowed: ']'",
    "{": "'{' is not allowed",
    "}": "'}' is not allowed",
    ".": "attribute access is not allowed: '.'",
    "=": "assignment and keyword arguments are not allowed: '='",
    ";": "';' is not allowed: one expression per rule",
    ":": "':' is not allowed",
    "@": "'@' is not allowed",
    "&": "use 'and' instead of '&'",
    "|": "use 'or' instead of '|'",
    "!": "use 'not' or '!=' instead of '!'",
    "~": "'~' is not allowed",
    "^": "'^' is not allowed",
    "`": "'`' is not allowed",
    "\\": "'\\' is not allowed outside a string",
    "#": "comments are not allowed: '#'",
    "$": "'$' is not allowed",
    "?": "'?' is not allowed",
}
_KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false", "True", "False"})
_PY_KEYWORDS: Final = frozenset(keyword.kwlist) - _KEYWORDS
_HELPERS: Final = ("abs", "min", "max", "rate", "count", "changed", "held")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number duration string name ref op eof
    text: str
    column: int  # 1-based


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        column = pos + 1
        if match is None:
            ch = text[pos]
            if ch in "'\"":
                raise ExpressionError("unterminated string", column)
            if ch.isdigit():
                bad = re.match(r"[0-9A-Za-z_.]+", text[pos:])
                word = bad.group(0) if bad else ch
                raise ExpressionError(
                    f"bad number or duration {word!r} (durations: 500ms 10s 5m 2h 1d)", column
                )
            raise ExpressionError(_REFUSED_CHARS.get(ch, f"unexpected character {ch!r}"), column)
        kind = match.lastgroup or "op"
        value = match.group(0)
        if kind == "op" and value == "*" and text.startswith("**", pos):
            raise ExpressionError("'**' (power) is not supported", column)
        if kind == "op" and value == "/" and text.startswith("//", pos):
            raise ExpressionError("'//' is not supported: use '/'", column)
        if kind in ("name", "ref"):
            _check_name(value, column)
        if kind != "space":
            tokens.append(_Token(kind, value, column))
        pos = match.end()
    tokens.append(_Token("eof", "", len(text) + 1))
    return tokens


def _check_name(word: str, column: int) -> None:
    for part in word.split("."):
        if part.startswith("__"):
            raise ExpressionError(f"names starting with '__' are not allowed: {word!r}", column)
    if word in _PY_KEYWORDS:
        raise ExpressionError(f"{word!r} is not allowed", column)


# ---------------------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class _Node:
    kind: str  # const name neg pos arith compare and or not call
    op: str = ""
    value: Any = None  # const value, or the point name
    args: tuple[_Node, ...] = ()
    window: float = 0.0  # rate/count/held


def _walk(node: _Node) -> Iterator[_Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.args))


def _height(node: _Node) -> int:
    """Iterative: a 4 kB chain `1+1+1…` is 2,000 levels deep and must not blow the stack here."""
    best, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        best = max(best, level)
        stack.extend((arg, level + 1) for arg in current.args)
    return best


class _Parser:
    """Pratt parser: binding powers below; `not` is a prefix operator looser than comparisons."""

    _BINARY: Final = {
        "or": 10,
        "and": 20,
        "<": 40,
        "<=": 40,
        ">": 40,
        ">=": 40,
        "==": 40,
        "!=": 40,
        "+": 50,
        "-": 50,
        "*": 60,
        "/": 60,
        "%": 60,
    }

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, text: str, what: str) -> None:
        if self.tok.text != text or self.tok.kind not in ("op",):
            raise ExpressionError(f"expected {what}, found {_describe(self.tok)}", self.tok.column)
        self.advance()

    def parse(self) -> _Node:
        if self.tok.kind == "eof":
            raise ExpressionError("empty expression")
        node = self.expr(0)
        if self.tok.kind != "eof":
            raise ExpressionError(f"unexpected {_describe(self.tok)}", self.tok.column)
        return node

    def _binding(self, tok: _Token) -> int:
        if tok.kind == "op" or (tok.kind == "name" and tok.text in ("and", "or")):
            return self._BINARY.get(tok.text, 0)
        return 0

    def expr(self, min_bp: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExpressionError(f"expression nested deeper than {MAX_NESTING}", self.tok.column)
        left = self.prefix()
        while True:
            tok = self.tok
            bp = self._binding(tok)
            if bp <= min_bp:
                break
            self.advance()
            if tok.text in ("and", "or"):
                items = [left, self.expr(bp)]
                while self.tok.kind == "name" and self.tok.text == tok.text:
                    self.advance()
                    items.append(self.expr(bp))
                left = _Node(tok.text, args=tuple(items))
            elif bp == 40:
                right = self.expr(bp)
                if self._binding(self.tok) == 40:
                    raise ExpressionError(
                        "chained comparisons are not supported: write 'a < b and b < c'",
                        self.tok.column,
                    )
                left = _Node("compare", tok.text, args=(left, right))
            else:
                left = _Node("arith", tok.text, args=(left, self.expr(bp)))
        self.depth -= 1
        return left

    def prefix(self) -> _Node:
        tok = self.advance()
        if tok.kind == "number":
            return _Node("const", value=_number(tok))
        if tok.kind == "string":
            return _Node("const", value=_unquote(tok.text))
        if tok.kind == "duration":
            raise ExpressionError(
                f"a duration like {tok.text!r} is only allowed as the window of rate/count/held",
                tok.column,
            )
        if tok.kind == "op":
            if tok.text == "(":
                node = self.expr(0)
                self.expect(")", "')'")
                return node
            if tok.text in ("-", "+"):
                return _Node("neg" if tok.text == "-" else "pos", args=(self.expr(65),))
            raise ExpressionError(f"unexpected {_describe(tok)}", tok.column)
        if tok.kind == "ref":
            if self.tok.text == "(":
                raise ExpressionError(f"calling {tok.text!r} is not allowed", tok.column)
            return _Node("name", value=tok.text)
        if tok.kind == "name":
            word = tok.text
            if word == "not":
                return _Node("not", args=(self.expr(30),))
            if word in ("true", "True"):
                return _Node("const", value=True)
            if word in ("false", "False"):
                return _Node("const", value=False)
            if word in ("and", "or"):
                raise ExpressionError(f"unexpected {word!r}", tok.column)
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            return _Node("name", value=word)
        raise ExpressionError("unexpected end of expression", tok.column)

    def call(self, fn: _Token) -> _Node:
        if fn.text not in _HELPERS:
            raise ExpressionError(
                f"unknown function {fn.text!r} (allowed: {', '.join(_HELPERS)})", fn.column
            )
        self.advance()  # (
        self.depth += 1
        args: list[_Node] = []
        window: float | None = None
        while True:
            if self.tok.kind == "op" and self.tok.text == ")" and not args:
                break
            if self.tok.kind == "duration":
                window_tok = self.advance()
                if window is not None or not args:
                    raise ExpressionError(
                        f"{fn.text}() takes its window as the last argument", window_tok.column
                    )
                window = _duration(window_tok)
            else:
                if window is not None:
                    raise ExpressionError(
                        f"{fn.text}() takes its window as the last argument", self.tok.column
                    )
                args.append(self.expr(0))
            if self.tok.kind == "op" and self.tok.text == ",":
                self.advance()
                continue
            self.expect(")", f"',' or ')' to close {fn.text}(")
            break
        self.depth -= 1
        return _check_call(fn, args, window)


def _check_call(fn: _Token, args: list[_Node], window: float | None) -> _Node:
    name, col = fn.text, fn.column
    if name in ("rate", "count", "held"):
        if window is None or len(args) != 1:
            first = "point" if name == "rate" else "expression"
            raise ExpressionError(f"{name}() takes ({first}, window), e.g. {name}(x, 60s)", col)
        if window <= 0:
            raise ExpressionError(f"{name}() needs a window longer than 0", col)
    elif window is not None:
        raise ExpressionError(f"{name}() takes no window", col)
    if name in ("rate", "changed") and (len(args) != 1 or args[0].kind != "name"):
        example = "rate(starts, 1h)" if name == "rate" else "changed(starts)"
        raise ExpressionError(f"{name}() takes a point name first, e.g. {example}", col)
    if name == "abs" and len(args) != 1:
        raise ExpressionError("abs() takes one argument", col)
    if name in ("min", "max") and not args:
        raise ExpressionError(f"{name}() takes at least one argument", col)
    return _Node("call", name, args=tuple(args), window=window or 0.0)


def _describe(tok: _Token) -> str:
    return "end of expression" if tok.kind == "eof" else repr(tok.text)


def _number(tok: _Token) -> int | float:
    text = tok.text
    if re.fullmatch(r"\d+", text):
        if len(text) > 30:
            raise ExpressionError(f"number {text[:12]}... is too long", tok.column)
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ExpressionError(f"number {text!r} is out of range", tok.column)
    return value


def _duration(tok: _Token) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", tok.text)
    assert match is not None  # the tokenizer only makes durations of this shape
    return float(match.group(1)) * _UNITS[match.group(2)]


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# ---------------------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Rate:
    samples: deque[tuple[float, Value]] = field(default_factory=deque)  # only changes are kept
    latest: Result = MISSING


@dataclass(slots=True)
class _Count:
    hits: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class _Changed:
    previous: Result = MISSING
    latest: Result = MISSING


@dataclass(slots=True)
class _Held:
    since: float | None = None


class ExprState:
    """The memory of one rule's `rate/count/changed/held` calls, bounded by their windows."""

    __slots__ = ("slots",)

    def __init__(self, slots: Iterable[_Rate | _Count | _Changed | _Held]) -> None:
        # a tuple holds its items inline: one object fewer to reach than a list
        self.slots = tuple(slots)

    def next_deadline(self, windows: list[float]) -> float | None:
        """The monotonic time at which a windowed helper may change without a new reading."""
        best: float | None = None
        for slot, window in zip(self.slots, windows, strict=True):
            t: float | None = None
            if isinstance(slot, _Held) and slot.since is not None:
                t = slot.since + window
            elif isinstance(slot, _Count) and slot.hits:
                t = slot.hits[0] + window
            elif isinstance(slot, _Rate) and len(slot.samples) > 1:
                t = slot.samples[1][0] + window
            if t is not None and (best is None or t < best):
                best = t
        return best


class Scope:
    """What an evaluation sees: values, the clock, which points are new, helper memory, deadband.

    Args:
        values: the rule's own device's points.
        devices: every device's points, for `device.point` references.
        now: monotonic seconds.
        fresh: names (as written in the expression) that have a new reading in this evaluation.
        state: from `Expression.new_state()`; needed only if the expression uses helpers.
        deadband: the hysteresis to apply (the engine sets it while the rule is active).
    """

    __slots__ = ("deadband", "devices", "fresh", "now", "state", "values")

    def __init__(
        self,
        values: Mapping[str, Value],
        devices: Mapping[str, Mapping[str, Value]] | None = None,
        now: float = 0.0,
        fresh: frozenset[str] | set[str] = frozenset(),
        state: ExprState | None = None,
        deadband: float = 0.0,
    ) -> None:
        self.values = values
        self.devices = devices if devices is not None else {}
        self.now = now
        self.fresh = fresh
        self.state = state
        self.deadband = deadband


# ---------------------------------------------------------------------------------------- compile

_Fn = Callable[[Scope], Result]


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


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _safe(fn: Callable[[], Result]) -> Result:
    try:
        result = fn()
    except (TypeError, ZeroDivisionError, OverflowError, ValueError):
        return MISSING
    if isinstance(result, float) and math.isnan(result):
        return MISSING
    return result


class _Compiler:
    def __init__(self) -> None:
        self.slots: list[Callable[[], _Rate | _Count | _Changed | _Held]] = []
        self.windows: list[float] = []

    def slot(self, factory: Callable[[], Any], window: float) -> int:
        self.slots.append(factory)
        self.windows.append(window)
        return len(self.slots) - 1

    def compile(self, node: _Node, polarity: int) -> _Fn:
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
                if v is MISSING or isinstance(v, str):
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
                    result = op(a, b)
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

    def _compare(self, node: _Node, polarity: int) -> _Fn:
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
            if shift and s.deadband and _is_number(a) and _is_number(b):
                b = b - shift * s.deadband
            try:
                return cmp(a, b)
            except TypeError:
                return MISSING

        return compare

    def _call(self, node: _Node, polarity: int) -> _Fn:
        name = node.op
        if name in ("abs", "min", "max"):
            args = [self.compile(a, 0) for a in node.args]
            py = {"abs": abs, "min": min, "max": max}[name]
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
                    result = py(*values)
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

    def _rate(self, node: _Node) -> _Fn:
        point = node.args[0].value
        get = _name(point)
        window = node.window
        index = self.slot(_Rate, window)

        def rate(s: Scope) -> Result:
            slot: _Rate = s.state.slots[index]  # type: ignore[union-attr, assignment]
            samples = slot.samples
            if point in s.fresh:
                v = get(s)
                if _is_number(v) or isinstance(v, bool):
                    slot.latest = v
                    if not samples or samples[-1][1] != v:
                        samples.append((s.now, v))  # type: ignore[arg-type]
                        if len(samples) > MAX_WINDOW_ENTRIES:
                            samples.popleft()
            horizon = s.now - window
            while len(samples) > 1 and samples[1][0] <= horizon:
                samples.popleft()  # samples[0] stays: the value carried into the window
            if slot.latest is MISSING or not samples:
                return MISSING
            return _safe(lambda: slot.latest - samples[0][1])  # type: ignore[operator]

        return rate

    def _changed(self, node: _Node) -> _Fn:
        point = node.args[0].value
        get = _name(point)
        index = self.slot(_Changed, 0.0)

        def changed(s: Scope) -> Result:
            slot: _Changed = s.state.slots[index]  # type: ignore[union-attr, assignment]
            if point in s.fresh:
                v = get(s)
                if v is not MISSING:
                    slot.previous, slot.latest = slot.latest, v
            if slot.latest is MISSING:
                return MISSING
            return slot.previous is not MISSING and slot.previous != slot.latest

        return changed

    def _count(self, node: _Node) -> _Fn:
        inner = self.compile(node.args[0], 0)
        names = frozenset(n.value for n in _walk(node.args[0]) if n.kind == "name")
        window = node.window
        index = self.slot(_Count, window)

        def count(s: Scope) -> Result:
            slot: _Count = s.state.slots[index]  # type: ignore[union-attr, assignment]
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

    def _held(self, node: _Node, polarity: int) -> _Fn:
        inner = self.compile(node.args[0], polarity)
        window = node.window
        index = self.slot(_Held, window)

        def held(s: Scope) -> Result:
            slot: _Held = s.state.slots[index]  # type: ignore[union-attr, assignment]
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
    const_is_number = _is_number(const)

    def compare(s: Scope) -> Result:
        a = s.values.get(name, MISSING)
        if a is MISSING:
            return MISSING
        b = const
        if shift and s.deadband and const_is_number and _is_number(a):
            b = b - shift * s.deadband
        try:
            return cmp(a, b)
        except TypeError:
            return MISSING

    return compare


def _name(name: str) -> _Fn:
    if "." in name:
        device, point = name.split(".", 1)
        return lambda s: s.devices.get(device, _EMPTY).get(point, MISSING)
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


# ---------------------------------------------------------------------------------------- API


class Expression:
    """A parsed rule condition: its text, the points it names, and a compiled evaluator."""

    __slots__ = ("_fn", "_slots", "_windows", "names", "points", "text")

    def __init__(self, text: str, tree: _Node) -> None:
        self.text = text
        ordered = [n.value for n in _walk(tree) if n.kind == "name"]
        self.points: tuple[str, ...] = tuple(dict.fromkeys(ordered))  # in order of appearance
        self.names: frozenset[str] = frozenset(ordered)
        compiler = _Compiler()
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


def truth(value: Result) -> bool | None:
    """A rule's verdict: True, False, or None when it is unknown (MISSING)."""
    return None if value is MISSING else bool(value)


def parse_expression(text: str) -> Expression:
    """Parse a rule's `when:` text.

    Raises:
        ExpressionError: the text is not in the language, too long (> 4 kB) or nested too deep.
    """
    if not isinstance(text, str):
        raise ExpressionError("an expression is a text")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    tree = _Parser(text).parse()
    if _height(tree) > MAX_HEIGHT:
        raise ExpressionError(f"expression too complex (more than {MAX_HEIGHT} levels)")
    return Expression(text, tree)
