"""Cost of the nightly baseload evaluation (`gateway.baseload_alarm`) over four weeks of minutes.

    python -m bench.baseload [--meters 1,4] [--repeat 5] [--days 29]

Writes `--days` days of one `active_power` reading a minute per meter (the night judged and the 28
before it, whole days) through the history store's own write path — committed hour by hour and
compacted as the live writer does, the store's clock following the readings — then times what the
component's worker thread does once a night: `gateway.baseload.evaluate` for every meter (29
queries of one night's minutes each). The first run is cold (a fresh connection, the page cache of
the file as the writes left it); then the best of `--repeat`. Meanwhile the event loop runs a
1 ms ticker: its worst lateness is what the evaluation, in its thread, costs the alarm path; the
same ticker with nothing else running, as long, gives the floor (`idle`) in the same run; each
is the median and the max over the runs of each run's worst lag.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from config.models import BaseloadRise
from gateway.baseload import Verdict, evaluate
from gateway.storage.history import HOUR, HistoryStore
from ground.model import Quality, Reading

ZONE = ZoneInfo("Asia/Shanghai")
NIGHT = date(2026, 11, 29)
"""The night judged; its 28 reference nights are the days before it."""


def store_history(folder: Path, readings: Iterable[Reading]) -> None:
    """Readings (oldest first) through the history store's write path as if polled live: its
    clock follows them, one commit per hour of readings, the hours before compacted."""
    now = [0.0]
    store = HistoryStore(folder, wall=lambda: now[0], deadband=lambda _d, _p: 1.0)
    try:
        for hour, group in itertools.groupby(readings, key=lambda r: int(r.ts // HOUR)):
            now[0] = hour * HOUR
            store.add(list(group))
            now[0] = (hour + 1) * HOUR + 1.0  # the hour is over: its minutes are done
            store.write_pending()
            store.compact()
    finally:
        store.close()


def minute_readings(
    meters: list[str], first: date, days: int, kw: Callable[[str, float], float]
) -> Iterator[Reading]:
    """One `active_power` reading per meter and minute, at the minute's 30th second."""
    start = datetime.combine(first, datetime.min.time(), ZONE).timestamp()
    for minute in range(days * 1440):
        ts = start + minute * 60 + 30.0
        for meter in meters:
            yield Reading(meter, "active_power", kw(meter, ts), Quality.GOOD, ts)


def night_kw(_meter: str, ts: float) -> float:
    """4 kW at night, 4.5 kW at weekend nights, 40 kW by day; 5.5 kW on the night judged."""
    local = datetime.fromtimestamp(ts, ZONE)
    if local.hour >= 5:
        return 40.0
    if local.date() == NIGHT:
        return 5.5
    return 4.5 if local.weekday() >= 5 else 4.0


async def timed(store: HistoryStore, meters: list[str]) -> tuple[float, float, list[Verdict]]:
    """Seconds for every meter's evaluation in a worker thread, and the event loop's worst lag
    meanwhile."""
    rule = BaseloadRise()
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            t0 = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - t0 - 0.001)

    def work() -> list[Verdict]:
        return [evaluate(store, m, NIGHT, ZONE, rule) for m in meters]

    task = asyncio.create_task(ticker(), name="bench.baseload.ticker")
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    verdicts = await asyncio.to_thread(work)
    seconds = time.perf_counter() - t0
    done = True
    await task
    return seconds, worst, verdicts


async def idle_lag(seconds: float) -> float:
    """The ticker's worst lag over a span of `seconds` with nothing else running."""
    worst = 0.0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        t0 = loop.time()
        await asyncio.sleep(0.001)
        worst = max(worst, loop.time() - t0 - 0.001)
    return worst


def run(meters: int, repeat: int, days: int) -> list[Verdict]:
    names = [f"meter-{m}" for m in range(meters)]
    first = NIGHT - timedelta(days=days - 1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        store_history(folder, minute_readings(names, first, days, night_kw))
        built = time.perf_counter() - t0
        size = (folder / "history.sqlite3").stat().st_size
        store = HistoryStore(folder)
        try:
            cold, cold_lag, verdicts = asyncio.run(timed(store, names))
            runs = [asyncio.run(timed(store, names)) for _ in range(repeat)]
        finally:
            store.close()
    best = min(r[0] for r in runs) if runs else cold
    lags = [cold_lag, *(r[1] for r in runs)]
    floors = [asyncio.run(idle_lag(r[0])) for r in [(cold,), *runs]]
    v = verdicts[0]
    print(
        f"meters={meters} days={days} file={size / 2**20:.1f} MiB (built in {built:.1f} s) "
        f"first={cold * 1000:.0f} ms best={best * 1000:.0f} ms "
        f"per_meter={best * 1000 / meters:.0f} ms\n  event loop's worst lag per run: "
        f"median {statistics.median(lags) * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms; "
        f"idle, as long: median {statistics.median(floors) * 1000:.1f} ms, "
        f"max {max(floors) * 1000:.1f} ms "
        f"load={os.getloadavg()[0]:.2f}"
    )
    print(
        f"  {v.meter} {v.night}: {v.night_kw} kW against {v.reference_kw} kW "
        f"over {v.nights} nights: risen={v.risen}"
    )
    return verdicts


def main(argv: list[str] | None = None) -> list[Verdict]:
    """Run the bench; returns the verdicts of the last meter count (for the smoke test)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", default="1,4", help="meter counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--days", type=int, default=29, help="days of history, the night's included"
    )
    args = parser.parse_args(argv)
    verdicts: list[Verdict] = []
    for meters in (int(n) for n in args.meters.split(",")):
        verdicts = run(meters, args.repeat, args.days)
    return verdicts


if __name__ == "__main__":
    main()
