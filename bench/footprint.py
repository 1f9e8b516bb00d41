"""CPU and memory of `fgw run` polling 10,000 Modbus points at 1 s, for 10 minutes.

    python -m bench.footprint [--devices 1000] [--seconds 600] [--settle 10] [--readings both]
                              [--max-connections 4]

1,000 simulated devices (the four Modbus templates in turn: 10,000 points) over five TCP buses
(five servers on five ports, like five plant rooms' Modbus gateways, each bus's 200 devices sharing
`--max-connections` connections, default 4), served by `fgw sim` in its own process; a private
Mosquitto; and `fgw run`. Only the gateway process is measured, from /proc:
CPU time over the window as % of one core, resident memory every 10 s (start, end, peak).

Two configurations, one after the other (`--readings off|on|both`, default both):

- `off`, the headline: the default site (`publish_readings` off). The values polled are counted
  afterwards in the gateway's local history file (every poll is a row there, with its time), read
  by this process once the gateway has stopped — nothing is added to the gateway for the count.
- `on`: `publish_readings: true`, every poll also published on `P/readings/{device}` (the heaviest
  option), counted from MQTT as it arrives; this run also times `fgw run` to its first published
  poll.

`--seconds 30` gives a short run.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.sites import UNITS_PER_BUS, estate_yaml
from bench.support import (
    FGW,
    broker,
    cpu_seconds,
    free_port,
    header,
    load_average,
    rss_mb,
    simulators,
    stop,
)
from gateway.config.site import load_site


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


def run(
    devices: int, seconds: float, settle: float, folder: Path, publish: bool = True,
    profile: Path | None = None, max_connections: int = 4,
) -> None:  # fmt: skip
    buses = -(-devices // UNITS_PER_BUS)
    ports = [free_port() for _ in range(buses)]
    with broker(folder) as mqtt_port:
        path = folder / "site.yaml"
        path.write_text(
            estate_yaml(
                devices,
                mqtt_port=mqtt_port,
                modbus_ports=ports,
                publish_readings=publish,
                max_connections=max_connections,
            )
        )
        site = load_site(path)
        points = sum(len(d.points) for d in site.devices.values())
        with simulators(path, ports):
            counter = ReadingsCounter(mqtt_port, site.topic_prefix)
            log = (folder / "run.log").open("wb")
            started = time.monotonic()
            gateway = subprocess.Popen([*FGW, "run", str(path), "--log-level", "warning"],
                                       stderr=log, stdout=log)  # fmt: skip
            try:
                time.sleep(settle)
                first = None if counter.first is None else counter.first - started
                cpu0, t0, wall0 = cpu_seconds(gateway.pid), time.monotonic(), time.time()
                rss = [rss_mb(gateway.pid)]
                counter.take()
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
                polls, values = counter.take()
                exited = gateway.poll()
                if profile is not None:
                    spy.wait(30)
            finally:
                counter.close()
                stop(gateway)  # the history writes what it holds: the window's polls are all in
                log.close()
        stored = stored_polls(site.storage_dir / "history.sqlite3", wall0, wall1)
    if exited is not None:
        raise SystemExit(f"fgw run exited with {exited}: see {folder / 'run.log'}")
    window = t1 - t0
    first_text = f"{first:.2f} s" if first is not None else "none within the settling time"
    print(f"devices {devices} on {buses} buses, {points:,} points, poll 1 s; "
          f"window {window:.0f} s after {settle:.0f} s settling; "
          f"publish_readings {'on' if publish else 'off (the default)'}")  # fmt: skip
    print(f"  gateway CPU          : {100 * (cpu1 - cpu0) / window:.1f} % of one core  "
          f"(goal <= 20 %)")  # fmt: skip
    print(f"  gateway RSS          : {rss[0]:.1f} MB at start -> {rss[-1]:.1f} MB at end, "
          f"peak {max(rss):.1f} MB  (goal <= 100 MB, no growth)")  # fmt: skip
    print(f"  RSS every 10 s       : {' '.join(f'{m:.1f}' for m in rss)}")
    if stored is not None:
        print(f"  values stored        : {stored[1] / window:,.0f}/s in {stored[0] / window:,.0f} "
              f"rows/s (expected {points:,}/s; counted in the history file)")  # fmt: skip
    else:
        print("  values stored        : not counted (no history file)")
    if publish:
        print(f"  polls published      : {polls / window:,.1f}/s, {values / window:,.0f} values/s "
              f"(expected {devices}/s, {points:,}/s)")  # fmt: skip
        print(f"  start -> first poll  : {first_text}  (goal <= 1.5 s)")
    print(f"  load average at end  : {load_average()}")


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
    parser.add_argument(
        "--max-connections",
        type=int,
        default=4,
        help="connections per bus, shared by its 200 devices (a Modbus TCP gateway's limit)",
    )
    args = parser.parse_args(argv)
    readings = "off" if args.no_publish else args.readings
    header("footprint")
    for publish in {"off": [False], "on": [True], "both": [False, True]}[readings]:
        profile = args.profile
        if profile is not None and readings == "both":
            profile = profile.with_name(
                f"{profile.stem}-{'on' if publish else 'off'}{profile.suffix}"
            )
        with tempfile.TemporaryDirectory(prefix="fgw-bench-footprint-") as tmp:
            run(
                args.devices,
                args.seconds,
                args.settle,
                Path(tmp),
                publish,
                profile,
                args.max_connections,
            )


if __name__ == "__main__":
    main()
