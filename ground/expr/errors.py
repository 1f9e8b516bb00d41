"""What the expression language refuses, and the limits it refuses beyond."""

from __future__ import annotations

from typing import Final

MAX_LENGTH: Final = 4096
MAX_NESTING: Final = 50
MAX_HEIGHT: Final = 200  # tree height: keeps evaluation far from Python's recursion limit
MAX_WINDOW_ENTRIES: Final = 20_000  # per rate()/count() call: memory bounded whatever the rate


class ExpressionError(ValueError):
    """A rule text that is not in the language; the message names the problem and its column."""

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(f"{message} at column {column}" if column is not None else message)
