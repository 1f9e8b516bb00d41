"""The monthly maintenance report for the owners' committee: what was done on time, what was late,
what is still open, and how fast the team responded, by urgency. As CSV rows and a printable page.

Pure: tickets (with their timelines) and the month's bounds in, text out. Every figure is the
state of each ticket's timeline at one instant, the *cutoff*: the end of the month, or now while
the month is not over (a ticket due tomorrow is not overdue today). A ticket belongs to the month
when it was active at some time in it, and has exactly one outcome: `on_time` / `late` (its last
resolution before the cutoff fell in the month, by or after its due time), `open` / `overdue`
(not resolved, closed or cancelled at the cutoff; overdue when its due time is before it),
`cancelled` (in the month), `done_before` (resolved earlier, closed this month: listed, not counted
again). The summary, the lines per kind and the rows count the same outcomes.
"""

from __future__ import annotations

import csv
import html
import io
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.maintenance.calendar import iso
from rules.maintenance.tickets import URGENCIES, Ticket, TicketStatus, TimelineEntry

OUTCOMES = ("on_time", "late", "open", "overdue", "cancelled", "done_before")

CSV_COLUMNS = [
    "id", "kind", "device", "title", "urgency", "outcome", "status_now", "created", "response_due",
    "responded", "response_minutes", "responded_in_time", "due", "resolved", "assignee",
    "resolved_by", "count", "origin",
]  # fmt: skip
TIME_COLUMNS = frozenset(
    {"created", "response_due", "responded", "due", "resolved"}
)  # epoch or None


@dataclass
class UrgencyStats:
    tickets: int = 0
    responded: int = 0
    in_time: int = 0
    minutes: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "tickets": self.tickets,
            "responded": self.responded,
            "responded_in_time": self.in_time,
            "median_minutes": round(statistics.median(self.minutes), 1) if self.minutes else None,
            "max_minutes": round(max(self.minutes), 1) if self.minutes else None,
        }


@dataclass
class MonthlyReport:
    """The month's figures. `cutoff` is the instant they describe (`end`, or now if earlier)."""

    month: str
    site: str
    zone: ZoneInfo
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    by_kind: dict[str, dict[str, int]]
    response: dict[str, dict[str, Any]]
    cutoff: float = 0.0
    month_over: bool = True


@dataclass(frozen=True, slots=True)
class StateAt:
    """A ticket's state at an instant, replayed from its timeline."""

    status: TicketStatus
    resolved_at: float | None  # the last resolution before it (stands while resolved or closed)
    closed_at: float | None
    cancelled_at: float | None


def state_at(t: Ticket, timeline: Sequence[TimelineEntry] | None, instant: float) -> StateAt:
    """Replay the transitions before `instant`; without a timeline, the ticket's own stamps."""
    if timeline is None:
        timeline = _stamps(t)
    status, resolved, closed, cancelled = TicketStatus.OPEN, None, None, None
    for entry in sorted(timeline, key=lambda e: e.at):
        if entry.at >= instant:
            break
        if entry.action != "transition" or entry.to_status is None:
            continue
        status = TicketStatus(entry.to_status)
        if status == TicketStatus.RESOLVED:
            resolved = entry.at
        elif status == TicketStatus.CLOSED:
            closed = entry.at
        elif status == TicketStatus.CANCELLED:
            cancelled = entry.at
    return StateAt(status, resolved, closed, cancelled)


def _stamps(t: Ticket) -> list[TimelineEntry]:
    """The transitions a ticket's stamps imply, for tickets given without their timeline."""
    steps = [(t.resolved_at, TicketStatus.RESOLVED), (t.closed_at, TicketStatus.CLOSED),
             (t.cancelled_at, TicketStatus.CANCELLED)]  # fmt: skip
    return [
        TimelineEntry(at=at, by="", action="transition", to_status=str(to))
        for at, to in steps
        if at is not None
    ]


def outcome(
    t: Ticket, timeline: Sequence[TimelineEntry] | None, start: float, cutoff: float
) -> str | None:
    """The ticket's one outcome for the month [start, cutoff), or None when it is not in it."""
    if t.created_at >= cutoff:
        return None
    state = state_at(t, timeline, cutoff)
    if state.status == TicketStatus.CANCELLED:
        assert state.cancelled_at is not None
        return "cancelled" if state.cancelled_at >= start else None
    if state.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        resolved = state.resolved_at if state.resolved_at is not None else state.closed_at
        assert resolved is not None
        if resolved >= start:
            return "on_time" if resolved <= t.resolution_due else "late"
        closed_in_month = state.closed_at is not None and state.closed_at >= start
        return "done_before" if closed_in_month else None
    return "overdue" if t.resolution_due < cutoff else "open"


def build_report(
    tickets: Sequence[Ticket],
    month: str,
    start: float,
    end: float,
    zone: ZoneInfo,
    site: str,
    *,
    timelines: Mapping[int, Sequence[TimelineEntry]] | None = None,
    now: float | None = None,
) -> MonthlyReport:
    """Tally `tickets` for the month [start, end) on the site's clock.

    Args:
        timelines: each ticket's timeline by id (a reopened ticket's past is only there).
        now: the current time: figures of a month not over yet are as of now.
    """
    cutoff = end if now is None else max(start, min(end, now))
    rows: list[dict[str, Any]] = []
    counts = dict.fromkeys(OUTCOMES, 0)
    by_kind: dict[str, dict[str, int]] = {}
    response = {u: UrgencyStats() for u in URGENCIES}
    timelines = timelines or {}

    for t in sorted(tickets, key=lambda t: t.id or 0):
        result = outcome(t, timelines.get(t.id) if t.id is not None else None, start, cutoff)
        if result is None:
            continue
        counts[result] += 1
        by_kind.setdefault(t.kind, dict.fromkeys(OUTCOMES, 0))[result] += 1
        minutes = None
        in_time = None
        if start <= t.created_at < cutoff:
            stats = response[t.urgency]
            stats.tickets += 1
            if t.responded_at is not None:
                minutes = (t.responded_at - t.created_at) / 60
                in_time = t.responded_at <= t.response_due
                stats.responded += 1
                stats.in_time += int(in_time)
                stats.minutes.append(minutes)
        origin = t.origin.get("alarm") or t.origin.get("plan") or t.origin.get("kind", "")
        rows.append(
            {
                "id": t.id,
                "kind": t.kind,
                "device": t.device,
                "title": t.title,
                "urgency": t.urgency,
                "outcome": result,
                "status_now": str(t.status),
                "created": t.created_at,
                "response_due": t.response_due,
                "responded": t.responded_at,
                "response_minutes": round(minutes, 1) if minutes is not None else "",
                "responded_in_time": "" if in_time is None else ("yes" if in_time else "no"),
                "due": t.resolution_due,
                "resolved": t.resolved_at,
                "assignee": t.assignee or "",
                "resolved_by": t.resolved_by or "",
                "count": t.count,
                "origin": origin,
            }
        )
    return MonthlyReport(
        month=month,
        site=site,
        zone=zone,
        rows=rows,
        counts=counts,
        by_kind=by_kind,
        response={u: s.row() for u, s in response.items()},
        cutoff=cutoff,
        month_over=cutoff >= end,
    )


def to_csv(report: MonthlyReport) -> str:
    """One row per ticket, UTF-8 without a BOM; times in ISO 8601 UTC (machine output, §5)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow(
            {k: _cell(_utc(row[k]) if k in TIME_COLUMNS else row[k]) for k in CSV_COLUMNS}
        )
    return out.getvalue()


def _utc(instant: float | None) -> str:
    """A machine time: ISO 8601 UTC with `Z`; empty when there is none."""
    return iso(instant) or ""


def _local(instant: float | None, zone: ZoneInfo) -> str:
    """A time for people, in the site's zone (the page names the zone once)."""
    if instant is None:
        return ""
    return datetime.fromtimestamp(instant, zone).strftime("%Y-%m-%d %H:%M")


def _cell(value: Any) -> Any:
    """Spreadsheets run cells starting with = + - @ as formulas: a title is text, never code."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _summary(c: Mapping[str, int], when: str) -> str:
    """One line of figures; the same words for the month and for each kind."""
    return (
        f"done {c['on_time'] + c['late']} (on time {c['on_time']}, late {c['late']}); "
        f"open {when} {c['open'] + c['overdue']} (not yet due {c['open']}, overdue {c['overdue']}); "
        f"cancelled {c['cancelled']}; done earlier, closed this month {c['done_before']}"
    )


def _as_of(report: MonthlyReport) -> str:
    """`` for a month that is over; `, so far (as of 2026-12-06 11:30)` for the current one."""
    if report.month_over:
        return ""
    as_of = datetime.fromtimestamp(report.cutoff, report.zone).strftime("%Y-%m-%d %H:%M")
    return f", so far (as of {as_of})"


def to_text(report: MonthlyReport) -> str:
    when = "at month end" if report.month_over else "now"
    lines = [
        f"Maintenance report {report.month} — {report.site} ({report.zone.key}){_as_of(report)}",
        f"all tickets: {_summary(report.counts, when)}",
    ]
    for kind, counts in sorted(report.by_kind.items()):
        lines.append(f"  {kind}: {_summary(counts, when)}")
    lines.append(
        "response by urgency, tickets created this month "
        "(tickets, responded in time/responded, median min, max min):"
    )
    for urgency, r in report.response.items():
        lines.append(
            f"  {urgency:9} {r['tickets']:3}  {r['responded_in_time']:3}/{r['responded']:<3}"
            f"  {_num(r['median_minutes']):>7}  {_num(r['max_minutes']):>7}"
        )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


_LABELS = {
    "on_time": "按时完成 / Done on time",
    "late": "逾期完成 / Done late",
    "open": "未完成, 未到期 / Open, not yet due",
    "overdue": "已逾期未完成 / Open, overdue",
    "cancelled": "已取消 / Cancelled",
    "done_before": "上月完成本月关闭 / Done earlier, closed this month",
}

_CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", Arial, sans-serif; margin: 2em;
       color: #111; }
h1 { font-size: 1.5em; margin-bottom: 0; } .sub { color: #555; margin-top: .3em; }
table { border-collapse: collapse; margin: 1em 0; width: 100%; font-size: .9em; }
th, td { border: 1px solid #999; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #eee; } td.n { text-align: right; }
tr.late td, tr.overdue td { background: #fde8e8; }
.sign { margin-top: 3em; display: flex; gap: 4em; }
@media print { body { margin: 1cm; } tr { page-break-inside: avoid; } }
"""


def to_html(report: MonthlyReport) -> str:
    """A self-contained printable page (no scripts, no external resources), all text escaped."""
    e = html.escape
    c = report.counts
    z = report.zone
    summary = "".join(f"<tr><th>{e(_LABELS[k])}</th><td class=n>{c[k]}</td></tr>" for k in _LABELS)
    kinds = "".join(
        f"<tr><td>{e(kind)}</td>"
        + "".join(f"<td class=n>{counts[k]}</td>" for k in OUTCOMES)
        + "</tr>"
        for kind, counts in sorted(report.by_kind.items())
    )
    response = "".join(
        f"<tr><td>{e(u)}</td><td class=n>{r['tickets']}</td><td class=n>{r['responded']}</td>"
        f"<td class=n>{r['responded_in_time']}</td><td class=n>{_num(r['median_minutes'])}</td>"
        f"<td class=n>{_num(r['max_minutes'])}</td></tr>"
        for u, r in report.response.items()
    )
    tickets = "".join(
        f"<tr class={e(str(row['outcome']))}><td class=n>{row['id']}</td><td>{e(row['kind'])}</td>"
        f"<td>{e(row['device'])}</td><td>{e(row['title'])}</td><td>{e(row['urgency'])}</td>"
        f"<td>{e(_local(row['created'], z))}</td><td>{e(_local(row['due'], z))}</td>"
        f"<td>{e(_local(row['resolved'], z))}</td>"
        f"<td>{e(row['resolved_by'] or row['assignee'])}</td>"
        f"<td>{e(_LABELS[row['outcome']])}</td></tr>"
        for row in report.rows
    )
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{e(report.site)} — 维保月报 / Maintenance report {e(report.month)}</title>
<style>{_CSS}</style></head>
<body>
<h1>{e(report.site)} — 设备维保月报 / Monthly maintenance report</h1>
<p class=sub>{e(report.month)} · {e(report.zone.key)}{e(_as_of(report))}</p>
<h2>概况 / Summary</h2>
<table>{summary}</table>
<h2>按类型 / By kind</h2>
<table><tr><th>类型 / Kind</th>{"".join(f"<th>{e(_LABELS[k])}</th>" for k in OUTCOMES)}</tr>
{kinds}</table>
<h2>响应时间 / Response times by urgency</h2>
<table><tr><th>紧急程度 / Urgency</th><th>工单 / Tickets</th><th>已响应 / Responded</th>
<th>按时响应 / In time</th><th>中位 (分钟) / Median min</th><th>最长 (分钟) / Max min</th></tr>
{response}</table>
<h2>工单明细 / Tickets</h2>
<table><tr><th>#</th><th>类型 / Kind</th><th>设备 / Device</th><th>内容 / Title</th>
<th>紧急 / Urgency</th><th>创建 / Created</th><th>期限 / Due</th><th>完成 / Resolved</th>
<th>处理人 / By</th><th>结果 / Outcome</th></tr>{tickets}</table>
<div class=sign><p>物业工程部 / Engineering: ____________</p>
<p>业主委员会 / Owners' committee: ____________</p></div>
</body></html>
"""
