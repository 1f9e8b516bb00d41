"""Structured logs on stderr: one JSON object per line for machines, or plain text for people.

A service that runs for months is read by log shippers (journald, Loki); a person commissioning it
reads a terminal. `fgw run` picks JSON when stderr is not a terminal.

Logs are written to a flash card too (by journald): `RepeatLimit` lets a message (its logger and
its unformatted text, whatever the arguments) through `burst` times a `window`, then counts what it
holds back and says so in one line when the window ends. A storm of one fault on a thousand devices
writes a few lines a minute, not a thousand. Critical messages always go through.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., **extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


BURST = 20
"""Times one message goes through in a window before it is held back."""
WINDOW = 60.0
"""Seconds of a window."""


class RepeatLimit(logging.Filter):
    """Lets each message through `burst` times per `window` seconds; then one summary line.

    Args:
        burst: times a message (logger, level, unformatted text) goes through in a window.
        window: seconds of a window (on `clock`).
        clock: monotonic seconds, injectable.
    """

    def __init__(
        self,
        burst: int = BURST,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._start = clock()
        self._seen: dict[tuple[str, int, str], int] = {}
        self.held = 0  # held back, ever

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL or getattr(record, "_summary", False):
            return True
        now = self._clock()
        if now - self._start >= self.window:
            self._summarise()
            self._start = now
        key = (record.name, record.levelno, str(record.msg))
        count = self._seen.get(key, 0) + 1
        self._seen[key] = count
        if count <= self.burst:
            return True
        self.held += 1
        return False

    def _summarise(self) -> None:
        seen, self._seen = self._seen, {}
        for (name, level, msg), count in seen.items():
            if count > self.burst:
                logging.getLogger(name).log(
                    level,
                    "%d more like this in the last %.0f s: %s",
                    count - self.burst,
                    self.window,
                    msg,
                    extra={"_summary": True, "held_back": count - self.burst},
                )


def setup_logging(level: str = "info", fmt: str = "auto") -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatLimit())
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL if level != "debug" else logging.INFO)
