"""Alarm messages: a rule's `Text` rendered over the device's values, never failing.

Messages are written by people in site files (`"Tank level low: {level:.0f}%"`); a value that is
missing, of another type than the format expects (`{zones:.0f}` on a string) or a template that is
broken must still give a readable message, never an exception in the alarm path. Only plain point
names are substituted: `{x.attr}` or `{x[0]}` render as `?` (the site loader refuses them anyway).
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from gateway.config.models import Text
from gateway.model import Value

UNKNOWN = "?"
_FORMATTER = string.Formatter()


def render(template: str, values: Mapping[str, Value | None]) -> str:
    """Format `template` like `str.format_map(values)`, with `?` for anything it cannot show."""
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
        out.append(_format(value, spec or ""))
    return "".join(out)


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
