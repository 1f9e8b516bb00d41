"""Log once: a storm of one message writes a few lines and a count, not a line per fault."""

from __future__ import annotations

import io
import json
import logging

from gateway.logs import JsonFormatter, RepeatLimit


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_storm_is_held_back_and_counted_and_critical_always_passes() -> None:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    limit = RepeatLimit(burst=3, window=60, clock=clock)
    handler.addFilter(limit)
    log = logging.getLogger("test.storm")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        for device in range(1000):
            log.warning("%s: no answer within %.1fs", f"meter-{device}", 0.5)
        log.warning("another message")
        log.critical("fire panel unreachable")
        clock.now = 61.0
        log.warning("%s: no answer within %.1fs", "meter-1", 0.5)
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    msgs = [line["msg"] for line in lines]
    assert msgs[:3] == [f"meter-{i}: no answer within 0.5s" for i in range(3)]
    assert msgs[3:5] == ["another message", "fire panel unreachable"]
    assert msgs[5] == "997 more like this in the last 60 s: %s: no answer within %.1fs"
    assert lines[5]["held_back"] == 997 and lines[5]["level"] == "warning"
    assert msgs[6] == "meter-1: no answer within 0.5s"  # a new window
    assert len(lines) == 7 and limit.held == 997
    assert len(out.getvalue()) < 2000  # a thousand faults, under 2 kB written
