"""Storage wear: how fast the gateway writes to its card, and how much room is left there.

A flash card (SD, eMMC) lives for a number of bytes written. `WearMeter` samples `write_bytes` of
`/proc/self/io` (what the process sent to the block layer: page-cache write-back and fsyncs
included) on the monotonic clock and gives the rate over the last `window` seconds, per second and
per day, with the free space of the storage folder. `/healthz` and `/metrics` report it; the
verdict is *degraded* when the storage is nearly full or the rate is far above the expected one.

Pure but for the two readers, both injectable: `read_written()` and `disk_usage(path)`.
"""

from __future__ import annotations

import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

WINDOW = 600.0
"""Seconds the write rate is averaged over."""
BYTES_PER_VALUE = 8.0
"""The design figure: bytes written per value polled, everything the process writes."""
BASE_RATE = 2048.0
"""Bytes per second expected on top of the values (journal, queues, logs) for a small site."""
FAR_ABOVE = 10.0
"""A rate this many times the expected one is reported."""
FREE_FRACTION = 0.05
"""Less free space than this fraction of the file system is *nearly full*..."""
FREE_BYTES = 256 * 1024 * 1024
"""...or less than this many bytes, whichever is larger."""


class Usage(NamedTuple):
    total: int
    free: int


def read_proc_written(path: str = "/proc/self/io") -> int | None:
    """`write_bytes` of this process, None where /proc does not tell it."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def disk_usage(path: Path) -> Usage | None:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return Usage(usage.total, usage.free)


class WearMeter:
    """The gateway's write rate and its storage's free space.

    Args:
        folder: the storage folder (whose file system's free space is reported).
        values_per_second: values the site polls a second (for the expected rate).
        read_written: bytes written so far by the process.
        usage: total and free bytes of the file system holding a path.
        window: seconds the rate is averaged over.
    """

    def __init__(
        self,
        folder: Path,
        values_per_second: float,
        *,
        read_written: Callable[[], int | None] = read_proc_written,
        usage: Callable[[Path], Usage | None] = disk_usage,
        window: float = WINDOW,
    ) -> None:
        self.folder = folder
        self.expected = BASE_RATE + BYTES_PER_VALUE * values_per_second
        self._read = read_written
        self._usage = usage
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float) -> None:
        """Record the bytes written so far at `now` (monotonic); keeps one window of samples."""
        written = self._read()
        if written is None:
            return
        samples = self._samples
        if samples and now - samples[-1][0] < 1.0:
            return  # at most one sample a second
        samples.append((now, written))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()

    def rate(self) -> float | None:
        """Bytes written per second over the window (since the first sample when shorter)."""
        samples = self._samples
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return None
        (t0, b0), (t1, b1) = samples[0], samples[-1]
        return max(0, b1 - b0) / (t1 - t0)

    def report(self, now: float) -> dict[str, Any]:
        """The `wear` check: rate per second and per day, written so far, free space, verdict."""
        self.sample(now)
        check: dict[str, Any] = {"status": "ok"}
        problems = []
        rate = self.rate()
        if self._samples:
            check["written_bytes"] = self._samples[-1][1]
        if rate is not None:
            check["write_bytes_per_second"] = round(rate, 1)
            check["write_bytes_per_day"] = round(rate * 86400)
            check["expected_bytes_per_second"] = round(self.expected, 1)
            span = self._samples[-1][0] - self._samples[0][0]
            if span >= min(self.window, 60.0) and rate > FAR_ABOVE * self.expected:
                problems.append(
                    f"writing {rate / 1024:.0f} KiB/s, over {FAR_ABOVE:.0f} times the expected "
                    f"{self.expected / 1024:.1f} KiB/s: the storage wears out early"
                )
        usage = self._usage(self.folder)
        if usage is not None:
            check["storage_free_bytes"] = usage.free
            check["storage_total_bytes"] = usage.total
            if usage.free < low_space(usage.total):
                problems.append(f"storage nearly full: {usage.free / 2**20:.0f} MiB free")
        if problems:
            check["status"] = "degraded"
            check["detail"] = "; ".join(problems)
        return check


def values_per_second(site: Any) -> float:
    """Values the site polls a second: each Modbus device's points over its poll interval."""
    total = 0.0
    for device in site.devices.values():
        if device.spec.modbus is not None and device.spec.poll > 0:
            total += len(device.points) / device.spec.poll
    return total


def low_space(total: int) -> float:
    """Free bytes under which a file system of `total` bytes is nearly full."""
    return max(FREE_FRACTION * total, min(FREE_BYTES, total / 4))
