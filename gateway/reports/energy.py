"""Energy (节能管理, PRODUCT §11): kWh per meter and day, peak demand, night baseload.

From the history store's query API (`HistoryStore.query`: raw readings in the raw window, exact
1-minute aggregates beyond it), per device of the `energy_meter` template:

- **kWh**: the sum of the increases of `energy_import` between consecutive samples, each given to
  the site-time day of its later sample. A decrease is a counter reset (meter replaced or cleared):
  that interval counts nothing, the counting goes on from the new value. Never negative. A gap
  (meter silent) counts what the counter moved over it, on the day it is seen again.
- **peak_kw**: the highest 1-minute mean of `active_power` (raw readings are grouped by minute).
- **night_kw**: the mean of `active_power` from 00:00 to 05:00 site time; the month's figure is set
  against the four weeks before the month (`night_baseline_kw`, `night_rise_pct`).

The pure part (`kwh_by_day`, `day_windows`, `summarise`) works on plain samples; tests feed it.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from config.site import Site
from gateway.baseload import NIGHT_HOURS
from gateway.reports.baseload_status import baseload_line, baseload_status

if TYPE_CHECKING:
    from gateway.components import History

BASELINE_DAYS = 28
CSV_HEADER = ["meter", "day", "kwh", "peak_kw", "night_kw"]

Sample = tuple[float, float]  # (epoch seconds, value)


def parse_month(text: str) -> tuple[int, int]:
    """`YYYY-MM` -> (year, month). Raises ValueError with a clear message."""
    try:
        parsed = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ValueError(f"expected YYYY-MM, got {text!r}") from None
    return parsed.year, parsed.month


def day_windows(year: int, month: int, zone: ZoneInfo) -> list[tuple[str, float, float]]:
    """Each day of the month in site time: (YYYY-MM-DD, start epoch, end epoch)."""
    out = []
    day = date(year, month, 1)
    while day.month == month:
        start = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        nxt = day + timedelta(days=1)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp()
        out.append((day.isoformat(), start, end))
        day = nxt
    return out


def kwh_by_day(
    samples: Sequence[Sample], days: Sequence[tuple[str, float, float]]
) -> dict[str, float]:
    """kWh per day from counter samples (oldest first); resets count nothing, never negative."""
    totals = {name: 0.0 for name, _, _ in days}
    previous: float | None = None
    for ts, value in samples:
        if not math.isfinite(value):
            continue
        if previous is not None and value >= previous:
            name = _day_of(ts, days)
            if name is not None:
                totals[name] += value - previous
        previous = value
    return totals


def _day_of(ts: float, days: Sequence[tuple[str, float, float]]) -> str | None:
    i = bisect.bisect_right([start for _, start, _ in days], ts) - 1
    return days[i][0] if 0 <= i < len(days) and ts < days[i][2] else None


def mean_in(samples: Iterable[Sample], windows: Iterable[tuple[float, float]]) -> float | None:
    """The mean of the samples inside any of the (sorted, disjoint) windows."""
    spans = sorted(windows)
    starts = [a for a, _ in spans]
    values = []
    for ts, v in samples:
        i = bisect.bisect_right(starts, ts) - 1
        if i >= 0 and ts < spans[i][1]:
            values.append(v)
    return sum(values) / len(values) if values else None


def night_windows(days: Sequence[tuple[str, float, float]]) -> list[tuple[float, float]]:
    lo, hi = NIGHT_HOURS
    return [(start + lo * 3600, start + hi * 3600) for _, start, _ in days]


def summarise(
    meter: str,
    energy: Sequence[Sample],
    power: Sequence[Sample],
    days: Sequence[tuple[str, float, float]],
    baseline_days: Sequence[tuple[str, float, float]],
) -> dict[str, Any]:
    """One meter's month: per day and in total (pure)."""
    kwh = kwh_by_day(energy, days)
    by_day: dict[str, list[Sample]] = {name: [] for name, _, _ in days}
    for ts, v in power:
        name = _day_of(ts, days)
        if name is not None:
            by_day[name].append((ts, v))
    rows = []
    for name, start, end in days:
        in_day = by_day[name]
        night = mean_in(in_day, night_windows([(name, start, end)]))
        rows.append(
            {
                "day": name,
                "kwh": round(kwh[name], 3),
                "peak_kw": round(max((v for _, v in in_day), default=0.0), 3) if in_day else None,
                "night_kw": None if night is None else round(night, 3),
            }
        )
    nights = [r["night_kw"] for r in rows if r["night_kw"] is not None]
    month_night = sum(nights) / len(nights) if nights else None
    baseline = mean_in(power, night_windows(baseline_days))
    rise = (
        round((month_night - baseline) / baseline * 100.0, 1)
        if month_night is not None and baseline
        else None
    )
    peaks = [r["peak_kw"] for r in rows if r["peak_kw"] is not None]
    return {
        "meter": meter,
        "days": rows,
        "kwh": round(sum(kwh.values()), 3),
        "peak_kw": max(peaks) if peaks else None,
        "night_kw": None if month_night is None else round(month_night, 3),
        "night_baseline_kw": None if baseline is None else round(baseline, 3),
        "night_rise_pct": rise,
    }


def _samples(rows: list[dict[str, Any]], kind: str) -> list[Sample]:
    """History rows to samples: raw readings as they are; aggregates as the minute's `last`
    (counters) or `mean` (power), at the minute's end."""
    out: list[Sample] = []
    for row in rows:
        if "value" in row:
            if row.get("quality", "good") == "good" and isinstance(row["value"], int | float):
                out.append((float(row["ts"]), float(row["value"])))
        elif row.get(kind) is not None:
            out.append((float(row["ts"]) + 59.0, float(row[kind])))
    return out


def _per_minute(samples: Sequence[Sample]) -> list[Sample]:
    """Raw power readings grouped into 1-minute means (aggregates are that already)."""
    buckets: dict[float, list[float]] = {}
    for ts, v in samples:
        buckets.setdefault(ts - ts % 60, []).append(v)
    return [(m + 59.0, sum(vs) / len(vs)) for m, vs in sorted(buckets.items())]


def _history(
    store: History, meter: str, point: str, start: float, end: float, cutoff: float, kind: str
) -> list[Sample]:
    """Minute aggregates before `cutoff`, raw readings after it (a reset inside a minute is seen).

    Raw power readings are grouped into 1-minute means, so peaks are comparable over the month.
    """
    samples: list[Sample] = []
    if start < cutoff:
        older = store.query(meter, point, start, min(end, cutoff), 200_000)
        samples += [s for s in _samples(older, kind) if s[0] < cutoff]
    if end > cutoff:
        recent = store.query(meter, point, max(start, cutoff), end, 400_000)
        raw = _samples(recent, kind)
        if recent and "value" in recent[0] and kind == "mean":
            raw = _per_minute(raw)
        samples += raw
    return samples


def energy_report(
    site: Site, month: tuple[int, int], history: History | None = None, now: float | None = None
) -> dict[str, Any]:
    """Every energy meter's month from the site's history (`history`: the gateway's open store;
    default: the site's, opened and closed here)."""
    from gateway.storage.history import HistoryStore

    zone = ZoneInfo(site.file.site.timezone)
    days = day_windows(*month, zone)
    first = days[0][1]
    baseline = [
        (f"b{i}", first - (BASELINE_DAYS - i) * 86400, first - (BASELINE_DAYS - i - 1) * 86400)
        for i in range(BASELINE_DAYS)
    ]
    store: History = history or HistoryStore.for_site(site)
    meters = [d.id for d in site.devices.values() if d.template and d.template.id == "energy_meter"]
    try:
        results = []
        end = days[-1][2]
        cutoff = (time.time() if now is None else now) - store.raw_window + 120.0
        for meter in meters:
            energy = _history(store, meter, "energy_import", first - 3600, end, cutoff, "last")
            power = _history(store, meter, "active_power", baseline[0][1], end, cutoff, "mean")
            results.append(summarise(meter, energy, power, days, baseline))
    finally:
        if history is None:
            store.close()
    watched = baseload_status(site)
    for result in results:
        result["baseload_rise"] = watched.get(result["meter"])  # the alarm's settings, last night
    return {
        "site": site.id,
        "month": f"{month[0]:04d}-{month[1]:02d}",
        "timezone": site.file.site.timezone,
        "meters": results,
    }


def render_csv(report: dict[str, Any]) -> str:
    """`meter,day,kwh,peak_kw,night_kw`: one row per meter and day, then one `total` per meter."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for m in report["meters"]:
        for row in m["days"]:
            cells = [row["kwh"], _blank(row["peak_kw"]), _blank(row["night_kw"])]
            writer.writerow([m["meter"], row["day"], *cells])
    for m in report["meters"]:
        writer.writerow(
            [m["meter"], "total", m["kwh"], _blank(m["peak_kw"]), _blank(m["night_kw"])]
        )
    return out.getvalue()


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def render_text(report: dict[str, Any]) -> str:
    lines = [f"能耗 / Energy — {report['site']} {report['month']} ({report['timezone']})"]
    for m in report["meters"]:
        rise = "" if m["night_rise_pct"] is None else f" ({m['night_rise_pct']:+.1f}% vs 4 weeks)"
        lines.append(
            f"\n{m['meter']}: {m['kwh']:.1f} kWh, peak {_dash(m['peak_kw'])} kW, "
            f"night baseload {_dash(m['night_kw'])} kW{rise}"
        )
        watch = m.get("baseload_rise")
        if watch is not None:
            lines.append(f"  {baseload_line(watch)}")
        for row in m["days"]:
            if row["kwh"] or row["peak_kw"] is not None:
                lines.append(
                    f"  {row['day']}  {row['kwh']:>10.1f} kWh  peak {_dash(row['peak_kw'])} kW  "
                    f"night {_dash(row['night_kw'])} kW"
                )
    if not report["meters"]:
        lines.append("no energy meters in this site")
    return "\n".join(lines) + "\n"


def _dash(value: float | None) -> Any:
    return "-" if value is None else value
