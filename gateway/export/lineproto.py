"""InfluxDB line protocol for the export: the reference escaping and a cached builder for readings.

Escaping (what InfluxDB's parser needs): measurement names escape `\\`, `,` and space; tag keys, tag
values and field keys escape `\\`, `,`, `=` and space; string field values are double-quoted with
`\\` and `"` escaped. Numbers are written as floats (`repr`, so they read back exactly), booleans
as `true`/`false`; a non-finite number has no line-protocol form and is skipped.

Why a builder as well as `line()`: the export turns every reading into text, and escaping the same
measurement, tags and field keys again for every line cost most of the exporter's time. The devices
of a site and their points do not change while it runs, so `LineBuilder` escapes each device's
`measurement,device=…,site=…` head and each point's `key=` once and joins cached pieces with the
value's text. `line()` stays the plain definition the builder must agree with (a hypothesis test
holds them equal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ground.model import Quality, Reading

CACHE_LIMIT = 100_000
"""Cached heads or keys before a cache starts over: a site's devices and points are far fewer, so
this only bounds memory should readings arrive for ever-new names."""


def escape_key(text: str) -> str:
    """A tag key, tag value or field key."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def field_value(value: Any) -> str | None:
    """A value as a line-protocol field: bool, float (numbers) or quoted string; None to skip."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        return repr(number) if math.isfinite(number) else None
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def tag_text(tags: Mapping[str, str]) -> str:
    """`,key=value` for every non-empty tag, sorted by key (InfluxDB's preferred order)."""
    return "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v)


def line(measurement: str, tags: dict[str, str], fields: dict[str, Any], ts: float) -> str | None:
    """One line of InfluxDB line protocol with a millisecond timestamp; None without any field."""
    encoded = [
        f"{escape_key(k)}={v}"
        for k, value in fields.items()
        if (v := field_value(value)) is not None
    ]
    if not encoded:
        return None
    return (
        f"{escape_measurement(measurement)}{tag_text(tags)} {','.join(encoded)} {round(ts * 1000)}"
    )


class LineBuilder:
    """Readings of one site as line protocol, the escaped pieces cached per device and point.

    Args:
        site: the site id (the `site` tag).
        measurements: device id -> measurement (its template); other devices go to `device`.
    """

    def __init__(self, site: str, measurements: Mapping[str, str]) -> None:
        self.site = site
        self.measurements = dict(measurements)
        self._heads: dict[str, str] = {}  # device -> `measurement,device=…,site=… ` (escaped)
        self._keys: dict[str, str] = {}  # point -> `key=` (escaped)

    def lines(self, batch: Sequence[Reading]) -> list[tuple[str, float]]:
        """Good readings grouped into one line per device and timestamp: `(line, ts)` pairs.

        Same text as `reading_lines`: a device's poll through `poll_line`, anything else the
        general path, which also fills the caches.
        """
        text = self.poll_line(batch)
        if text is None:
            return self._grouped(batch)
        return [(text, batch[0].ts)]

    def poll_line(self, batch: Sequence[Reading]) -> str | None:
        """The one line of a device's poll, or None when `batch` is not one (then `lines`).

        A poll: one device, one time, every reading good, numbers and booleans, each point once,
        every key cached. Why a separate method: the exporter appends the text straight to its
        memory, without the list and pair `lines` wraps it in — the fewer containers made per
        line, the less often the garbage collector runs.
        """
        if not batch:
            return None
        first = batch[0]
        device, ts = first.device, first.ts
        good, keys = Quality.GOOD, self._keys
        texts: list[str] = []
        points: set[str] = set()
        try:
            for r in batch:
                value = r.value
                kind = type(value)
                point = r.point
                if kind is float and value - value == 0.0:  # type: ignore[operator]  # finite
                    texts.append(f"{keys[point]}{value!r}")
                elif kind is bool:
                    texts.append(keys[point] + ("true" if value else "false"))
                elif kind is int:
                    texts.append(f"{keys[point]}{float(value)!r}")  # type: ignore[arg-type]
                else:
                    return None
                if r.quality is not good or r.device != device or r.ts != ts:
                    return None
                points.add(point)
            head = self._heads[device]
        except KeyError:  # a point or device not seen yet
            return None
        if len(points) != len(texts):
            return None  # a point twice: the later value, the first position
        return f"{head}{','.join(texts)} {round(ts * 1000)}"

    def _grouped(self, batch: Iterable[Reading]) -> list[tuple[str, float]]:
        """The general path: any mix of devices, times, qualities and value types."""
        good = Quality.GOOD
        grouped: dict[tuple[str, float], dict[str, str | None]] = {}
        for r in batch:
            value = r.value
            if value is None or r.quality != good:
                continue
            fields = grouped.get((r.device, r.ts))
            if fields is None:
                fields = grouped[(r.device, r.ts)] = {}
            fields[r.point] = field_value(value)  # a repeated point: the later value, first place
        out = []
        for (device, ts), fields in grouped.items():
            encoded = [self._key(p) + t for p, t in fields.items() if t is not None]
            if encoded:
                out.append((f"{self._head(device)}{','.join(encoded)} {round(ts * 1000)}", ts))
        return out

    def _key(self, point: str) -> str:
        key = self._keys.get(point)
        if key is None:
            if len(self._keys) >= CACHE_LIMIT:
                self._keys.clear()
            key = self._keys[point] = escape_key(point) + "="
        return key

    def _head(self, device: str) -> str:
        head = self._heads.get(device)
        if head is None:
            if len(self._heads) >= CACHE_LIMIT:
                self._heads.clear()
            measurement = self.measurements.get(device, "device")
            tags = {"site": self.site, "device": device}
            head = self._heads[device] = f"{escape_measurement(measurement)}{tag_text(tags)} "
        return head


def reading_lines(
    site: str, measurements: dict[str, str], batch: Iterable[Reading]
) -> list[tuple[str, float]]:
    """Good readings grouped into one line per device and timestamp: `(line, ts)` pairs.

    The plain definition, through `line()`; the exporter uses `LineBuilder`, which must agree.
    """
    grouped: dict[tuple[str, float], dict[str, Any]] = {}
    for r in batch:
        if r.quality == Quality.GOOD and r.value is not None:
            grouped.setdefault((r.device, r.ts), {})[r.point] = r.value
    out = []
    for (device, ts), fields in grouped.items():
        text = line(
            measurements.get(device, "device"), {"site": site, "device": device}, fields, ts
        )
        if text is not None:
            out.append((text, ts))
    return out
