"""Markdown tables from a `bench.peers` results.json: `python -m bench.peers --report FILE`.

Every run is one row (rounds are not merged: the spread is the noise), with the load average it
was taken at; the ratios line uses medians over rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.peer_measure import ratio
from bench.support import median

NAMES = {"fgw": "Facility Gateway", "peer": "ThingsBoard IoT Gateway"}


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _num(value: float | None, spec: str) -> str:
    """A figure, or a dash where there is none (no value delivered: no CPU per value)."""
    return "–" if value is None else format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def polling(rows: Sequence[dict[str, Any]]) -> list[str]:
    header = ["devices", "gateway", "CPU % of a core", "µs CPU per value delivered",
              "RSS MB start → end", "values/s delivered", "device rate median / min",
              "jitter p50 / p99 ms", "missed polls", "simulator CPU %", "load"]  # fmt: skip
    body = [[f"{r['devices']:,}", NAMES[r["gateway"]], f"{r['cpu_pct']:.1f}",
             _num(r["cpu_us_per_value"], ".0f"), f"{r['rss_mb_start']:.0f} → {r['rss_mb_end']:.0f}",
             f"{r['values_per_s']:,.0f}",
             f"{r['device_rate_median']:.2f} / {r['device_rate_min']:.2f}",
             f"{r['jitter_p50_ms']:.0f} / {r['jitter_p99_ms']:.0f}", f"{r['missed_polls']:,}",
             f"{r['sim_cpu_pct']:.0f}" if "sim_cpu_pct" in r else "–", r["load"]]
            for r in sorted(rows, key=lambda r: r["devices"])]  # fmt: skip
    return _table(header, body)


def ratios(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for devices in sorted({r["devices"] for r in rows}):
        by = {g: [r for r in rows if r["gateway"] == g and r["devices"] == devices] for g in NAMES}
        if not all(by.values()):
            continue
        cpu = {g: median([_nan(r["cpu_us_per_value"]) for r in by[g]]) for g in NAMES}
        rss = {g: median([r["rss_mb_peak"] for r in by[g]]) for g in NAMES}
        out.append(f"- {devices:,} devices: CPU per value polled, ThingsBoard / ours "
                   f"**{ratio(cpu['peer'], cpu['fgw']):.1f}×** (goal ≥ 3); peak RSS ours / "
                   f"ThingsBoard **{ratio(rss['fgw'], rss['peer']):.2f}** (goal ≤ 1)")  # fmt: skip
    return out


def dead(rows: Sequence[dict[str, Any]]) -> list[str]:
    header = ["gateway", "devices", "live neighbours' rate median / min",
              "neighbours at ≥ 95 %", "dead unit's rate", "load"]  # fmt: skip
    body = [[NAMES[r["gateway"]], str(r["devices"]),
             f"{r['neighbour_rate_median']:.2f} / {r['neighbour_rate_min']:.2f}",
             f"{r['neighbours_at_95pct']} of {r['neighbours']}", f"{r['dead_rate']:.2f}",
             r["load"]] for r in rows]  # fmt: skip
    return _table(header, body)


CONVERTERS = {"tcp": "Modbus TCP", "rtu-over-tcp": "transparent (RTU over TCP)"}


def converter(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A row per run, then each unit's delivered poll rate per run (runs in the order made)."""
    header = ["gateway", "converter", "units", "line time its polls of the live units need",
              "live units' rate median / min, one silent", "live units at ≥ 95 %",
              "silent unit's rate", "load"]  # fmt: skip
    body = [[NAMES[r["gateway"]], CONVERTERS[r.get("transport", "tcp")], str(r["units"]),
             f"{r['line_s_per_s']:.2f} s/s at {r['baudrate']:,} baud ({r['requests_per_s']:.0f} req/s)",
             f"{r['live_rate_median']:.2f} / {r['live_rate_min']:.2f}",
             f"{r['live_at_95pct']} of {r['live']}", f"{r['dead_rate']:.2f}", r["load"]]
            for r in rows]  # fmt: skip
    runs: dict[str, int] = {}
    names = []
    for r in rows:
        runs[r["gateway"]] = runs.get(r["gateway"], 0) + 1
        names.append(f"{NAMES[r['gateway']]} #{runs[r['gateway']]}")
    units = list(dict.fromkeys(u for r in rows for u in r["unit_rates"]))
    dead = list(dict.fromkeys(r["dead"] for r in rows))
    per_unit = [[unit, *(_before_after(r, unit) for r in rows)] for unit in units]
    per_unit += [[f"{unit} (silent)", *(_before_after(r, unit) for r in rows)] for unit in dead]
    return [*_table(header, body), "",
            *_table(["unit: polls/s, all live → one silent", *names], per_unit)]  # fmt: skip


def _before_after(row: dict[str, Any], unit: str) -> str:
    before = row.get("all_live_rates", {}).get(unit)
    after = row["dead_rate"] if unit == row["dead"] else row["unit_rates"].get(unit)
    return f"{_num(before, '.2f')} → {_num(after, '.2f')}"


def outage(rows: Sequence[dict[str, Any]]) -> list[str]:
    header = ["gateway", "outage s", "readings of the outage delivered", "readings of the window",
              "fire alarms raised during it, delivered", "load"]  # fmt: skip
    body = [[NAMES[r["gateway"]], f"{r['outage_s']:.0f}",
             f"{r['readings_delivered_during']} of {r['readings_expected_during']}",
             f"{r['readings_delivered_window']} of {r['readings_expected_window']}",
             r["fire_events"], r["load"]] for r in rows]  # fmt: skip
    return _table(header, body)


def ingest(rows: Sequence[dict[str, Any]]) -> list[str]:
    header = ["gateway", "offered msg/s", "sent at", "values delivered / sent",
              "CPU % while sending", "ms CPU per message", "lag after the last s", "load"]  # fmt: skip
    body = [[NAMES[r["gateway"]], f"{r['offered_per_s']:,}", f"{r['published_per_s']:,.0f}",
             f"{r['values_delivered']:,} / {r['sent']:,}", f"{r['cpu_pct_while_sending']:.1f}",
             f"{r['cpu_ms_per_message']:.2f}", f"{r['lag_s']:.2f}", r["load"]]
            for r in sorted(rows, key=lambda r: (r["gateway"], r["offered_per_s"]))]  # fmt: skip
    return _table(header, body)


def markdown(results: dict[str, Any]) -> str:
    sections = {"polling": polling, "dead": dead, "converter": converter, "outage": outage,
                "ingest": ingest}  # fmt: skip
    out = []
    meta = results.get("meta", {})
    if meta:
        out.append(f"{meta['date']}; {meta['cores']} × {meta['cpu']}, {meta['memory_gb']} GB; "
                   f"Python {meta['python']}; Facility Gateway {meta['facility_gateway']}; "
                   f"thingsboard-gateway {meta['thingsboard_gateway']} (pymodbus "
                   f"{meta['peer_pymodbus']}, paho {meta['peer_paho']})\n")  # fmt: skip
    for name, render in sections.items():
        if results.get(name):
            out += [f"### {name}", "", *render(results[name]), ""]
            if name == "polling":
                out += [*ratios(results[name]), ""]
    return "\n".join(out)
