"""`fgw tickets list|show|transition SITE …` and `fgw report maintenance SITE --month YYYY-MM`.

The commands work on the site's SQLite file directly, so they answer whether or not the service is
running. A transition made here is committed with `source = cli`; a running gateway picks it up
within a second, publishes it on `P/events` and applies its side effects (alarms out of service
while the work is in progress, the plan moving on) — the same as a change made through the API.

Exit codes: 0 done; 1 the lifecycle refused the change; 2 bad input or an unknown ticket.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.commands import SITE_HELP


def register(subparsers: Any) -> None:
    tickets = subparsers.add_parser("tickets", help="maintenance tickets: list, show, transition")
    sub = tickets.add_subparsers(dest="tickets_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="tickets, most urgent first, then soonest due")
    listing.add_argument("site", metavar="SITE", help=SITE_HELP)
    listing.add_argument("--status", help="a status, or `active` for work not done yet")
    listing.add_argument("--device", help="only this device's tickets (its id)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="one ticket with its notes and timeline")
    show.add_argument("site", metavar="SITE", help=SITE_HELP)
    show.add_argument("id", help="the ticket's number, e.g. 7 or #7")
    show.add_argument("--json", action="store_true", help="the ticket and its timeline as JSON")
    show.set_defaults(func=cmd_show)

    move = sub.add_parser("transition", help="move a ticket along its lifecycle")
    move.add_argument("site", metavar="SITE", help=SITE_HELP)
    move.add_argument("id", help="the ticket's number, e.g. 7 or #7")
    move.add_argument(
        "to", help="assigned, in_progress, resolved, closed, cancelled, open (unassign)"
    )
    move.add_argument("--by", required=True, help="who makes the change (recorded)")
    move.add_argument("--note", default="", help="why (required to cancel)")
    move.add_argument("--assignee", help="for assigned (required) and in_progress")
    move.set_defaults(func=cmd_transition)

    from gateway.commands.report import report_group  # the `report` group, shared

    maintenance = report_group(subparsers).add_parser(
        "maintenance", help="the monthly maintenance report for the owners' committee"
    )
    maintenance.add_argument("site", metavar="SITE", help=SITE_HELP)
    maintenance.add_argument("--month", required=True, help="YYYY-MM, in the site's time zone")
    maintenance.add_argument("--csv", metavar="FILE", help="write one row per ticket as CSV")
    maintenance.add_argument("--html", metavar="FILE", help="write a printable HTML page")
    maintenance.set_defaults(func=cmd_report_maintenance)


# ---------------------------------------------------------------------------------- helpers


def _open(site_path: str) -> tuple[Any, Any]:
    from gateway.cli import _load
    from gateway.storage.tickets import TicketStore

    site = _load(site_path)
    return site, TicketStore(site.storage_dir, source="cli")


def _ticket_id(text: str) -> int | None:
    text = text.strip().lstrip("#")
    return int(text) if text.isdigit() else None


def _zone(site: Any) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(site.file.site.timezone)


def _line(ticket: dict[str, Any], zone: Any) -> str:
    """One ticket for people: times in the site's zone (`--json` keeps ISO 8601 UTC)."""
    from gateway.timefmt import local_time

    flag = " OVERDUE" if ticket["overdue"] else ""
    who = ticket["assignee"] or "-"
    count = f" ×{ticket['count']}" if ticket["count"] > 1 else ""
    return (
        f"#{ticket['id']:<5} {ticket['status']:<11} {ticket['urgency']:<9} {ticket['kind']:<10} "
        f"{ticket['device']:<12} due {local_time(ticket['due'], zone)}{flag}  {who}  "
        f"{ticket['title']}{count}"
    )


# ---------------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    import time

    from rules.maintenance.tickets import ACTIVE, board_order, parse_status

    site, store = _open(args.site)
    try:
        statuses = None
        if args.status == "active":
            statuses = [str(s) for s in ACTIVE]
        elif args.status:
            try:
                statuses = [str(parse_status(args.status))]
            except ValueError as exc:
                print(f"fgw tickets list: {exc}", file=sys.stderr)
                return 2
        now = time.time()
        tickets = board_order(
            [t.to_dict(now) for t in store.tickets(status=statuses, device=args.device)]
        )
        zone = _zone(site)
        for data in tickets:
            print(json.dumps(data, ensure_ascii=False) if args.json else _line(data, zone))
        if not tickets and not args.json:
            print("no tickets", file=sys.stderr)
        return 0
    finally:
        store.close()


def _find(store: Any, raw_id: str, command: str) -> Any:
    """The ticket `raw_id` names, or None after saying so on stderr."""
    ticket_id = _ticket_id(raw_id)
    try:
        ticket = store.get(ticket_id) if ticket_id is not None else None
    except KeyError:
        ticket = None
    if ticket is None:
        print(f"fgw tickets {command}: no ticket {raw_id!r}", file=sys.stderr)
    return ticket


def cmd_show(args: argparse.Namespace) -> int:
    import time

    from gateway.timefmt import local_time

    site, store = _open(args.site)
    zone = _zone(site)
    try:
        ticket = _find(store, args.id, "show")
        if ticket is None:
            return 2
        data = ticket.to_dict(time.time(), store.timeline(ticket.id))
        if args.json:
            print(json.dumps(data, ensure_ascii=False, indent=2))
            return 0
        print(_line(data, zone))
        print(f"  origin: {json.dumps(data['origin'], ensure_ascii=False)}")
        created, respond = (
            local_time(data["created_at"], zone),
            local_time(data["response_due"], zone),
        )
        print(f"  created {created}, respond by {respond}")
        for entry in data["timeline"]:
            change = f"{entry['from'] or ''} -> {entry['to']}" if entry["to"] else ""
            print(
                f"  {local_time(entry['at'], zone, seconds=True)}  {entry['by']:<10} "
                f"{entry['action']:<22} {change}  {entry['note']}"
            )
        return 0
    finally:
        store.close()


def cmd_transition(args: argparse.Namespace) -> int:
    import time

    from gateway.storage.tickets import Change
    from rules.maintenance.tickets import TicketStatus, TicketTransitionRefused

    site, store = _open(args.site)
    try:
        ticket = _find(store, args.id, "transition")
        if ticket is None:
            return 2
        alarm_active = False
        if args.to == TicketStatus.RESOLVED and ticket.origin.get("kind") == "alarm":
            alarm_active = bool(store.alarm_condition_active(str(ticket.origin.get("alarm"))))
        now = time.time()
        try:
            entry = ticket.transition(
                args.to, args.by, now, args.note, args.assignee, alarm_active=alarm_active
            )
        except TicketTransitionRefused as exc:
            print(f"fgw tickets transition: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"fgw tickets transition: {exc}", file=sys.stderr)
            return 2
        store.commit(Change(tickets=[(ticket, [entry])]), now)
        print(_line(ticket.to_dict(now), _zone(site)))
        return 0
    finally:
        store.close()


def cmd_report_maintenance(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from rules.maintenance.calendar import month_bounds
    from rules.maintenance.report import build_report, to_csv, to_html, to_text

    site, store = _open(args.site)
    try:
        zone = ZoneInfo(site.file.site.timezone)
        try:
            start, end = month_bounds(args.month, zone)
        except ValueError as exc:
            print(f"fgw report maintenance: {exc}", file=sys.stderr)
            return 2
        tickets = store.tickets(created_before=end)
        timelines = {t.id: store.timeline(t.id) for t in tickets if t.id is not None}
        report = build_report(
            tickets, args.month, start, end, zone, site.file.site.name or site.id,
            timelines=timelines, now=time.time(),
        )  # fmt: skip
        if args.csv:
            Path(args.csv).write_text(to_csv(report), encoding="utf-8")
        if args.html:
            Path(args.html).write_text(
                _with_operations(to_html(report), site, args.month, start, end), encoding="utf-8"
            )
        print(to_text(report), end="")
        return 0
    finally:
        store.close()


def _with_operations(page: str, site: Any, month: str, start: float, end: float) -> str:
    """The owners' page with energy, alarm load, incidents, drills and availability (§11)."""
    from gateway.reports.monthly import operations_html, operations_section
    from gateway.storage.sqlite import AlarmStore

    alarms = AlarmStore(site.storage_dir)
    try:
        section = operations_section(site, month, start, end, alarms.connection)
    finally:
        alarms.close()
    return page.replace("<div class=sign>", operations_html(section) + "<div class=sign>", 1)
