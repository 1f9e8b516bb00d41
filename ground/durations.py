"""Durations as people write them in a site file: `500ms`, `10s`, `5m`, `2h`, `15d`, `1mo`."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> float:
    """Return seconds for a duration string such as `1h30m`, `500ms` or `15d`.

    A bare number is taken as seconds. Months are not a fixed length and are refused here; calendar
    plans parse `mo` themselves.

    Raises:
        ValueError: the text is not a duration, or is negative.
    """
    if isinstance(text, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(text, int | float):
        if not text >= 0 or text == float("inf"):  # negative, NaN or infinite
            raise ValueError("a duration must be a finite number of seconds, not negative")
        return float(text)
    if not isinstance(text, str):  # e.g. null or a list in a site file: an error, not a crash
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 5m, 2h, 15d)")
    s = text.strip().replace(" ", "")
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s):
        raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 5m, 2h, 15d)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` in the units above, for messages and docs."""
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
