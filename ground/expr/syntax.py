"""The syntax of rule conditions: tokens, a Pratt parser and the tree it builds.

The grammar and the reasons for its refusals are in docs/design/expressions.md. Nothing outside
the grammar is accepted, and every refusal names what was refused and its column.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ground.expr.errors import MAX_HEIGHT, MAX_LENGTH, MAX_NESTING, ExpressionError

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
class Node:
    kind: str  # const name neg pos arith compare and or not call
    op: str = ""
    value: Any = None  # const value, or the point name
    args: tuple[Node, ...] = ()
    window: float = 0.0  # rate/count/held


def walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.args))


def _height(node: Node) -> int:
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

    def parse(self) -> Node:
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

    def expr(self, min_bp: int) -> Node:
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
                left = Node(tok.text, args=tuple(items))
            elif bp == 40:
                right = self.expr(bp)
                if self._binding(self.tok) == 40:
                    raise ExpressionError(
                        "chained comparisons are not supported: write 'a < b and b < c'",
                        self.tok.column,
                    )
                left = Node("compare", tok.text, args=(left, right))
            else:
                left = Node("arith", tok.text, args=(left, self.expr(bp)))
        self.depth -= 1
        return left

    def prefix(self) -> Node:
        tok = self.advance()
        if tok.kind == "number":
            return Node("const", value=_number(tok))
        if tok.kind == "string":
            return Node("const", value=_unquote(tok.text))
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
                return Node("neg" if tok.text == "-" else "pos", args=(self.expr(65),))
            raise ExpressionError(f"unexpected {_describe(tok)}", tok.column)
        if tok.kind == "ref":
            if self.tok.text == "(":
                raise ExpressionError(f"calling {tok.text!r} is not allowed", tok.column)
            return Node("name", value=tok.text)
        if tok.kind == "name":
            word = tok.text
            if word == "not":
                return Node("not", args=(self.expr(30),))
            if word in ("true", "True"):
                return Node("const", value=True)
            if word in ("false", "False"):
                return Node("const", value=False)
            if word in ("and", "or"):
                raise ExpressionError(f"unexpected {word!r}", tok.column)
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            return Node("name", value=word)
        raise ExpressionError("unexpected end of expression", tok.column)

    def call(self, fn: _Token) -> Node:
        if fn.text not in _HELPERS:
            raise ExpressionError(
                f"unknown function {fn.text!r} (allowed: {', '.join(_HELPERS)})", fn.column
            )
        self.advance()  # (
        self.depth += 1
        args: list[Node] = []
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


def _check_call(fn: _Token, args: list[Node], window: float | None) -> Node:
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
    return Node("call", name, args=tuple(args), window=window or 0.0)


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


def parse_tree(text: str) -> Node:
    """The tree of a rule's `when:` text.

    Raises:
        ExpressionError: the text is not in the language, too long or nested too deep.
    """
    if not isinstance(text, str):
        raise ExpressionError("an expression is a text")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    tree = _Parser(text).parse()
    if _height(tree) > MAX_HEIGHT:
        raise ExpressionError(f"expression too complex (more than {MAX_HEIGHT} levels)")
    return tree
