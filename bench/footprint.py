"""CPU and memory of `fgw run` polling 10,000 Modbus points at 1 s, for 10 minutes.

    python -m bench.footprint [--devices 1000] [--seconds 600] [--settle 10] [--readings both]
                              [--max-connections 4] [--export none|sink|victoria]
                              [--compare DIR] [--repeat N]

1,000 simulated devices (the four Modbus templates in turn: 10,000 points) over five TCP buses
(five servers on five ports, like five plant rooms' Modbus gateways, each bus's 200 devices sharing
`--max-connections` connections, default 4), served by `fgw sim` in its own process; a private
Mosquitto; and `fgw run`. Only the gateway process is measured, from /proc: CPU time over the window
as % of one core, resident memory every 10 s (start, end, peak), and the bytes it wrote to storage
over the window (`write_bytes` of /proc/PID/io) per second, per value polled (the points times the
polls of the window) and per day.

Two configurations, one after the other (`--readings off|on|both`, default both):

- `off`, the headline: the default site (`publish_readings` off). The values polled are counted
  afterwards in the gateway's local history file (every poll is a row there, with its time), read
  by this process once the gateway has stopped — nothing is added to the gateway for the count.
- `on`: `publish_readings: true`, every poll also published on `P/readings/{device}` (the heaviest
  option), counted from MQTT as it arrives; this run also times `fgw run` to its first published
  poll.

`--export sink|victoria` adds an `influx:` section, so the exporter and its disk queue run too:
`sink` points it at `bench.influx_sink` in this process (answers every write, counts the lines and
their text, and afterwards tries the queue's codec on them: `bench.spool_levels`), `victoria` at
Debian's VictoriaMetrics on a free port (a real server, which takes CPU of its own). Bytes written
are then the history's and the queue's together; the runs without export give the history's alone.

`--seconds 30` gives a short run. `--tree DIR` runs the gateway from another source tree (e.g. an
export of an earlier commit) with this bench; `--compare DIR` runs each configuration with DIR's
gateway and this tree's in turn, `--repeat N` times (old, new, old, new…), to compare in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.influx_sink import InfluxSink
from bench.sites import UNITS_PER_BUS, estate_yaml
from bench.spool_levels import level_table
from bench.support import (
    FGW,
    broker,
    cancelled_write_bytes,
    cpu_seconds,
    free_port,
    header,
    load_average,
    rss_mb,
    simulators,
    stop_counting_writes,
    victoria_metrics,
    write_bytes,
)
from config.site import load_site
from gateway.storage.series_codec import Section, decode_minutes, decode_samples


class ReadingsCounter:
    """Counts `P/readings/#` messages (one per device poll) and when the first arrived."""

    def __init__(self, port: int, prefix: str) -> None:
        self.messages = 0
        self.values = 0
        self.first: float | None = None
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-fp-{port}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/readings/#")
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        with self.lock:
            if self.first is None:
                self.first = now
            self.messages += 1
            try:
                self.values += len(json.loads(message.payload)["values"])
            except (ValueError, TypeError, KeyError):
                pass

    def take(self) -> tuple[int, int]:
        with self.lock:
            counts = self.messages, self.values
            self.messages = self.values = 0
            return counts

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def export_target(kind: str, folder: Path) -> Iterator[tuple[str | None, InfluxSink | None]]:
    """The URL the exporter writes to (None: no export) and the sink when it is ours."""
    if kind == "sink":
        with InfluxSink() as sink:
            yield sink.url, sink
    elif kind == "victoria":
        with victoria_metrics(folder) as port:
            yield f"http://127.0.0.1:{port}", None
    else:
        yield None, None


def run(
    devices: int, seconds: float, settle: float, folder: Path, publish: bool = True,
    profile: Path | None = None, tree: Path | None = None, commit: float | None = None,
    max_connections: int = 4, export: str = "none",
) -> None:  # fmt: skip
    buses = -(-devices // UNITS_PER_BUS)
    ports = [free_port() for _ in range(buses)]
    with broker(folder) as mqtt_port, export_target(export, folder) as (influx_url, sink):
        path = folder / "site.yaml"
        path.write_text(
            estate_yaml(
                devices,
                mqtt_port=mqtt_port,
                modbus_ports=ports,
                publish_readings=publish,
                max_connections=max_connections,
            )
            + (f"history: {{commit_interval: {commit}s}}\n" if commit is not None else "")
            + (
                f"influx: {{url: '{influx_url}', org: bench, bucket: bench}}\n"
                if influx_url
                else ""
            )
        )
        site = load_site(path)
        points = sum(len(d.points) for d in site.devices.values())
        with simulators(path, ports):
            counter = ReadingsCounter(mqtt_port, site.topic_prefix)
            log = (folder / "run.log").open("wb")
            started = time.monotonic()
            env = dict(os.environ)
            if tree is not None:
                env["PYTHONPATH"] = str(tree)
            gateway = subprocess.Popen([*FGW, "run", str(path), "--log-level", "warning"],
                                       stderr=log, stdout=log, env=env, cwd=tree)  # fmt: skip
            try:
                time.sleep(settle)
                first = None if counter.first is None else counter.first - started
                cpu0, t0, wall0 = cpu_seconds(gateway.pid), time.monotonic(), time.time()
                written0 = write_bytes(gateway.pid)
                cancelled0 = cancelled_write_bytes(gateway.pid)
                rss = [rss_mb(gateway.pid)]
                counter.take()
                if sink is not None:
                    sink.take()
                if profile is not None:  # py-spy, sampling the gateway for the whole window
                    spy = subprocess.Popen(
                        ["py-spy", "record", "-p", str(gateway.pid), "-d", str(int(seconds)),
                         "-f", "raw", "-o", str(profile), "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                while (left := t0 + seconds - time.monotonic()) > 0:
                    time.sleep(min(10.0, left))
                    rss.append(rss_mb(gateway.pid))
                cpu1, t1, wall1 = cpu_seconds(gateway.pid), time.monotonic(), time.time()
                written1 = write_bytes(gateway.pid)
                cancelled1 = cancelled_write_bytes(gateway.pid)
                polls, values = counter.take()
                exported = sink.take() if sink is not None else None
                exited = gateway.poll()
                if profile is not None:
                    spy.wait(30)
            finally:
                counter.close()
                # the history writes what it holds: the window's polls are all in
                total = stop_counting_writes(gateway)
                log.close()
        stored = stored_polls(site.storage_dir / "history.sqlite3", wall0, wall1)
        compaction = compaction_cost(site.storage_dir)
    if exited is not None:
        raise SystemExit(f"fgw run exited with {exited}: see {folder / 'run.log'}")
    window = t1 - t0
    first_text = f"{first:.2f} s" if first is not None else "none within the settling time"
    print(f"devices {devices} on {buses} buses, {points:,} points, poll 1 s; "
          f"window {window:.0f} s after {settle:.0f} s settling; "
          f"publish_readings {'on' if publish else 'off (the default)'}; "
          f"export {'off' if export == 'none' else 'to ' + export}; "
          f"gateway from {tree or 'this tree'}")  # fmt: skip
    print(f"  gateway CPU          : {100 * (cpu1 - cpu0) / window:.1f} % of one core  "
          f"(goal <= 20 %)")  # fmt: skip
    print(f"  gateway RSS          : {rss[0]:.1f} MB at start -> {rss[-1]:.1f} MB at end, "
          f"peak {max(rss):.1f} MB  (goal <= 100 MB, no growth)")  # fmt: skip
    print(f"  RSS every 10 s       : {' '.join(f'{m:.1f}' for m in rss)}")
    rate = (written1 - written0) / window
    print(
        f"  bytes written        : {rate / 1024:,.1f} KiB/s, {rate / points:.2f} bytes per value "
        f"polled ({points:,} values/s), {rate * 86400 / 1e9:.2f} GB/day  (goal <= 8 B/value)"
    )
    cancelled = (cancelled1 - cancelled0) / window
    print(f"  ... cancelled        : {cancelled / points:.2f} bytes per value (dirty pages of files "
          f"truncated or deleted before write-back: counted above, never reached the disk)")  # fmt: skip
    if total is not None:
        print(f"  ... window to exit   : {(total - written0) / window / points:.2f} bytes per value "
              f"polled (the window and the stop's last commit and checkpoint, which copies the "
              f"WAL of the run into the file)")  # fmt: skip
    if stored is not None:
        print(f"  values stored        : {stored[1] / window:,.0f}/s in {stored[0] / window:,.0f} "
              f"rows/s (expected {points:,}/s; counted in the history file)")  # fmt: skip
    elif (kept := stored_samples(site.storage_dir / "history.sqlite3", wall0, wall1)) is not None:
        samples, polled, covered = kept
        rate = polled / covered if covered else float("nan")
        print(f"  values stored        : {samples / window:,.0f}/s, "
              f"{100 * samples / window / points:.1f} % of those polled; good numbers polled "
              f"{rate:,.0f}/s in the window's whole minutes")  # fmt: skip
    else:
        print("  values stored        : not counted (no history file)")
    if compaction is not None:
        print(f"  hourly compaction    : {compaction:.2f} bytes per value polled (an hour of the "
              f"run's blocks moved into hour chunks, measured in this process)")  # fmt: skip
    if publish:
        print(f"  polls published      : {polls / window:,.1f}/s, {values / window:,.0f} values/s "
              f"(expected {devices}/s, {points:,}/s)")  # fmt: skip
        print(f"  start -> first poll  : {first_text}  (goal <= 1.5 s)")
    if exported is not None:
        lines, text = exported
        print(f"  exported (sink)      : {lines / window:,.0f} lines/s, {text / window / 1024:,.1f} "
              f"KiB/s of line protocol, {text / window / points:.2f} bytes of text per value "
              f"polled")  # fmt: skip
    print(f"  load average at end  : {load_average()}")
    if sink is not None and exported is not None:
        lines_sampled = [line for text in sink.sample for line in text.split(b"\n") if line]
        per_spool = round(exported[0] / window)  # the lines of one flush_interval (1 s)
        for row in level_table(lines_sampled, per_spool):
            print(row)


def stored_polls(path: Path, start: float, end: float) -> tuple[int, int] | None:
    """Rows and values the gateway's history holds between `start` and `end` (wall clock).

    A file of the first layout (one row per reading) counts a row per value; None when there is
    no such file."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        polls, values = db.execute(
            "SELECT count(*), coalesce(sum(json_array_length(stream.points)), 0) "
            "FROM poll JOIN stream ON stream.id = poll.stream WHERE poll.ts BETWEEN ? AND ?",
            (start, end),
        ).fetchone()
    except sqlite3.Error:
        try:  # a gateway of the first layout: one row per reading
            (values,) = db.execute(
                "SELECT count(*) FROM raw WHERE ts BETWEEN ? AND ?", (start, end)
            ).fetchone()
            polls = values
        except sqlite3.Error:
            return None
    finally:
        db.close()
    return int(polls), int(values)


def stored_samples(path: Path, start: float, end: float) -> tuple[int, int, float] | None:
    """Samples stored between `start` and `end`; the values polled in the minutes wholly inside
    them (the minute aggregates count every polled number) and those minutes' seconds; in a
    history file of the deadband layout, None for another."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        blocks = db.execute("SELECT samples, minutes FROM block").fetchall()
        chunks = db.execute("SELECT data, NULL FROM sample_chunk").fetchall()
        chunks += db.execute("SELECT NULL, data FROM minute_chunk").fetchall()
        ids = [sid for (sid,) in db.execute("SELECT id FROM series")]
    except sqlite3.Error:
        return None
    finally:
        db.close()
    parts: list[tuple[bytes, bool]] = []
    for blob_s, blob_m in blocks:
        for blob, is_samples in ((blob_s, True), (blob_m, False)):
            if blob is not None:
                section = Section(blob)
                parts += [(section.records(sid), is_samples) for sid in ids]
    for blob_s, blob_m in chunks:
        parts.append((zlib.decompress(blob_s or blob_m), blob_s is not None))
    samples = polled = 0
    minutes: set[int] = set()
    for part, is_samples in parts:
        if is_samples:
            samples += sum(1 for s in decode_samples(part) if start <= s[0] <= end)
        else:
            for m in decode_minutes(part):
                if start <= m[0] and m[0] + 60 <= end:
                    polled += m[4]
                    minutes.add(m[0])
    return samples, polled, 60.0 * len(minutes)


def compaction_cost(folder: Path, hour: float = 3600.0) -> float | None:
    """Bytes written (/proc/self/io) per value polled to move an hour of blocks into hour chunks, as
    the writer does once an hour: the part of the write rate a short window misses. The run's
    blocks are repeated to fill an hour (in a copy of its file), so each chunk row carries an
    hour, as it does in service."""
    import shutil

    from gateway.storage.history import HistoryStore

    counted = stored_samples(folder / "history.sqlite3", 0.0, time.time() + 3600)
    if counted is None or not counted[1]:
        return None  # (the minutes of a stopped gateway are all written: all are whole)
    copy = folder / "compaction"
    copy.mkdir()
    src = sqlite3.connect(folder / "history.sqlite3")
    dst = sqlite3.connect(copy / "history.sqlite3")
    src.backup(dst)
    src.close()
    (t0, t1) = dst.execute("SELECT min(t0), max(t1) FROM block").fetchone()
    times = max(1, round(hour / max(1.0, t1 - t0)))
    rows = dst.execute("SELECT hour, t0, t1, samples, minutes FROM block").fetchall()
    for _ in range(times - 1):
        dst.executemany(
            "INSERT INTO block (hour, t0, t1, samples, minutes) VALUES (?, ?, ?, ?, ?)", rows
        )
    dst.commit()
    dst.close()
    later = time.time() + 2 * 3600
    store = HistoryStore(copy, wall=lambda: later)
    before = write_bytes(os.getpid())
    store.compact()
    store.close()  # and the checkpoint of what it wrote
    written = write_bytes(os.getpid()) - before
    shutil.rmtree(copy)
    return written / (counted[1] * times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000, help="10 points each")
    parser.add_argument("--seconds", type=float, default=600.0, help="measured window")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument(
        "--readings",
        choices=["off", "on", "both"],
        default="both",
        help="publish_readings: off (the default site's setting, the headline), on, or both in turn",
    )
    parser.add_argument("--no-publish", action="store_true", help="the same as --readings off")
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the window to FILE")
    parser.add_argument("--tree", type=Path, help="run the gateway from this source tree")
    parser.add_argument("--commit-interval", type=float, help="history.commit_interval, seconds")
    parser.add_argument(
        "--export",
        choices=["none", "sink", "victoria"],
        default="none",
        help="influx export off (the default site), to this bench's sink, or to VictoriaMetrics",
    )
    parser.add_argument(
        "--compare", type=Path, help="also run the gateway from this tree, alternately"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds (with --compare: pairs)")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4,
        help="connections per bus, shared by its 200 devices (a Modbus TCP gateway's limit)",
    )
    args = parser.parse_args(argv)
    readings = "off" if args.no_publish else args.readings
    header("footprint")
    trees = [args.compare, None] if args.compare is not None else [args.tree]
    for _ in range(args.repeat):
        for publish in {"off": [False], "on": [True], "both": [False, True]}[readings]:
            for tree in trees:
                profile = args.profile
                if profile is not None and readings == "both":
                    profile = profile.with_name(
                        f"{profile.stem}-{'on' if publish else 'off'}{profile.suffix}"
                    )
                with tempfile.TemporaryDirectory(prefix="fgw-bench-footprint-") as tmp:
                    run(args.devices, args.seconds, args.settle, Path(tmp), publish, profile,
                        tree, args.commit_interval, args.max_connections,
                        args.export)  # fmt: skip


if __name__ == "__main__":
    main()
