"""`fgw report shift SITE [--since 12h]` and `fgw report energy SITE --month YYYY-MM [--csv]` (§11).

Both read the site's SQLite files (safe while the gateway runs: WAL readers never block it).
Exit codes: 0 done; 2 bad input (a duration or month that does not parse).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from zoneinfo import ZoneInfo


def register(subparsers: Any) -> None:
    from gateway.commands.report import report_group

    group = report_group(subparsers)
    shift = group.add_parser("shift", help="shift handover (交接班): what the next shift must know")
    shift.add_argument("site", help="the site file")
    shift.add_argument("--since", default="12h", help="the shift's length, e.g. 8h, 12h (default)")
    shift.add_argument("--json", action="store_true", help="the report as one JSON object")
    shift.set_defaults(func=cmd_shift)

    energy = group.add_parser(
        "energy", help="energy (节能管理): kWh per meter and day, peak demand, night baseload"
    )
    energy.add_argument("site", help="the site file")
    energy.add_argument("--month", required=True, help="YYYY-MM, in the site's time zone")
    energy.add_argument(
        "--csv", action="store_true", help="CSV on stdout: meter,day,kwh,peak_kw,night_kw"
    )
    energy.add_argument("--json", action="store_true", help="the report as one JSON object")
    energy.set_defaults(func=cmd_energy)


def cmd_shift(args: argparse.Namespace) -> int:
    from gateway.cli import _load
    from gateway.reports.handover import render_text, shift_report
    from ground.durations import parse_duration

    try:
        span = parse_duration(args.since)
    except ValueError as exc:
        print(f"fgw report shift: --since: {exc}", file=sys.stderr)
        return 2
    site = _load(args.site)
    report = shift_report(site, span)
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        zone = ZoneInfo(site.file.site.timezone)
        sys.stdout.write(render_text(report, english=site.file.site.locale == "en", zone=zone))
    return 0


def cmd_energy(args: argparse.Namespace) -> int:
    from gateway.cli import _load
    from gateway.reports.energy import energy_report, parse_month, render_csv, render_text

    try:
        month = parse_month(args.month)
    except ValueError as exc:
        print(f"fgw report energy: --month: {exc}", file=sys.stderr)
        return 2
    site = _load(args.site)
    report = energy_report(site, month)
    if args.csv:
        sys.stdout.write(render_csv(report))
    elif args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(report))
    return 0
