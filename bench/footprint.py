"""CPU and memory of `fgw run` polling 10,000 Modbus points at 1 s, for 10 minutes.

    python -m bench.footprint [--devices 1000] [--seconds 600] [--settle 10]

1,000 simulated devices (the four Modbus templates in turn: 10,000 points) over five TCP buses
(five servers on five ports, like five plant rooms' Modbus gateways), served by `fgw sim` in its
own process; a private Mosquitto; and `fgw run` with `publish_readings: true` — each poll is also
published on `P/readings/{device}`, so the poll rate can be counted from outside (and the figure
includes that publishing, the heaviest option). Only the gateway process is measured, from /proc:
CPU time over the window as % of one core, resident memory every 10 s (start, end, peak), and the
time from starting `fgw run` to its first published poll. `--seconds 30` gives a short run.
"""

from __future__ import annotations

import argparse
import json
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
    profile: Path | None = None,
) -> None:  # fmt: skip
    buses = -(-devices // UNITS_PER_BUS)
    ports = [free_port() for _ in range(buses)]
    with broker(folder) as mqtt_port:
        path = folder / "site.yaml"
        path.write_text(
            estate_yaml(devices, mqtt_port=mqtt_port, modbus_ports=ports, publish_readings=publish)
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
                cpu0, t0 = cpu_seconds(gateway.pid), time.monotonic()
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
                cpu1, t1 = cpu_seconds(gateway.pid), time.monotonic()
                polls, values = counter.take()
                exited = gateway.poll()
                if profile is not None:
                    spy.wait(30)
            finally:
                counter.close()
                stop(gateway)
                log.close()
    if exited is not None:
        raise SystemExit(f"fgw run exited with {exited}: see {folder / 'run.log'}")
    window = t1 - t0
    first_text = f"{first:.2f} s" if first is not None else "none within the settling time"
    print(f"devices {devices} on {buses} buses, {points:,} points, poll 1 s; "
          f"window {window:.0f} s after {settle:.0f} s settling")  # fmt: skip
    print(f"  gateway CPU          : {100 * (cpu1 - cpu0) / window:.1f} % of one core  "
          f"(goal <= 20 %)")  # fmt: skip
    print(f"  gateway RSS          : {rss[0]:.1f} MB at start -> {rss[-1]:.1f} MB at end, "
          f"peak {max(rss):.1f} MB  (goal <= 100 MB, no growth)")  # fmt: skip
    if publish:
        print(f"  polls published      : {polls / window:,.1f}/s, {values / window:,.0f} values/s "
              f"(expected {devices}/s, {points:,}/s)")  # fmt: skip
        print(f"  start -> first poll  : {first_text}  (goal <= 1.5 s)")
    else:
        print("  readings not published (--no-publish): poll rate not counted")
    print(f"  load average at end  : {load_average()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000, help="10 points each")
    parser.add_argument("--seconds", type=float, default=600.0, help="measured window")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument(
        "--no-publish",
        action="store_true",
        help="without publish_readings (the default site's setting)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy raw profile of the window to FILE")
    args = parser.parse_args(argv)
    header("footprint")
    with tempfile.TemporaryDirectory(prefix="fgw-bench-footprint-") as tmp:
        run(args.devices, args.seconds, args.settle, Path(tmp), not args.no_publish, args.profile)


if __name__ == "__main__":
    main()
