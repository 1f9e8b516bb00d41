"""Readings per second through the rule engine and the alarm book, by number of rules.

    python -m bench.rules [--seconds 3] [--repeat 3] [--sizes 100,1000,10000]

The site is real (the built-in templates resolved by the site loader, many devices, copies of the
site for 10,000 rules); the readings arrive as the service feeds them: one batch per device poll
(10–12 readings), values drifting so that now and then a rule crosses its threshold (alarms are
raised and cleared), four timer ticks per simulated second, every condition change applied to the
alarm book. No I/O: this is the pure core the service runs on every poll. The devices are polled
in turn, as a poll schedule does: between two polls of a device every other device's state passes
through the CPU caches, as it does in the service. The start-up heap is frozen before the clock
starts (`gc.freeze`), as `fgw run` does.

Only the engine's work is timed: each batch is made fresh (as a driver makes it) outside the timed
calls. The same batches go through the ceiling in the same run, timed the same way: a loop that
only files each reading's value by (device, point) — the least any engine must do. Runs
alternate engine and ceiling `--repeat` times and the medians are printed. Memory per rule is
what the engine and the book allocate for the site's rules (tracemalloc), divided by their number.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from bench.sites import modbus_site_yaml
from bench.support import header
from config.site import Rule, load_site
from ground.model import Quality, Reading
from rules.alarms import AlarmBook
from rules.engine import RuleEngine

WALL0 = 1_800_000_000.0
_GOOD = Quality.GOOD
POLLS_PER_DEVICE = 50
"""Distinct polls made per device before the clock starts; the timed loop cycles through them."""


def poll_values(template: str, rng: random.Random) -> dict[str, object]:
    """One poll's values per template, as a real device gives them.

    Analog points (pressures, currents, voltages...) carry noise, so they change on every poll;
    states, counters and set-points repeat. Now and then (1 % of polls) a value goes past a
    threshold, so alarms are raised and cleared.
    """
    spike = rng.random() < 0.01
    u = rng.uniform
    if template == "booster_pump":
        return {"running": True, "fault": False, "dry_run_trip": False,
                "outlet_pressure": 1.0 if spike else u(4.0, 5.0), "flow": u(11.0, 13.0),
                "motor_current": u(19.0, 21.0), "vibration": 8.0 if spike else u(1.5, 2.5),
                "run_hours": 1200.0, "starts": 10, "pressure_setpoint": 4.5}  # fmt: skip
    if template == "energy_meter":
        v = 190.0 if spike else u(228.0, 232.0)
        return {"voltage_l1": v, "voltage_l2": u(228.0, 232.0), "voltage_l3": u(228.0, 232.0),
                "current_l1": u(39.0, 41.0), "current_l2": u(39.0, 41.0),
                "current_l3": u(39.0, 41.0), "active_power": u(26.0, 28.0),
                "power_factor": u(0.92, 0.94), "frequency": u(49.98, 50.02),
                "energy_import": 1000.0, "breaker_tripped": False}  # fmt: skip
    if template == "lift":
        return {"moving": True, "door_open": False, "in_service": True, "alarm_button": spike,
                "occupied": True, "floor": 3, "direction": 1, "fault_code": 0, "trips": 10,
                "door_cycles": 20}  # fmt: skip
    return {"fire": False, "fault": False, "supervisory": False, "mains_fail": False,
            "battery_low": False, "fire_pump_ready": True, "zones": 0,
            "sprinkler_pressure": u(0.55, 0.65)}  # fmt: skip


@dataclass
class Workload:
    """The rules of many devices and, per device, the values of its polls (made in advance)."""

    rules: list[Rule]
    devices: list[tuple[str, list[list[tuple[str, object]]]]]  # device, polls of (point, value)
    readings_per_cycle: int

    def batches(self, cycle: int) -> Iterator[list[Reading]]:
        """Every device's poll for this cycle, each a fresh batch of `Reading`s (as a driver
        makes them: new objects, hot in the cache, not a replay of old ones)."""
        n = cycle % POLLS_PER_DEVICE
        ts = WALL0 + cycle
        for device, polls in self.devices:
            yield [Reading(device, p, v, _GOOD, ts) for p, v in polls[n]]  # type: ignore[arg-type]


def workload(rules_wanted: int, seed: int = 1) -> Workload:
    """About `rules_wanted` template rules (whole devices, comm_loss included)."""
    per_device = 6.25  # the four templates average 6.25 rules a device, comm_loss included
    devices = max(1, round(rules_wanted / per_device))
    per_site = min(devices, 160)
    copies = max(1, round(devices / per_site))
    sites = [
        load_site(f"bench-{i}.yaml", modbus_site_yaml(per_site, site_id=f"s{i}"))
        for i in range(copies)
    ]
    # device ids repeat across copies: make them unique by site
    rules = [replace(r, device=f"{i}:{r.device}") for i, s in enumerate(sites) for r in s.rules()]
    rng = random.Random(seed)
    polls = [
        (
            f"{i}:{d.id}",
            [list(poll_values(d.measurement, rng).items()) for _ in range(POLLS_PER_DEVICE)],
        )
        for i, site in enumerate(sites)
        for d in site.devices.values()
    ]
    per_cycle = sum(len(p[0]) for _, p in polls)
    return Workload(rules, polls, per_cycle)


def memory_per_rule(rules: Sequence[Rule]) -> float:
    """Bytes the engine and the alarm book allocate per rule (tracemalloc)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = RuleEngine(rules, {})
    book = AlarmBook(rules, locale="en")
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del engine, book
    return used / len(rules)


def engine_rate(load: Workload, seconds: float) -> tuple[float, int]:
    """Readings/s through a fresh engine + alarm book over `seconds` of engine time.

    Only the engine's and the book's calls are timed (around each batch: a clock read costs
    ~0.1 µs, against ~10 readings a batch); making the batches is the driver's work.
    """
    engine = RuleEngine(load.rules, {})
    book = AlarmBook(load.rules, locale="en")
    # as `fgw run` does once started: the start-up heap (here also the workload) is frozen, so a
    # full collection does not walk it in the middle of the work
    gc.collect()
    gc.freeze()
    ingest, tick, apply, clock = engine.ingest, engine.tick, book.apply, time.perf_counter
    readings = transitions = cycle = 0
    spent = 0.0
    try:
        while spent < seconds:
            now = float(cycle)
            for batch in load.batches(cycle):
                t0 = clock()
                for change in ingest(batch, now):
                    transitions += len(apply(change))
                spent += clock() - t0
            t0 = clock()
            for quarter in (0.0, 0.25, 0.5, 0.75):
                for change in tick(now + quarter):
                    transitions += len(apply(change))
            spent += clock() - t0
            readings += load.readings_per_cycle
            cycle += 1
    finally:
        gc.unfreeze()
    return readings / spent, transitions


def ceiling_rate(load: Workload, seconds: float) -> float:
    """Readings/s of a loop that only files each reading's value by (device, point), timed the
    same way on the same batches."""
    index: dict[tuple[str, str], object] = {}
    readings = cycle = 0
    spent = 0.0
    clock = time.perf_counter
    while spent < seconds:
        for batch in load.batches(cycle):
            t0 = clock()
            for r in batch:
                index[(r.device, r.point)] = r.value
            spent += clock() - t0
        readings += load.readings_per_cycle
        cycle += 1
    return readings / spent


def measure(rules_wanted: int, seconds: float, repeat: int) -> dict[str, float]:
    load = workload(rules_wanted)
    engine_runs, ceiling_runs, transitions = [], [], 0
    for _ in range(repeat):
        rate, transitions = engine_rate(load, seconds)
        engine_runs.append(rate)
        ceiling_runs.append(ceiling_rate(load, seconds / 2))
    return {
        "rules": len(load.rules),
        "readings_per_s": statistics.median(engine_runs),
        "ceiling_per_s": statistics.median(ceiling_runs),
        "transitions": transitions,
        "bytes_per_rule": memory_per_rule(load.rules),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per engine run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000", help="rule counts, comma-separated")
    args = parser.parse_args(argv)
    header("rules")
    print(f"{'rules':>7} {'readings/s':>12} {'index-only ceiling/s':>21} {'ratio':>6} "
          f"{'transitions':>11} {'bytes/rule':>10}")  # fmt: skip
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.seconds, args.repeat)
        print(
            f"{r['rules']:>7} {r['readings_per_s']:>12,.0f} {r['ceiling_per_s']:>21,.0f} "
            f"{r['readings_per_s'] / r['ceiling_per_s']:>6.2f} {r['transitions']:>11} "
            f"{r['bytes_per_rule']:>10,.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
