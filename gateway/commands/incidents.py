"""`fgw drill SITE PLAYBOOK [--device ID]` and `fgw incidents list|show SITE …` (PRODUCT §11).

The commands work on the site's SQLite file directly, like `fgw tickets`: a drill opened here is
committed with `source = cli`, and a running gateway picks it up within a second, publishes it on
`P/events` (`drill: true`) and follows its steps (overdue announced, through the channels only
when `notify.drills` is true). `show` is the drill report: each step's response time.

Exit codes: 0 done; 2 bad input (unknown playbook, device or incident).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    drill = subparsers.add_parser(
        "drill", help="open a drill (演练) incident of a playbook: no alarm, no real page"
    )
    drill.add_argument("site", help="the site file")
    drill.add_argument(
        "playbook",
        help="lift_entrapment, fire, power_outage, water_outage, water_leak, or a site's",
    )
    drill.add_argument("--device", help="the device the drill is about (e.g. lift-1)")
    drill.add_argument("--by", default="cli", help="who runs the drill (recorded)")
    drill.add_argument("--json", action="store_true", help="print the incident as JSON")
    drill.set_defaults(func=cmd_drill)

    incidents = subparsers.add_parser("incidents", help="incidents and drills: list, show")
    sub = incidents.add_subparsers(dest="incidents_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="incidents, open ones first")
    listing.add_argument("site", help="the site file")
    listing.add_argument("--all", action="store_true", help="closed ones too")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="one incident: its steps with response times, its journal")
    show.add_argument("site", help="the site file")
    show.add_argument("id", help="the incident's number")
    show.add_argument("--json", action="store_true", help="the incident as JSON")
    show.set_defaults(func=cmd_show)


def _open(site_path: str) -> tuple[Any, Any]:
    from gateway.cli import _load
    from gateway.storage.incidents import IncidentStore

    site = _load(site_path)
    return site, IncidentStore(site.storage_dir, source="cli")


def _when(site: Any) -> Any:
    """Times for people: site time with its zone (`--json` keeps ISO 8601 UTC)."""
    from zoneinfo import ZoneInfo

    from gateway.timefmt import local_time

    zone = ZoneInfo(site.file.site.timezone)
    return lambda value: local_time(value, zone)


def cmd_drill(args: argparse.Namespace) -> int:
    import time

    from gateway.incident_context import context_for
    from rules.incidents import IncidentBook

    site, store = _open(args.site)
    try:
        if args.playbook not in site.playbooks:
            known = ", ".join(sorted(site.playbooks))
            print(f"fgw drill: no playbook {args.playbook!r} (playbooks: {known})", file=sys.stderr)
            return 2
        if args.device is not None and args.device not in site.devices:
            print(f"fgw drill: no device {args.device!r} in {args.site}", file=sys.stderr)
            return 2
        book = IncidentBook(site.playbooks, store.new_id)
        context = context_for(site, lambda _device: {}, args.playbook, args.device)
        event = book.drill(args.playbook, args.device, args.by, time.time(), context)
        store.commit([event])
        incident = event.incident.payload()
        if args.json:
            print(json.dumps(incident, ensure_ascii=False))
        else:
            when = _when(site)
            print(f"drill #{incident['id']} opened (演练 / DRILL): {_title(incident)}")
            for step in incident["steps"]:
                print(f"  {step['id']:<20} due {when(step['due']):<22} {_text(step)}")
        return 0
    finally:
        store.close()


def cmd_list(args: argparse.Namespace) -> int:
    site, store = _open(args.site)
    when = _when(site)
    try:
        incidents = store.incidents(state=None if args.all else "open")
        incidents.sort(key=lambda i: (i.state != "open", i.drill, -i.opened_at))
        for incident in incidents:
            data = incident.payload()
            if args.json:
                print(json.dumps(data, ensure_ascii=False))
                continue
            done = sum(1 for s in data["steps"] if s["done_at"])
            late = sum(1 for s in data["steps"] if s["overdue"])
            drill = " DRILL" if data["drill"] else ""
            print(
                f"#{data['id']:<5} {data['state']:<6}{drill} {when(data['opened_at'])}  "
                f"{done}/{len(data['steps'])} steps, {late} overdue  {_title(data)}"
            )
        if not incidents and not args.json:
            print("no incidents", file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_show(args: argparse.Namespace) -> int:
    site, store = _open(args.site)
    when = _when(site)
    try:
        raw = args.id.strip().lstrip("#")
        try:
            incident = store.get(int(raw)) if raw.isdigit() else None
        except KeyError:
            incident = None
        if incident is None:
            print(f"fgw incidents show: no incident {args.id!r}", file=sys.stderr)
            return 2
        data = incident.payload()
        if args.json:
            print(json.dumps(data, ensure_ascii=False))
            return 0
        print(f"#{data['id']} {_title(data)}{' (演练 / DRILL)' if data['drill'] else ''}")
        print(f"  state {data['state']}, opened {when(data['opened_at'])} by {data['opened_by']}")
        if data["closed_at"]:
            print(f"  closed {when(data['closed_at'])} by {data['closed_by']}: {data['cause']}")
        print("  step                 response   due                    by        note")
        for step in data["steps"]:
            response = _minutes(step["response_s"])
            late = " LATE" if step["overdue"] else ""
            print(
                f"  {step['id']:<20} {response:<10} {when(step['due']):<22} "
                f"{step['done_by'] or '-':<9} {step['note']}{late}"
            )
        return 0
    finally:
        store.close()


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _title(incident: dict[str, Any]) -> str:
    return f"{incident['title']['zh']} / {incident['title']['en']}"


def _text(step: dict[str, Any]) -> str:
    return f"{step['text']['zh']} / {step['text']['en']}"
