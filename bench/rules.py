"""Readings per second through the rule engine and the alarm book, by number of rules.

    python -m bench.rules [--seconds 3]

The site is real (templates resolved by the site loader); the readings are what a poll of each
device gives, values drifting so that some rules cross thresholds. No I/O: this measures the pure
core the service runs on every reading. Ceiling printed beside it: a bare loop that only indexes
readings by point (the work any engine must do at least).
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from bench.sites import modbus_site_yaml
from gateway.config.site import load_site
from gateway.model import Quality, Reading
from rules.alarms import AlarmBook
from rules.engine import RuleEngine

WALL0 = 1_800_000_000.0


def _poll_values(template: str, rng: random.Random) -> dict[str, object]:
    """One poll's values per template: normal, with now and then a value past a threshold."""
    spike = rng.random() < 0.01
    if template == "booster_pump":
        return {"running": True, "fault": False, "dry_run_trip": False,
                "outlet_pressure": 1.0 if spike else 4.0 + rng.random(), "flow": 12.0,
                "motor_current": 20.0, "vibration": 8.0 if spike else 2.0, "run_hours": 1200.0,
                "starts": 10, "pressure_setpoint": 4.5}  # fmt: skip
    if template == "energy_meter":
        v = 190.0 if spike else 230.0
        return {"voltage_l1": v, "voltage_l2": 230.0, "voltage_l3": 231.0, "current_l1": 40.0,
                "current_l2": 41.0, "current_l3": 39.0, "active_power": 27.0,
                "power_factor": 0.93, "frequency": 50.0, "energy_import": 1000.0,
                "breaker_tripped": False}  # fmt: skip
    if template == "lift":
        return {"moving": True, "door_open": False, "in_service": True, "alarm_button": spike,
                "occupied": True, "floor": 3, "direction": 1, "fault_code": 0, "trips": 10,
                "door_cycles": 20}  # fmt: skip
    return {"fire": False, "fault": False, "supervisory": False, "mains_fail": False,
            "battery_low": False, "fire_pump_ready": True, "zones": 0,
            "sprinkler_pressure": 0.6}  # fmt: skip


def run(devices_per_site: int, copies: int, seconds: float) -> dict[str, float]:
    """Build `copies` × `devices_per_site` devices, feed polls for `seconds`, return figures."""
    rng = random.Random(1)
    tracemalloc.start()
    sites = [
        load_site(f"bench-{i}.yaml", modbus_site_yaml(devices_per_site, site_id=f"s{i}"))
        for i in range(copies)
    ]
    rules = [r for site in sites for r in site.rules()]
    # device ids repeat across copies: make them unique by site
    from dataclasses import replace

    rules = [replace(r, device=f"{i}:{r.device}") for i, s in enumerate(sites) for r in s.rules()]
    before = tracemalloc.get_traced_memory()[0]
    engine = RuleEngine(rules, {})
    book = AlarmBook(rules, locale="en")
    per_rule = (tracemalloc.get_traced_memory()[0] - before) / len(rules)
    tracemalloc.stop()
    devices = [
        (f"{i}:{d.id}", d.measurement) for i, s in enumerate(sites) for d in s.devices.values()
    ]
    readings = transitions = 0
    now = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        now += 1.0
        for device, template in devices:
            batch = [
                Reading(device, p, v, Quality.GOOD, WALL0 + now)  # type: ignore[arg-type]
                for p, v in _poll_values(template, rng).items()
            ]
            readings += len(batch)
            for change in engine.ingest(batch, now):
                transitions += len(book.apply(change))
        for quarter in range(4):
            for change in engine.tick(now + quarter / 4):
                transitions += len(book.apply(change))
    elapsed = time.perf_counter() - start

    # the ceiling: only index each reading by (device, point), as any engine must
    index: dict[tuple[str, str], object] = {}
    floor_readings = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds / 3:
        for device, template in devices:
            for p, v in _poll_values(template, rng).items():
                index[(device, p)] = Reading(device, p, v, Quality.GOOD, WALL0)  # type: ignore[arg-type]
                floor_readings += 1
    floor_elapsed = time.perf_counter() - start
    return {
        "rules": len(rules),
        "readings_per_s": readings / elapsed,
        "ceiling_per_s": floor_readings / floor_elapsed,
        "transitions": transitions,
        "bytes_per_rule": per_rule,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(f"{'rules':>7} {'readings/s':>12} {'index-only ceiling/s':>21} {'ratio':>6} "
          f"{'transitions':>11} {'bytes/rule':>10}")  # fmt: skip
    for per_site, copies in ((16, 1), (160, 1), (160, 10)):
        r = run(per_site, copies, args.seconds)
        print(
            f"{r['rules']:>7} {r['readings_per_s']:>12,.0f} {r['ceiling_per_s']:>21,.0f} "
            f"{r['readings_per_s'] / r['ceiling_per_s']:>6.2f} {r['transitions']:>11} "
            f"{r['bytes_per_rule']:>10,.0f}"
        )


if __name__ == "__main__":
    main()
