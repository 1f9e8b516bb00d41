"""The shift handover (交接班, PRODUCT §11): what the next shift must know, on one screen.

Built from the site's SQLite file only (alarm records and journal, incidents, tickets), so the
command line and the API give the same answer whether or not the service runs:

- alarms raised in the shift (journal rows to `active_unack` since `since`);
- alarms still open (any state but normal), the unacknowledged ones, the shelved ones (by whom,
  why, until when), the ones out of service; devices whose communication is lost;
- open incidents with their overdue steps; open tickets and the overdue ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from config.site import Site
from gateway.storage.incidents import IncidentStore
from gateway.storage.sqlite import AlarmStore
from gateway.storage.tickets import TicketStore
from gateway.timefmt import local_time
from rules.alarms import Alarm, iso
from rules.maintenance.tickets import ACTIVE, board_order

PRIORITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def shift_report(
    site: Site, since_seconds: float, now: float | None = None, db: Any = None
) -> dict[str, Any]:
    """The handover report for the last `since_seconds` up to `now` (default: the clock)."""
    now = time.time() if now is None else now
    since = now - since_seconds
    alarms = AlarmStore(site.storage_dir) if db is None else None
    connection = db if db is not None else alarms.connection  # type: ignore[union-attr]
    try:
        tickets = TicketStore(site.storage_dir, source="report", db=connection)
        incidents = IncidentStore(site.storage_dir, source="report", db=connection)
        records = list(_alarm_records(connection))
        raised = _raised(connection, iso(since) or "", iso(now) or "")
        return build(
            site,
            since,
            now,
            records,
            raised,
            [i.payload() for i in incidents.incidents(state="open")],
            board_order([t.to_dict(now) for t in tickets.tickets(status=[str(s) for s in ACTIVE])]),
        )
    finally:
        if alarms is not None:
            alarms.close()


def _alarm_records(connection: Any) -> Iterable[dict[str, Any]]:
    for (record,) in connection.execute("SELECT record FROM alarms ORDER BY id"):
        yield Alarm.from_record(json.loads(record)).payload()


def _raised(connection: Any, since: str, until: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        "SELECT alarm_id, episode, at, event FROM alarm_journal "
        "WHERE at >= ? AND at <= ? AND to_state = 'active_unack' AND from_state != to_state "
        "ORDER BY seq",
        (since, until),
    ).fetchall()
    out = []
    for alarm_id, episode, at, event in rows:
        data = json.loads(event) if event else {}
        out.append(
            {
                "id": alarm_id,
                "episode": episode,
                "at": at,
                "priority": data.get("priority"),
                "message": data.get("message"),
            }
        )
    return out


def build(
    site: Site,
    since: float,
    now: float,
    alarms: list[dict[str, Any]],
    raised: list[dict[str, Any]],
    incidents: list[dict[str, Any]],
    tickets: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report from plain data (pure: the tests feed it directly)."""
    open_alarms = sorted((a for a in alarms if a.get("state") != "normal"), key=_rank)
    comm_lost = [
        a["device"]
        for a in open_alarms
        if a.get("rule") == "comm_loss" and a.get("state") in ("active_unack", "active_ack")
    ]
    for incident in incidents:
        incident["overdue_steps"] = [
            s["id"] for s in incident["steps"] if s["overdue"] and not s["done_at"]
        ]
    return {
        "site": site.id,
        "since": iso(since),
        "until": iso(now),
        "raised": raised,
        "open": [_alarm(a) for a in open_alarms],
        "unacknowledged": [
            _alarm(a) for a in open_alarms if a.get("state") in ("active_unack", "rtn_unack")
        ],
        "shelved": [
            {
                **_alarm(a),
                "by": a.get("shelved_by"),
                "reason": a.get("shelve_reason"),
                "until": a.get("shelved_until"),
            }
            for a in open_alarms
            if a.get("state") == "shelved"
        ],
        "out_of_service": [_alarm(a) for a in open_alarms if a.get("state") == "out_of_service"],
        "comm_lost": comm_lost,
        "incidents": incidents,
        "tickets": tickets,
        "overdue_tickets": [t for t in tickets if t.get("overdue")],
    }


def _rank(a: dict[str, Any]) -> tuple[int, str]:
    return PRIORITY_RANK.get(str(a.get("priority")), 9), str(a.get("id"))


def _alarm(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a.get("id"),
        "priority": a.get("priority"),
        "state": a.get("state"),
        "message": a.get("message"),
        "raised_at": a.get("raised_at"),
        "life_safety": a.get("life_safety", False),
    }


def render_text(report: dict[str, Any], english: bool, zone: ZoneInfo | None = None) -> str:
    """The report as printable text, the site's language first (`english`) and both headings;
    times in the site's `zone` (UTC without) with the zone shown, as people read them."""
    at = partial(local_time, zone=zone or ZoneInfo("UTC"))

    def head(zh: str, en: str, items: list[Any]) -> str:
        first, second = (en, zh) if english else (zh, en)
        return f"\n== {first} / {second} ({len(items)})"

    since, until = at(report["since"]), at(report["until"])
    lines = [f"交接班 / Shift handover — {report['site']}: {since} → {until}"]
    sections: list[tuple[str, str, list[Any], Callable[[Any], str]]] = [
        ("进行中的应急事件", "Open incidents", report["incidents"], partial(_incident_line, at=at)),
        (
            "本班发生的报警",
            "Alarms raised in the shift",
            report["raised"],
            partial(_raised_line, at=at),
        ),
        ("未恢复的报警", "Alarms still open", report["open"], _alarm_line),
        ("未确认的报警", "Unacknowledged", report["unacknowledged"], _alarm_line),
        ("已搁置", "Shelved", report["shelved"], partial(_shelved_line, at=at)),
        ("停用", "Out of service", report["out_of_service"], _alarm_line),
        ("通讯中断的设备", "Devices not answering", report["comm_lost"], str),
        ("未完成的工单", "Open tickets", report["tickets"], _ticket_line),
        ("超时工单", "Overdue tickets", report["overdue_tickets"], _ticket_line),
    ]
    for zh, en, items, line in sections:
        lines.append(head(zh, en, items))
        lines.extend(f"  {line(item)}" for item in items)
        if not items:
            lines.append("  -")
    return "\n".join(lines) + "\n"


def _incident_line(i: dict[str, Any], at: Callable[[Any], str]) -> str:
    drill = " [演练/DRILL]" if i["drill"] else ""
    late = f"  OVERDUE: {', '.join(i['overdue_steps'])}" if i["overdue_steps"] else ""
    done = sum(1 for s in i["steps"] if s["done_at"])
    title = f"{i['title']['zh']} / {i['title']['en']}"
    return f"#{i['id']}{drill} {title} since {at(i['opened_at'])}, {done}/{len(i['steps'])} steps{late}"


def _raised_line(a: dict[str, Any], at: Callable[[Any], str]) -> str:
    return f"{at(a['at'])}  {a['priority'] or '-':<8} {a['id']}  {a['message'] or ''}"


def _alarm_line(a: dict[str, Any]) -> str:
    return f"{a['priority']:<8} {a['state']:<14} {a['id']}  {a['message']}"


def _shelved_line(a: dict[str, Any], at: Callable[[Any], str]) -> str:
    return f"{a['id']}  by {a['by']} until {at(a['until'])}: {a['reason']}"


def _ticket_line(t: dict[str, Any]) -> str:
    late = " OVERDUE" if t.get("overdue") else ""
    return f"#{t['id']} {t['status']:<11} {t['urgency']:<9} {t['device']:<10} {t['title']}{late}"
