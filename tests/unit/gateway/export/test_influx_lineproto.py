"""Line protocol: the exporter's cached `LineBuilder` writes exactly what a plain, character-by-
character reading of InfluxDB's escaping rules gives, for any names and values (hypothesis).

The reference here is written from the rules, not from the code: measurement names escape
backslash, comma and space; tag keys, tag values and field keys also the equals sign; string field
values are quoted with backslash and double quote escaped; numbers are floats (`repr`), non-finite
ones skipped; booleans `true`/`false`; one line per device and timestamp, a point's later value
in its first place; only good readings, and no line without a field.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.export.lineproto import LineBuilder, line, reading_lines
from ground.model import Quality, Reading
from tests.support import examples

SPECIAL = st.sampled_from([",", " ", "=", '"', "\\", "\\ ", "\\,", "é", "温", "\t"])
NAMES = st.lists(st.one_of(SPECIAL, st.text(min_size=1, max_size=3)), min_size=1, max_size=4).map(
    "".join
)
VALUES = st.one_of(
    st.floats(),  # with nan and ±inf: skipped
    st.integers(min_value=-(2**60), max_value=2**60),
    st.booleans(),
    st.text(max_size=6),
    st.none(),
)
TIMES = st.sampled_from([1_790_000_000.0, 1_790_000_000.123, 1_790_000_001.5])


KEY = "\\,= "
"""What a tag key, tag value or field key escapes."""
MEASUREMENT = "\\, "
"""What a measurement name escapes."""


def escaped(text: str, special: str) -> str:
    return "".join("\\" + ch if ch in special else ch for ch in text)


def reference_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return '"' + escaped(value, '\\"') + '"'
    return None


def reference_lines(
    site: str, measurements: dict[str, str], batch: list[Reading]
) -> list[tuple[str, float]]:
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    for r in batch:
        if r.quality == Quality.GOOD and r.value is not None:
            groups.setdefault((r.device, r.ts), {})[r.point] = r.value
    out = []
    for (device, ts), fields in groups.items():
        parts = []
        for point, value in fields.items():
            text = reference_value(value)
            if text is not None:
                parts.append(escaped(point, KEY) + "=" + text)
        if not parts:
            continue
        tags = sorted([("device", device), ("site", site)])
        tag_text = "".join(f",{escaped(k, KEY)}={escaped(v, KEY)}" for k, v in tags if v)
        head = escaped(measurements.get(device, "device"), MEASUREMENT)
        out.append((f"{head}{tag_text} {','.join(parts)} {round(ts * 1000)}", ts))
    return out


@st.composite
def readings(draw: st.DrawFn, devices: list[str], points: list[str]) -> Reading:
    return Reading(
        draw(st.sampled_from(devices)),
        draw(st.sampled_from(points)),
        draw(VALUES),
        draw(st.sampled_from([Quality.GOOD, Quality.GOOD, Quality.BAD, Quality.STALE])),
        draw(TIMES),
    )


@st.composite
def polls(draw: st.DrawFn, devices: list[str], points: list[str]) -> list[Reading]:
    """What a driver delivers: one device, one time, mostly good numbers (the fast path)."""
    device, ts = draw(st.sampled_from(devices)), draw(TIMES)
    chosen = draw(st.lists(st.sampled_from(points), min_size=1, max_size=8))
    numbers = st.one_of(st.floats(), st.booleans(), st.integers(-(2**53), 2**53))
    return [Reading(device, p, draw(numbers), Quality.GOOD, ts) for p in chosen]


@st.composite
def sites(draw: st.DrawFn) -> tuple[str, dict[str, str], list[list[Reading]]]:
    site = draw(st.one_of(NAMES, st.just("")))
    devices = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    points = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    measurements = {d: draw(NAMES) for d in devices if draw(st.booleans())}
    batch = st.one_of(
        polls(devices, points), st.lists(readings(devices, points), min_size=0, max_size=12)
    )
    return site, measurements, draw(st.lists(batch, min_size=1, max_size=6))


@settings(max_examples=examples(400), deadline=None)
@given(sites())
def test_cached_builder_writes_what_the_escaping_rules_say(
    case: tuple[str, dict[str, str], list[list[Reading]]],
) -> None:
    site, measurements, batches = case
    builder = LineBuilder(site, measurements)  # one builder for every batch: the caches fill up
    for batch in batches:
        expected = reference_lines(site, measurements, batch)
        assert builder.lines(batch) == expected
        assert reading_lines(site, measurements, batch) == expected


@given(NAMES, NAMES, NAMES, VALUES)
def test_line_escapes_measurement_tags_and_fields(
    measurement: str, tag: str, key: str, value: Any
) -> None:
    text = line(measurement, {"t": tag}, {key: value}, 1.5)
    field = reference_value(value)
    if field is None:
        assert text is None
    else:
        assert text == (
            f"{escaped(measurement, MEASUREMENT)},t={escaped(tag, KEY)} "
            f"{escaped(key, KEY)}={field} 1500"
        )


def test_a_point_twice_in_one_poll_keeps_its_first_place_and_later_value() -> None:
    t = 1_790_000_000.0
    batch = [
        Reading("pump-1", "a", 1.0, Quality.GOOD, t),
        Reading("pump-1", "b", True, Quality.GOOD, t),
        Reading("pump-1", "a", 2, Quality.GOOD, t),
    ]
    expected = [("booster_pump,device=pump-1,site=s a=2.0,b=true 1790000000000", t)]
    assert LineBuilder("s", {"pump-1": "booster_pump"}).lines(batch) == expected
    nan_later = [*batch[:2], Reading("pump-1", "a", math.nan, Quality.GOOD, t)]
    assert LineBuilder("s", {}).lines(nan_later) == [
        ("device,device=pump-1,site=s b=true 1790000000000", t)
    ]
