"""Export to the time-series store: the gateway's exporter vs a bare batched influxdb-client writer.

    python -m bench.export [--polls 50000] [--repeat 3]

Debian's `victoria-metrics` (the InfluxDB v2 write API stand-in, TESTBED.md) on a free port. The
same device polls (the templates' points, one batch of ~10 readings per poll, as the drivers make
them) go out two ways, in turn:

- **gateway**: `InfluxExporter` — the component `fgw run` uses — in an event loop: `on_readings`
  builds line protocol (one line per poll), the lines are spooled (on the event loop, as in
  production while the queue is small) in chunks, compressed (`gateway/export/spoolcodec.py`),
  to its disk queue
  (append-only segment files, `gateway/storage/segqueue/`: one write per spool, no fsync, as in
  production), peeked in batches of `batch_size` (5,000; from the queue's in-memory copy),
  written with influxdb-client's synchronous v2 write API from a worker thread, and acknowledged
  off the queue. Timed from the first batch handed over to the last line acknowledged. After the
  last poll the bench calls `flush()`, so the end of the input does not wait out `flush_interval`
  (1 s) for the last partial batch — the bare writer has no such timer either.
- **bare**: influxdb-client's synchronous write API in a loop, the same readings formatted as line
  protocol strings (no escaping) in batches of the same size: no queue, no disk.

Same readings, same batch size, same VictoriaMetrics; the two alternate which goes first in each
repeat. Each side starts its timed part after a `gc.collect()`: the input (`--polls` × ~10 readings,
all alive at once, as no driver ever keeps them) leaves the garbage collector a debt — a full
collection over every one of those objects — that would otherwise fall on whichever side first
allocates enough containers to trigger it: the gateway, which ran first in two of three repeats,
paid it in the timed part (~150 ns per reading of its CPU), the bare loop almost never.
Readings/s counts fields (one per reading); medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.rules import poll_values
from bench.sites import modbus_site_yaml
from bench.support import header, median, victoria_metrics
from config.site import Site, load_site
from gateway.export.influx import InfluxExporter
from ground.model import Quality, Reading

DEVICES = 100
BATCH = 5000


def polls(site: Site, count: int) -> list[list[Reading]]:
    """`count` device polls over the site's devices, with distinct timestamps."""
    rng = random.Random(1)
    devices = list(site.devices.values())
    out = []
    for n in range(count):
        device = devices[n % len(devices)]
        ts = 1_800_000_000.0 + n / 1000  # every poll its own millisecond
        out.append(
            [
                Reading(device.id, p, v, Quality.GOOD, ts)  # type: ignore[arg-type]
                for p, v in poll_values(device.measurement, rng).items()
            ]
        )
    return out


async def gateway_run(site: Site, batches: list[list[Reading]]) -> float:
    exporter = InfluxExporter(site)
    lines = len(batches)
    gc.collect()  # see the module docstring
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(exporter.run(), name="bench.influx")
        for n, batch in enumerate(batches):
            exporter.on_readings(batch)
            if n % 100 == 99:
                await asyncio.sleep(0)  # the service's loop does other work between polls
        exporter.flush()  # no more input: the last partial batch need not wait for the timer
        while exporter.sent < lines:  # noqa: ASYNC110 - the exporter has no "sent" event
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        task.cancel()
    await exporter.close()
    if exporter.rejected:
        raise RuntimeError(f"the server refused {exporter.rejected} lines")
    return sum(len(b) for b in batches) / elapsed


def bare_run(url: str, batches: list[list[Reading]]) -> float:
    from influxdb_client import InfluxDBClient, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    client = InfluxDBClient(url=url, token="", org="bench", timeout=30_000)
    api = client.write_api(write_options=SYNCHRONOUS)
    gc.collect()  # see the module docstring
    start = time.perf_counter()
    for first in range(0, len(batches), BATCH):
        lines = []
        for batch in batches[first : first + BATCH]:
            r0 = batch[0]
            fields = ",".join(
                f"{r.point}={'true' if r.value else 'false'}"
                if isinstance(r.value, bool)
                else f"{r.point}={float(r.value)!r}"  # type: ignore[arg-type]
                for r in batch
            )
            lines.append(f"bare,site=bench,device={r0.device} {fields} {round(r0.ts * 1000)}")
        api.write(bucket="bench", org="bench", record="\n".join(lines),
                  write_precision=WritePrecision.MS)  # fmt: skip
    elapsed = time.perf_counter() - start
    client.close()
    return sum(len(b) for b in batches) / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=50_000, help="device polls (lines) per run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    header("export")
    with tempfile.TemporaryDirectory(prefix="fgw-bench-export-") as tmp:
        folder = Path(tmp)
        with victoria_metrics(folder) as port:
            url = f"http://127.0.0.1:{port}"
            gateway, bare = [], []
            for n in range(args.repeat):
                run_dir = folder / f"run{n}"
                run_dir.mkdir()
                path = run_dir / "site.yaml"
                path.write_text(
                    modbus_site_yaml(DEVICES)
                    + f"influx: {{url: '{url}', org: bench, bucket: bench, batch_size: {BATCH}}}\n"
                )
                site = load_site(path)
                batches = polls(site, args.polls)
                if n % 2:
                    bare.append(bare_run(url, batches))
                gateway.append(asyncio.run(gateway_run(site, batches)))
                if not n % 2:
                    bare.append(bare_run(url, batches))
    g, b = median(gateway), median(bare)
    print(f"{args.polls:,} polls of ~10 readings (one line each), batches of {BATCH:,} lines, "
          f"×{args.repeat}")  # fmt: skip
    print(f"  gateway exporter (disk queue) : {g:>10,.0f} readings/s")
    print(f"  bare influxdb-client writer   : {b:>10,.0f} readings/s")
    print(f"  ratio gateway/bare            : {g / b:.2f}   (goal >= 0.80)")


if __name__ == "__main__":
    main()
