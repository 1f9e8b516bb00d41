"""Alarm messages: a rule's `Text` rendered over the device's values, never failing.

Messages are written by people in site files (`"Tank level low: {level:.0f}%"`); a value that is
missing, of another type than the format expects (`{zones:.0f}` on a string) or a template that is
broken must still give a readable message, never an exception in the alarm path. Only plain point
names are substituted: `{x.attr}` or `{x[0]}` render as `?` (the site loader refuses them anyway).

The spec `bits` decodes a bitmask as the numbers of its set bits, 1-based (`{zones:bits}` of 0b10100
is `3, 5`), each followed by its name in parentheses when `names` has one (`3 (B1 garage), 5`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from config.models import Text
from ground.model import Value

UNKNOWN = "?"
_FORMATTER = string.Formatter()


def render(
    template: str, values: Mapping[str, Value | None], names: Mapping[int, str] | None = None
) -> str:
    """Format `template` like `str.format_map(values)`, with `?` for anything it cannot show;
    `names` names the bits of `{x:bits}`."""
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError:  # unbalanced braces: show the text as written
        return template
    out: list[str] = []
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        value = values.get(field) if field.isidentifier() else None
        if value is None:
            out.append(UNKNOWN)
            continue
        if conversion == "r":
            value = repr(value)
        elif conversion in ("s", "a"):
            value = str(value) if conversion == "s" else ascii(value)
        if spec == "bits" and not conversion:
            out.append(bits(value, names or {}))
        else:
            out.append(_format(value, spec or ""))
    return "".join(out)


def bits(value: Value, names: Mapping[int, str]) -> str:
    """The set bits of an integer, 1-based and named where `names` says (`?` for none or not an int)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return UNKNOWN
    numbers = [n for n in range(1, value.bit_length() + 1) if value >> (n - 1) & 1]
    return ", ".join(f"{n} ({names[n]})" if names.get(n) else str(n) for n in numbers)


def _format(value: Value, spec: str) -> str:
    if "{" in spec:  # nested fields in a spec: not worth supporting in an alarm text
        spec = ""
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return str(value)


def pick(text: Text, locale: str) -> str:
    """The text in the site's locale (`zh-CN` -> zh, anything else -> en)."""
    return text.zh if locale.lower().startswith("zh") else text.en
