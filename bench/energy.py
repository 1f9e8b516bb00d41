"""Time of the energy month (`fgw report energy`, `GET /api/v1/energy`) over minute aggregates.

    python -m bench.energy [--meters 4] [--repeat 5]

Builds a history file with every minute of 59 days (the month and the four weeks before it) for
`energy_import` and `active_power` of each meter — what a meter polled at 1 s leaves once its raw
readings have aged out — and times `energy_report` for the month, best of `--repeat`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from config.site import load_site
from gateway.reports.energy import energy_report
from gateway.storage.history import HistoryStore
from gateway.storage.series_codec import Minute, encode_minutes

SITE = """
site: {{id: bench, timezone: Asia/Shanghai}}
modbus: [{{id: b, transport: tcp, host: 127.0.0.1, port: 5020}}]
devices:
{devices}
"""


def build(folder: Path, meters: int, first: float, last: float) -> None:
    """Finished minutes in the store's compacted layout (one `minute_chunk` per point and hour)."""
    store = HistoryStore(folder)
    db = store._db  # the bench writes finished minutes directly, as compaction would have
    with db:
        for m in range(meters):
            for point in ("energy_import", "active_power"):
                sid = db.execute(
                    "INSERT INTO series (device, point) VALUES (?, ?)", (f"meter-{m}", point)
                ).lastrowid
                hours: dict[int, list[Minute]] = defaultdict(list)
                counter = 100_000.0
                for minute in range(int(first // 60 * 60), int(last), 60):
                    kw = 40.0 + 25.0 * ((minute // 3600) % 24 > 7)
                    counter += kw / 60.0
                    value = counter if point == "energy_import" else kw
                    hours[minute // 3600 * 3600].append(
                        (minute, value, value, value * 60, 60, value, minute + 59.0)
                    )
                db.executemany(
                    "INSERT INTO minute_chunk (hour, series, data) VALUES (?, ?, ?)",
                    [(h, sid, zlib.compress(encode_minutes(rows), 6)) for h, rows in hours.items()],
                )
    store.close()


def main(argv: list[str] | None = None) -> float:
    """Run the bench; returns meter-0's kWh in the month (1,360 kWh a day by construction)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    zone = ZoneInfo("Asia/Shanghai")
    first = datetime(2026, 10, 4, tzinfo=zone).timestamp()
    last = datetime(2026, 12, 1, tzinfo=zone).timestamp()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        devices = "\n".join(
            f"  - {{id: meter-{m}, template: energy_meter, modbus: {{bus: b, unit: {m + 1}}}}}"
            for m in range(args.meters)
        )
        site_path = folder / "site.yaml"
        site_path.write_text(SITE.format(devices=devices) + "storage: {path: ./state}\n")
        site = load_site(site_path)
        site.storage_dir.mkdir(parents=True, exist_ok=True)
        build(site.storage_dir, args.meters, first, last)
        store = HistoryStore.for_site(site)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = energy_report(site, (2026, 11), store, now=last + 30 * 86400)
            best = min(best, time.perf_counter() - t0)
        store.close()
        kwh = report["meters"][0]["kwh"]
        print(f"meters={args.meters} month=2026-11 best={best * 1000:.0f} ms kwh[0]={kwh:.1f}")
        return float(kwh)


if __name__ == "__main__":
    main()
