"""Pruning: rows past their window, then the oldest rows while the file is over its bound.

Over the bound, the oldest hours of samples go first (the last `MIN_RAW_KEPT` always stays), then
the oldest hours of minutes: a year of aggregates must not wipe out the samples of today.
"""

from __future__ import annotations

import sqlite3

from gateway.storage.history.layout import hour_of, used_bytes

MIN_RAW_KEPT = 3600.0
"""Stored samples younger than this are never pruned for space (aggregates go first)."""
_MAX_STEPS = 1000
"""Hours deleted for space per prune at most (the next prune goes on)."""


def prune_file(
    db: sqlite3.Connection,
    now: float,
    *,
    raw_window: float,
    aggregate_window: float,
    max_bytes: int,
) -> dict[str, int]:
    """Delete the chunks past their window, then the oldest while over `max_bytes`.

    Returns:
        How many sample rows (`raw`) and aggregate rows (`agg`), a point's hour each, were deleted.
    """
    deleted = {"raw": 0, "agg": 0}
    deleted["raw"] += db.execute(
        "DELETE FROM sample_chunk WHERE hour < ?", (hour_of(now - raw_window),)
    ).rowcount
    deleted["agg"] += db.execute(
        "DELETE FROM minute_chunk WHERE hour < ?", (hour_of(now - aggregate_window),)
    ).rowcount
    keep_raw = hour_of(now - min(raw_window, MIN_RAW_KEPT))
    for _ in range(_MAX_STEPS):
        if used_bytes(db) <= max_bytes:
            break
        oldest = db.execute(
            "SELECT min(hour) FROM sample_chunk WHERE hour < ?", (keep_raw,)
        ).fetchone()[0]
        if oldest is not None:
            deleted["raw"] += db.execute(
                "DELETE FROM sample_chunk WHERE hour = ?", (oldest,)
            ).rowcount
            continue
        oldest = db.execute("SELECT min(hour) FROM minute_chunk").fetchone()[0]
        if oldest is None:
            break
        deleted["agg"] += db.execute("DELETE FROM minute_chunk WHERE hour = ?", (oldest,)).rowcount
    return deleted
