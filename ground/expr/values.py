"""The values an expression yields: a point's value, or `MISSING` when the point is not known."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeGuard

from ground.model import Value


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
EMPTY: Final[Mapping[str, Value]] = {}


def is_number(v: object) -> TypeGuard[int | float]:
    """An int or a float, not a bool: only numbers are shifted by the deadband."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def truth(value: Result) -> bool | None:
    """A rule's verdict: True, False, or None when it is unknown (MISSING)."""
    return None if value is MISSING else bool(value)
