"""CPU and memory of `fgw run` polling N simulated Modbus devices at 1 s.

    python -m bench.footprint [--devices 50] [--seconds 60]

Starts a private Mosquitto, `fgw sim` (the simulators, in their own process) and `fgw run`, all on
loopback, lets the gateway settle, then samples the gateway process alone from /proc: CPU time used
over the window (as % of one core) and resident memory at the start and end of the window. Also
counts the readings the gateway saw, from its `P/readings/#` messages, to show it kept the poll rate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from bench.sites import modbus_site_yaml
from gateway.demo import free_port, start_broker

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fgw-bench-") as tmp:
        folder = Path(tmp)
        mqtt_port = free_port()
        broker = start_broker(folder, mqtt_port)
        text = modbus_site_yaml(args.devices, mqtt_port=mqtt_port, modbus_port=free_port())
        text = text.replace(f"port: {mqtt_port}}}", f"port: {mqtt_port}, publish_readings: true}}")
        site = folder / "site.yaml"
        site.write_text(text)
        fgw = [sys.executable, "-m", "gateway.cli"]
        logs = (folder / "sim.log").open("wb"), (folder / "run.log").open("wb")
        sim = subprocess.Popen([*fgw, "sim", str(site), "--seed", "1"], stderr=logs[0])
        time.sleep(2.0)
        run = subprocess.Popen([*fgw, "run", str(site), "--log-level", "warning"], stderr=logs[1])

        counts = {"messages": 0, "values": 0}

        def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
            counts["messages"] += 1
            try:
                counts["values"] += len(json.loads(message.payload))
            except (ValueError, TypeError):
                pass

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-footprint")
        client.on_message = on_message
        client.connect("127.0.0.1", mqtt_port)
        client.subscribe("fgw/bench/readings/#")
        client.loop_start()
        try:
            time.sleep(args.settle)
            cpu0, rss0, t0 = cpu_seconds(run.pid), rss_mb(run.pid), time.monotonic()
            counts["messages"] = counts["values"] = 0
            time.sleep(args.seconds)
            cpu1, rss1, t1 = cpu_seconds(run.pid), rss_mb(run.pid), time.monotonic()
            messages = counts["messages"]
        finally:
            client.loop_stop()
            for process in (run, sim):
                process.terminate()
                process.wait(15)
            broker.terminate()
            broker.wait(5)
        window = t1 - t0
        print(f"devices polled at 1 s : {args.devices}")
        print(f"window                : {window:.0f} s after {args.settle:.0f} s settling")
        print(f"gateway CPU           : {100 * (cpu1 - cpu0) / window:.1f} % of one core")
        print(f"gateway RSS           : {rss0:.1f} MB -> {rss1:.1f} MB")
        print(f"device polls seen     : {messages / window:.1f}/s (expected {args.devices}/s)")


if __name__ == "__main__":
    main()
