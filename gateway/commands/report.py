"""`fgw report alarms SITE --since 7d [--csv]`: the alarm-load report (EEMUA 191) from the journal.

Reads the site's SQLite journal (safe while the gateway runs: WAL readers never block it) and
prints alarms per 10 minutes (average, peak), time in flood, the ten most frequent alarms, the
chattering ones and the standing ones (active for more than 24 h), as a table or as CSV.

`report` is a command group: other report kinds (e.g. `maintenance`) add their own subcommand to
the same group through `report_group(subparsers)`.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.commands import SITE_HELP

if TYPE_CHECKING:
    from rules.alarm_load import AlarmLoad


def report_group(subparsers: Any) -> Any:
    """The `report` group's own subparsers, created by whichever module asks first."""
    parser = subparsers.choices.get("report")
    if parser is None:
        parser = subparsers.add_parser("report", help="reports from the journal and tickets")
        group = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
        parser.set_defaults(_report_group=group)
        return group
    return parser.get_default("_report_group")


def register(subparsers: Any) -> None:
    p = report_group(subparsers).add_parser(
        "alarms", help="alarm load: per 10 min, floods, top 10, chattering, standing"
    )
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("--since", default="7d", help="how far back, e.g. 24h, 7d (default 7d)")
    p.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    p.set_defaults(func=cmd_report_alarms)


def cmd_report_alarms(args: argparse.Namespace) -> int:
    from gateway.cli import _load
    from gateway.storage.sqlite import AlarmStore
    from ground.durations import parse_duration
    from rules.alarm_load import Row, compute, epoch
    from rules.alarms import iso
    from rules.floods import ChatterSettings, FloodSettings

    try:
        span = parse_duration(args.since)
    except ValueError as exc:
        print(f"--since: {exc}", file=sys.stderr)
        return 2
    site = _load(args.site)
    if not (site.storage_dir / "gateway.sqlite3").exists():
        print(f"no journal yet at {site.storage_dir / 'gateway.sqlite3'}", file=sys.stderr)
        return 1
    until = time.time()
    since = until - span
    store = AlarmStore(site.storage_dir)
    try:
        since_iso = iso(since) or ""
        entries = store.journal_since(since_iso)
        announced = store.announced_before(since_iso)
        records = store.alarm_records()
    finally:
        store.close()
    rows = (
        Row(
            alarm_id=e.alarm_id,
            episode=e.episode,
            from_state=e.from_state,
            to_state=e.to_state,
            at=epoch(e.at),
            priority=str(e.event.get("priority") or ""),
            chattering=bool(e.event.get("chattering")),
        )
        for e in entries
    )
    options = site.file.alarms
    load = compute(
        rows,
        records,
        since=since,
        until=until,
        announced_before=announced,
        chatter=ChatterSettings(
            options.chattering.activations, options.chattering.window, options.chattering.quiet
        ),
        flood=FloodSettings(
            options.flood.alarms, options.flood.window, options.flood.end_threshold
        ),
    )
    if args.csv:
        write_csv(load, sys.stdout)
    else:
        zone = ZoneInfo(site.file.site.timezone)
        sys.stdout.write(format_table(load, site.id, args.since, options.flood.alarms, zone))
    return 0


def _hours(seconds: float) -> str:
    return f"{seconds / 3600.0:.1f} h" if seconds >= 3600 else f"{seconds / 60.0:.0f} min"


def format_table(
    load: AlarmLoad, site_id: str, since: str, flood_alarms: int, zone: ZoneInfo | None = None
) -> str:
    """The load for people, times in the site's zone (`zone`; UTC without) with the zone shown."""
    from gateway.timefmt import local_time

    def iso(moment: float | None) -> str:
        return local_time(moment, zone or ZoneInfo("UTC"))

    lines = [
        f"Alarm load of {site_id}, last {since}: {iso(load.since)} .. {iso(load.until)}",
        "",
        f"  alarms (activations)        {load.activations}",
        f"  per 10 min, average         {load.average_per_interval:.2f}",
        f"  per 10 min, peak            {load.peak_per_interval}"
        + (f"  at {iso(load.peak_at)}" if load.peak_at is not None else ""),
        f"  10-min intervals > {flood_alarms:<8} {load.intervals_over} of {load.intervals}",
        f"  floods                      {len(load.floods)}",
        f"  time in flood               {_hours(load.time_in_flood)}"
        f" ({load.percent_in_flood:.1f}%)",
    ]
    for flood in load.floods:
        lines.append(
            f"    {iso(flood.started)} .. {iso(flood.ended)}  {flood.alarms} alarms,"
            f" first out {flood.first_out}"
        )
    for title, items, unit in (
        ("Top 10 most frequent", load.top, "share"),
        ("Chattering", load.chattering, ""),
        ("Standing (active > 24 h)", load.standing, "for"),
    ):
        lines += ["", f"{title}:"]
        if not items:
            lines.append("  (none)")
            continue
        width = max(len(r.alarm_id) for r in items)
        for r in items:
            count = f"{r.count:>5}" if title != "Standing (active > 24 h)" else f"ep {r.count:<3}"
            lines.append(f"  {r.alarm_id:<{width}}  {r.priority:<8} {count}  {unit} {r.detail}")
    return "\n".join(lines) + "\n"


def write_csv(load: AlarmLoad, out: Any) -> None:
    """One CSV, one row per figure: `section,alarm,priority,count,value`."""
    from rules.alarms import iso

    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "alarm", "priority", "count", "value"])
    summary = [
        ("since", "", iso(load.since)),
        ("until", "", iso(load.until)),
        ("activations", load.activations, ""),
        ("average_per_10min", "", f"{load.average_per_interval:.3f}"),
        ("peak_per_10min", load.peak_per_interval, iso(load.peak_at) or ""),
        ("intervals_over_flood_threshold", load.intervals_over, load.intervals),
        ("floods", len(load.floods), ""),
        ("time_in_flood_s", "", f"{load.time_in_flood:.0f}"),
        ("percent_in_flood", "", f"{load.percent_in_flood:.2f}"),
    ]
    for name, count, value in summary:
        w.writerow(["summary", name, "", count, value])
    for flood in load.floods:
        w.writerow(
            ["flood", flood.first_out, "", flood.alarms, f"{iso(flood.started)}/{iso(flood.ended)}"]
        )
    for section, items in (
        ("top", load.top),
        ("chattering", load.chattering),
        ("standing", load.standing),
    ):
        for r in items:
            w.writerow([section, r.alarm_id, r.priority, r.count, r.detail])
    for start, count in load.buckets.items():
        w.writerow(["per_10min", "", "", count, iso(start)])
