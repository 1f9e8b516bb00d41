"""Facility Gateway beside ThingsBoard IoT Gateway on the same simulated building, same machine.

    python -m bench.peers [--quick | --tiny] [--scenarios polling,dead,converter,outage,ingest]
                          [--devices 100,1000] [--seconds 180] [--rounds 2] [--out DIR]
                          [--converter-transport tcp|rtu-over-tcp]
    python -m bench.peers --report DIR/results.json     # markdown tables of a run

The peer (`thingsboard-gateway` 3.8 from PyPI) is installed into its own venv under the bench's
work folder (`bench.peer_venv`) and configured from the same site file (`bench.peer_config`); its
platform connection goes to a private Mosquitto, where `bench.peer_uplink.Uplink` counts what both
deliver (the peer's `v1/gateway/telemetry`, our `P/readings/{device}` with `publish_readings` on so
that both send every poll upstream, and our `P/events`). The simulators (`fgw sim`, one Modbus TCP
server per bus) run in their own process. Gateways run one at a time; rounds alternate the order.

Scenarios:
- polling: N devices x 10 points at 1 s; CPU (% of one core) and RSS of the gateway's process
  tree over the window after the settling time; delivered polls per device per second; jitter of
  the polls' own timestamps.
- dead: one unit in the middle of a bus goes silent; each live neighbour's delivered poll rate.
- converter: units behind a simulated Modbus TCP converter (a transparent one with
  `--converter-transport rtu-over-tcp`) that accepts one connection and carries one request at a
  time on its line (`bench.peer_converter`); each unit's delivered poll rate with every unit live,
  then with the one in the middle silent: which gateway still reads every live unit.
- outage: the gateways' broker connection cut for `--outage` s (a relay refuses them; the counter
  stays on the broker); fire on every fire panel during the cut; what arrives afterwards.
- ingest: door messages at rising offered rates; the gateway's CPU, and how long after the last
  message its last delivery came (a gateway that falls behind shows a growing lag).

Every run's generated site file and peer config stay in `--out` (default .bench/peers/TIMESTAMP),
with results.json. Figures print beside the 1-minute load average: the machine may be shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt

from bench.peer_config import write_peer_config
from bench.peer_converter import converter_site, line_demand
from bench.peer_measure import jitter_ms, polls_in, rates, ratio, tree_cpu, tree_rss
from bench.peer_report import markdown
from bench.peer_uplink import MqttCut, Uplink
from bench.peer_venv import Peer, PeerUnavailable, ensure_peer, peer_env, work_folder
from bench.sites import UNITS_PER_BUS, estate_yaml
from bench.support import FGW, broker, free_port, load_average, median, simulators, stop
from config.site import Site, load_site

GATEWAYS = ("fgw", "peer")
LABEL = {"fgw": "Facility Gateway", "peer": "ThingsBoard GW"}
PREFIX = "fgw/bench"
SCENARIOS = ("polling", "dead", "converter", "outage", "ingest")


@dataclass(frozen=True)
class Plan:
    devices: tuple[int, ...]
    seconds: float
    settle: float
    rounds: int
    dead_devices: int
    outage: float
    after: float
    doors: int
    ingest_rates: tuple[int, ...]
    ingest_seconds: float
    tail: float = 1.5
    """Seconds after a window for what was polled in it and is still on its way."""
    dead_seconds: float | None = None
    """The dead-unit window (default: `seconds`)."""
    converter_seconds: float | None = None
    """The converter's window (default: the dead unit's)."""
    converter_live: int = 8
    """Live units behind the converter (one more is dead); they cost the run no time."""
    converter_baud: int = 115200
    """The converter's RS-485 line: fast enough for both gateways' polls of the live units."""
    converter_transport: Literal["tcp", "rtu-over-tcp"] = "tcp"
    """A Modbus TCP converter, or a transparent one (RTU frames over TCP)."""


PLANS = {
    "full": Plan(
        (100, 1000), 180, 20, 2, 40, 30, 30, 20, (250, 500, 1000, 2000, 4000), 10, dead_seconds=60
    ),
    "quick": Plan((100,), 20, 10, 1, 20, 10, 15, 10, (200, 1000), 4, converter_seconds=15),
    "tiny": Plan((4,), 1.5, 1, 1, 4, 2, 2, 2, (50,), 0.5, tail=0.5, converter_live=2),
}


# ---------------------------------------------------------------------------- parts


@contextlib.contextmanager
def gateway(
    name: str, site_path: Path, site: Site, platform_port: int, folder: Path, peer: Peer | None,
) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """One gateway process on `site`, its upstream on `platform_port`; stopped on the way out."""
    env, cwd = None, None
    if name == "fgw":
        command = [*FGW, "run", str(site_path), "--log-level", "warning"]
    else:
        assert peer is not None
        config = folder / "peer"
        for note in write_peer_config(site, config, platform_port):
            (folder / "peer-notes.txt").open("a").write(note + "\n")
        command = [str(peer.python.parent / "thingsboard-gateway")]
        env, cwd = peer_env(config), config
    log = (folder / f"{name}.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=cwd)
    try:
        yield process
    finally:
        stop(process, 20)
        log.close()


def site_pair(folder: Path, devices: int, broker_port: int, gateway_port: int) -> tuple[Path, Path]:
    """The same estate twice: for the simulators (on the broker) and for the gateways (on
    `gateway_port`, which may be a relay), publishing every poll."""
    buses = -(-devices // UNITS_PER_BUS)
    ports = [free_port() for _ in range(buses)]
    sim, gw = folder / "sim-site.yaml", folder / "site.yaml"
    sim.write_text(estate_yaml(devices, mqtt_port=broker_port, modbus_ports=ports))
    gw.write_text(estate_yaml(devices, mqtt_port=gateway_port, modbus_ports=ports,
                              publish_readings=True) + console_yaml())  # fmt: skip
    return sim, gw


def console_yaml() -> str:
    """The console stays on (as deployed), on a free port: 8080 may be taken on a shared machine."""
    return f"console: {{listen: '127.0.0.1:{free_port()}'}}\n"


def wait_first_polls(uplink: Uplink, devices: int, timeout: float) -> float | None:
    """Seconds until polls of every device arrived (None if not within `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with uplink.lock:
            seen = len(uplink.data.polls)
        if seen >= devices:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def points_of(site: Site) -> dict[str, int]:
    return {d: len(dev.points) for d, dev in site.devices.items()}


def inject(port: int, device: str, command: dict[str, Any]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-inject-{device}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(f"fgw-sim/bench/{device}/inject", json.dumps(command), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def run_folder(out: Path, scenario: str, name: str, tag: str) -> Path:
    folder = out / f"{scenario}-{tag}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tidy(folder: Path) -> None:
    """Keep the configs and logs, drop the gateway's state (history files grow with the run)."""
    shutil.rmtree(folder / "state", ignore_errors=True)


# ---------------------------------------------------------------------------- scenarios


def polling(name: str, devices: int, plan: Plan, out: Path, peer: Peer | None) -> dict[str, Any]:
    folder = run_folder(out, "polling", name, str(devices))
    with broker(folder) as port:
        sim_path, site_path = site_pair(folder, devices, port, port)
        site = load_site(site_path)
        points = points_of(site)
        with simulators(sim_path, [b.port for b in site.buses.values()]) as sim:  # type: ignore[misc]
            uplink = Uplink(port, PREFIX)
            try:
                with gateway(name, site_path, site, port, folder, peer) as process:
                    first = wait_first_polls(uplink, devices, plan.settle + 30)
                    time.sleep(plan.settle)
                    uplink.take()
                    sim0 = tree_cpu(sim.pid)
                    cpu0, t0, w0 = tree_cpu(process.pid), time.monotonic(), time.time()
                    rss = [tree_rss(process.pid)]
                    while (left := t0 + plan.seconds - time.monotonic()) > 0:
                        time.sleep(min(5.0, left))
                        rss.append(tree_rss(process.pid))
                    cpu1, t1, w1 = tree_cpu(process.pid), time.monotonic(), time.time()
                    sim1 = tree_cpu(sim.pid)
                    load = load_average()
                    time.sleep(plan.tail)
                    exited = process.poll()
            finally:
                data = uplink.take()
                uplink.close()
    tidy(folder)
    if exited is not None:
        raise RuntimeError(f"{name} exited with {exited}: see {folder}")
    window = t1 - t0
    polls = polls_in(data, w0, w1)
    per_device = rates(polls, points, window)
    values = sum(len(polls.get(d, [])) * n for d, n in points.items()) / window
    p50, p99, missed = jitter_ms(polls, 1.0)
    cpu = (cpu1 - cpu0) / window
    return {
        "gateway": name, "devices": devices, "points": sum(points.values()), "window_s": window,
        "cpu_pct": 100 * cpu, "rss_mb_start": rss[0], "rss_mb_end": rss[-1], "rss_mb_peak": max(rss),
        "values_per_s": values, "cpu_us_per_value": 1e6 * cpu / values if values else None,
        "device_rate_median": median(per_device), "device_rate_min": min(per_device),
        "jitter_p50_ms": p50, "jitter_p99_ms": p99, "missed_polls": missed,
        "first_polls_s": first, "sim_cpu_pct": 100 * (sim1 - sim0) / window, "load": load,
    }  # fmt: skip


def dead_unit(name: str, plan: Plan, out: Path, peer: Peer | None) -> dict[str, Any]:
    devices = plan.dead_devices
    folder = run_folder(out, "dead", name, str(devices))
    with broker(folder) as port:
        sim_path, site_path = site_pair(folder, devices, port, port)
        site = load_site(site_path)
        ids = list(site.devices)
        dead = ids[len(ids) // 2]
        with simulators(sim_path, [b.port for b in site.buses.values()]):  # type: ignore[misc]
            uplink = Uplink(port, PREFIX)
            try:
                with gateway(name, site_path, site, port, folder, peer) as process:
                    wait_first_polls(uplink, devices, plan.settle + 30)
                    time.sleep(plan.settle / 2)
                    inject(port, dead, {"fault": "offline"})
                    time.sleep(plan.settle / 2)
                    uplink.take()
                    t0, w0 = time.monotonic(), time.time()
                    time.sleep(plan.dead_seconds or plan.seconds)
                    t1, w1 = time.monotonic(), time.time()
                    load = load_average()
                    time.sleep(plan.tail)
                    exited = process.poll()
            finally:
                data = uplink.take()
                uplink.close()
    tidy(folder)
    if exited is not None:
        raise RuntimeError(f"{name} exited with {exited}: see {folder}")
    window = t1 - t0
    polls = polls_in(data, w0, w1)
    live = [d for d in ids if d != dead]
    neighbour = rates(polls, live, window)
    return {
        "gateway": name, "devices": devices, "dead": dead, "window_s": window,
        "neighbour_rate_median": median(neighbour), "neighbour_rate_min": min(neighbour),
        "neighbours_at_95pct": sum(r >= 0.95 for r in neighbour), "neighbours": len(live),
        "dead_rate": len(polls.get(dead, [])) / window, "load": load,
    }  # fmt: skip


def converter(name: str, plan: Plan, out: Path, peer: Peer | None) -> dict[str, Any]:
    """Units behind a converter that accepts one connection: each unit's delivered poll rate with
    every unit live, then with the one in the middle silent; and how much of the line each
    gateway's polls of the live units need."""
    live_count = plan.converter_live
    folder = run_folder(out, "converter", name, str(live_count + 1))
    window = plan.converter_seconds or plan.dead_seconds or plan.seconds
    with broker(folder) as port:
        text, dead = converter_site(live_count, mqtt_port=port, modbus_port=free_port(),
                                    baudrate=plan.converter_baud,
                                    transport=plan.converter_transport)  # fmt: skip
        sim_path, site_path = folder / "sim-site.yaml", folder / "site.yaml"
        sim_path.write_text(text)
        site_path.write_text(text + console_yaml())
        site = load_site(site_path)
        with simulators(sim_path, [b.port for b in site.buses.values()]):  # type: ignore[misc]
            uplink = Uplink(port, PREFIX)
            try:
                with gateway(name, site_path, site, port, folder, peer) as process:
                    first = wait_first_polls(uplink, len(site.devices), plan.settle + 30)
                    time.sleep(plan.settle / 2)
                    uplink.take()
                    a0 = time.time()
                    time.sleep(window / 3)
                    a1 = time.time()
                    inject(port, dead, {"fault": "offline"})
                    time.sleep(plan.settle / 2)
                    b0 = time.time()
                    time.sleep(window)
                    b1 = time.time()
                    load = load_average()
                    time.sleep(plan.tail)
                    exited = process.poll()
            finally:
                data = uplink.take()
                uplink.close()
    tidy(folder)
    if exited is not None:
        raise RuntimeError(f"{name} exited with {exited}: see {folder}")
    live = [d for d in site.devices if d != dead]
    polls = polls_in(data, b0, b1)
    before = rates(polls_in(data, a0, a1), site.devices, a1 - a0)
    after = dict(zip(live, rates(polls, live, b1 - b0), strict=True))
    demand = line_demand(site, live)
    return {
        "gateway": name, "units": len(site.devices), "dead": dead, "window_s": b1 - b0,
        "transport": plan.converter_transport, "baudrate": demand.baudrate,
        "all_live_rates": dict(zip(site.devices, before, strict=True)),
        "unit_rates": after,
        "live_rate_median": median(list(after.values())), "live_rate_min": min(after.values()),
        "live_at_95pct": sum(r >= 0.95 for r in after.values()), "live": len(live),
        "dead_rate": len(polls.get(dead, [])) / (b1 - b0), "first_polls_s": first,
        "line_s_per_s": demand.fgw_s if name == "fgw" else demand.peer_s,
        "requests_per_s": demand.fgw_requests if name == "fgw" else demand.peer_requests,
        "load": load,
    }  # fmt: skip


def outage(name: str, plan: Plan, out: Path, peer: Peer | None) -> dict[str, Any]:
    devices = plan.dead_devices
    folder = run_folder(out, "outage", name, str(devices))
    with broker(folder) as port:
        relay = MqttCut(free_port(), port)
        sim_path, site_path = site_pair(folder, devices, port, relay.port)
        site = load_site(site_path)
        panels = [d for d, dev in site.devices.items() if dev.spec.template == "fire_panel"]
        with simulators(sim_path, [b.port for b in site.buses.values()]):  # type: ignore[misc]
            uplink = Uplink(port, PREFIX, watch=("fire",))
            try:
                with gateway(name, site_path, site, relay.port, folder, peer) as process:
                    wait_first_polls(uplink, devices, plan.settle + 30)
                    time.sleep(plan.settle)
                    uplink.take()
                    w0 = time.time()
                    time.sleep(plan.after / 3)
                    cut = time.time()
                    relay.cut()
                    time.sleep(plan.outage / 2)
                    for panel in panels:
                        inject(port, panel, {"fault": "fire", "zone": 3})
                    fire = time.time()
                    time.sleep(plan.outage / 2)
                    restored = time.time()
                    relay.restore()
                    time.sleep(plan.after)
                    w1 = time.time()
                    load = load_average()
                    time.sleep(plan.tail)
                    exited = process.poll()
            finally:
                data = uplink.take()
                uplink.close()
                relay.close()
    tidy(folder)
    if exited is not None:
        raise RuntimeError(f"{name} exited with {exited}: see {folder}")
    during = polls_in(data, cut, restored)
    whole = polls_in(data, w0, w1)
    expected_during = devices * (restored - cut)
    delivered_during = sum(len(v) for v in during.values())
    if name == "fgw":
        got = {str(e["id"]).split(".")[0] for e in data.events
               if e.get("type") == "alarm" and str(e.get("id")).endswith(".fire_alarm")}  # fmt: skip
    else:
        got = {d for d, seen in data.truthy.items() if "fire" in seen and seen["fire"] >= fire - 2}
    return {
        "gateway": name, "devices": devices, "outage_s": restored - cut,
        "readings_expected_during": round(expected_during),
        "readings_delivered_during": delivered_during,
        "readings_delivered_window": sum(len(v) for v in whole.values()),
        "readings_expected_window": round(devices * (w1 - w0)),
        "fire_events": f"{len(got & set(panels))}/{len(panels)}",
        "load": load,
    }  # fmt: skip


def wait_quiet(uplink: Uplink, quiet: float, limit: float) -> float:
    """Wait until nothing was delivered for `quiet` s (at most `limit` s); returns the wait."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        with uplink.lock:
            last = max((a[-1] for a in uplink.data.arrivals.values() if a), default=0.0)
        if time.time() - last >= quiet:
            break
        time.sleep(0.2)
    return time.monotonic() - start


def doors_yaml(doors: int, port: int) -> str:
    lines = ["site: {id: bench, timezone: Asia/Shanghai}", "storage: {path: ./state}",
             f"mqtt: {{host: 127.0.0.1, port: {port}, publish_readings: true}}", "devices:"]  # fmt: skip
    lines += [f"  - {{id: door-{n}, template: access_door, mqtt: {{topic: doors/d{n}}}}}"
              for n in range(doors)]  # fmt: skip
    return "\n".join(lines) + "\n" + console_yaml()


def offer(port: int, doors: int, rate: int, seconds: float) -> tuple[int, float]:
    """Door messages at `rate`/s for `seconds` (state and event in turn); returns (sent, rate
    achieved by this publisher)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-doors-{rate}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    total = int(rate * seconds)
    start = time.monotonic()
    info = None
    for n in range(total):
        due = start + n / rate
        if (ahead := due - time.monotonic()) > 0:
            time.sleep(ahead)
        door = f"doors/d{(n // 2) % doors}"
        if n % 2:
            body = {"event": "granted", "card": "0012345678", "at": "2026-12-06T01:00:00Z"}
            info = client.publish(f"{door}/event", json.dumps(body), qos=0)
        else:
            info = client.publish(f"{door}/state", json.dumps({"open": n % 100 == 0}), qos=0)
    if info is not None:
        info.wait_for_publish(30)
    achieved = total / (time.monotonic() - start)
    client.disconnect()
    client.loop_stop()
    return total, achieved


def ingest(name: str, plan: Plan, out: Path, peer: Peer | None) -> list[dict[str, Any]]:
    folder = run_folder(out, "ingest", name, str(plan.doors))
    results = []
    with broker(folder) as port:
        site_path = folder / "site.yaml"
        site_path.write_text(doors_yaml(plan.doors, port))
        site = load_site(site_path)
        uplink = Uplink(port, PREFIX)
        try:
            with gateway(name, site_path, site, port, folder, peer) as process:
                time.sleep(plan.settle)
                for rate in plan.ingest_rates:
                    uplink.take()
                    cpu0, t0 = tree_cpu(process.pid), time.monotonic()
                    sent, achieved = offer(port, plan.doors, rate, plan.ingest_seconds)
                    sent_at = time.time()
                    cpu_send = tree_cpu(process.pid) - cpu0
                    send_s = time.monotonic() - t0
                    wait_quiet(uplink, 1.0, 30.0)
                    cpu = tree_cpu(process.pid) - cpu0
                    data = uplink.take()
                    last = max((a[-1] for a in data.arrivals.values() if a), default=sent_at)
                    delivered = data.values  # one value a message; a gateway may merge rows
                    results.append({
                        "gateway": name, "offered_per_s": rate, "published_per_s": achieved,
                        "sent": sent, "values_delivered": delivered,
                        "cpu_pct_while_sending": 100 * cpu_send / send_s,
                        "cpu_ms_per_message": 1000 * cpu / sent,
                        "lag_s": max(0.0, last - sent_at), "load": load_average(),
                    })  # fmt: skip
                    time.sleep(1.0)
                exited = process.poll()
        finally:
            uplink.close()
    tidy(folder)
    if exited is not None:
        raise RuntimeError(f"{name} exited with {exited}: see {folder}")
    return results


# ---------------------------------------------------------------------------- report


def show(title: str, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    print(f"\n## {title}", flush=True)
    for row in rows:
        cells = []
        for key in keys:
            value = row.get(key)
            if isinstance(value, dict):  # per unit: "unit rate, ..."
                value = "[" + ", ".join(f"{k} {v:.2f}" for k, v in value.items()) + "]"
            cells.append(f"{key} {value:,.3g}" if isinstance(value, float) else f"{key} {value}")
        print(f"  {LABEL[row['gateway']]:<16} " + ", ".join(cells), flush=True)


POLLING_KEYS = ("devices", "cpu_pct", "cpu_us_per_value", "rss_mb_end", "rss_mb_peak",
                "values_per_s", "device_rate_median", "device_rate_min", "jitter_p50_ms",
                "jitter_p99_ms", "missed_polls", "load")  # fmt: skip
DEAD_KEYS = ("devices", "neighbour_rate_median", "neighbour_rate_min", "neighbours_at_95pct",
             "neighbours", "dead_rate", "load")  # fmt: skip
CONVERTER_KEYS = ("units", "baudrate", "line_s_per_s", "live_rate_median", "live_rate_min",
                  "live_at_95pct", "live", "dead_rate", "load", "all_live_rates", "unit_rates")  # fmt: skip
OUTAGE_KEYS = ("outage_s", "readings_expected_during", "readings_delivered_during",
               "readings_expected_window", "readings_delivered_window", "fire_events", "load")  # fmt: skip
INGEST_KEYS = ("offered_per_s", "published_per_s", "values_delivered", "sent", "cpu_pct_while_sending",
               "cpu_ms_per_message", "lag_s", "load")  # fmt: skip


def ratios(rows: Sequence[dict[str, Any]]) -> None:
    """Peer / Facility Gateway per size, medians over rounds: the issue's goals as ratios."""
    for devices in sorted({r["devices"] for r in rows}):
        by = {g: [r for r in rows if r["gateway"] == g and r["devices"] == devices]
              for g in GATEWAYS}  # fmt: skip
        if not all(by.values()):
            continue
        cpu = {g: median([r["cpu_us_per_value"] or float("nan") for r in by[g]]) for g in GATEWAYS}
        rss = {g: median([r["rss_mb_peak"] for r in by[g]]) for g in GATEWAYS}
        print(f"  {devices} devices: CPU per value polled, peer/ours {ratio(cpu['peer'], cpu['fgw']):.2f} "
              f"(goal >= 3); peak RSS ours/peer {ratio(rss['fgw'], rss['peer']):.2f} (goal <= 1)",
              flush=True)  # fmt: skip


def meta(peer: Peer, plan: Plan) -> dict[str, Any]:
    """Date, machine and versions, kept with the figures."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), "?")  # fmt: skip
    memory = Path("/proc/meminfo").read_text().split()[1]
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": cpu, "cores": os.cpu_count(),
        "memory_gb": round(int(memory) / 2**20, 1), "python": platform.python_version(),
        "facility_gateway": commit, "thingsboard_gateway": peer.version,
        "peer_pymodbus": peer.pymodbus, "peer_paho": peer.paho, "plan": plan.__dict__,
    }  # fmt: skip


def alternate(rounds: int) -> Iterator[tuple[int, str]]:
    """(round, gateway): one after the other, the order flipped every round."""
    for n in range(rounds):
        for name in GATEWAYS if n % 2 == 0 else tuple(reversed(GATEWAYS)):
            yield n, name


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a few minutes: 100 devices, short runs")
    size.add_argument("--tiny", action="store_true", help="seconds: for the smoke test")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--devices", help="polling sizes, e.g. 100,1000")
    parser.add_argument("--seconds", type=float, help="measured window of polling and dead")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--converter-transport", choices=("tcp", "rtu-over-tcp"),
                        help="the converter scenario's framing (default tcp: a Modbus TCP "
                             "converter; rtu-over-tcp: a transparent one)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output folder (configs, logs, results.json)")
    parser.add_argument("--report", type=Path, help="print a results.json as markdown tables")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return
    plan = PLANS["tiny" if args.tiny else "quick" if args.quick else "full"]
    overrides: dict[str, Any] = {}
    if args.devices:
        overrides["devices"] = tuple(int(d) for d in args.devices.split(","))
    if args.seconds:
        overrides["seconds"] = args.seconds
    if args.rounds:
        overrides["rounds"] = args.rounds
    if args.converter_transport:
        overrides["converter_transport"] = args.converter_transport
    plan = Plan(**{**plan.__dict__, **overrides})
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    out = (args.out or work_folder() / "peers" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        peer = ensure_peer()
    except PeerUnavailable as exc:
        raise SystemExit(f"bench.peers: the peer is not available: {exc}") from exc
    print(f"# bench.peers — {time.strftime('%Y-%m-%d %H:%M')}, load {load_average()}; "
          f"thingsboard-gateway {peer.version} (pymodbus {peer.pymodbus}); output {out}",
          flush=True)  # fmt: skip
    results: dict[str, Any] = {"meta": meta(peer, plan), **{s: [] for s in scenarios}}
    steps: dict[str, Callable[[str, Path], list[dict[str, Any]]]] = {
        "polling": lambda g, f: [polling(g, n, plan, f, peer) for n in plan.devices],
        "dead": lambda g, f: [dead_unit(g, plan, f, peer)],
        "converter": lambda g, f: [converter(g, plan, f, peer)],
        "outage": lambda g, f: [outage(g, plan, f, peer)],
        "ingest": lambda g, f: ingest(g, plan, f, peer),
    }
    for scenario in scenarios:
        for r, name in alternate(plan.rounds):
            results[scenario] += steps[scenario](name, out / f"round-{r + 1}")
            (out / "results.json").write_text(json.dumps(results, indent=1))
    keys = {"polling": POLLING_KEYS, "dead": DEAD_KEYS, "converter": CONVERTER_KEYS,
            "outage": OUTAGE_KEYS, "ingest": INGEST_KEYS}  # fmt: skip
    for scenario in scenarios:
        show(scenario, results[scenario], keys[scenario])
    if results.get("polling"):
        print("\n## ratios (medians over rounds)")
        ratios(results["polling"])
    print(f"\nconfigs, logs and results.json in {out}; load at end {load_average()}", flush=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench.peers"
    main()
