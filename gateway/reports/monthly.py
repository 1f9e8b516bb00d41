"""The owners' monthly report's operations part (PRODUCT §11): energy, alarm load, incidents and
drills with their response times, and each lift's and pump's availability in the month.

Availability is the share of the month in which none of the device's *unavailability* alarms had
its condition active (lift: comm_loss, entrapment, lift_fault, out_of_service; pump: comm_loss,
pump_fault, dry_run), from the alarm journal: an episode runs from the transition into an active
state to the one out of it (`rtn_unack` or `normal`); overlapping episodes count once.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from datetime import datetime
from typing import Any

from config.site import Site
from gateway.reports.energy import energy_report
from gateway.storage.incidents import IncidentStore
from rules.alarms import iso

UNAVAILABLE = {
    "lift": ("comm_loss", "entrapment", "lift_fault", "out_of_service"),
    "booster_pump": ("comm_loss", "pump_fault", "dry_run"),
}
ACTIVE = ("active_unack", "active_ack")
CLEARED = ("rtn_unack", "normal")


def intervals(
    rows: list[tuple[str, str, str, float]], end: float
) -> dict[str, list[tuple[float, float]]]:
    """Per alarm, the (start, end) of each episode with its condition active, from journal rows
    `(alarm_id, from_state, to_state, at)` oldest first; one still active ends at `end`."""
    open_at: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for alarm, old, new, at in rows:
        if new in ACTIVE and alarm not in open_at and old not in ACTIVE:
            open_at[alarm] = at
        elif new in CLEARED and alarm in open_at:
            out.setdefault(alarm, []).append((open_at.pop(alarm), at))
    for alarm, at in open_at.items():
        out.setdefault(alarm, []).append((at, end))
    return out


def covered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end) covered by the union of `spans`."""
    total, cursor = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, cursor), min(b, end)
        if b > a:
            total += b - a
            cursor = b
    return total


def availability(
    site: Site, rows: list[tuple[str, str, str, float]], start: float, end: float
) -> list[dict[str, Any]]:
    spans = intervals(rows, end)
    out = []
    for device in site.devices.values():
        kind = device.template.id if device.template else ""
        if kind not in UNAVAILABLE:
            continue
        mine = [s for rule in UNAVAILABLE[kind] for s in spans.get(f"{device.id}.{rule}", [])]
        down = covered(mine, start, end)
        out.append(
            {
                "device": device.id,
                "name": device.spec.name or device.id,
                "kind": kind,
                "down_minutes": round(down / 60.0, 1),
                "availability_pct": round(100.0 * (1 - down / (end - start)), 2),
            }
        )
    return out


def operations_section(site: Site, month: str, start: float, end: float, db: Any) -> dict[str, Any]:
    """Everything but the tickets, for the month [start, end) (epoch seconds)."""
    journal = db.execute(
        "SELECT alarm_id, from_state, to_state, at, event FROM alarm_journal "
        "WHERE at < ? ORDER BY seq",
        (iso(end),),
    ).fetchall()
    rows = [(a, f, t, datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
            for a, f, t, at, _ in journal]  # fmt: skip
    raised = [
        (a, json.loads(ev or "{}").get("priority", "?"))
        for a, f, t, at, ev in journal
        if t == "active_unack" and f not in ACTIVE and at >= (iso(start) or "")
    ]
    by_priority = Counter(p for _, p in raised)
    top = Counter(a for a, _ in raised).most_common(5)
    incidents = IncidentStore(site.storage_dir, source="report", db=db).incidents(
        since=start, until=end
    )
    year, mon = (int(x) for x in month.split("-"))
    return {
        "energy": energy_report(site, (year, mon))["meters"],
        "alarms": {"raised": len(raised), "by_priority": dict(by_priority), "top": top},
        "incidents": [i.payload() for i in incidents],
        "availability": availability(site, rows, start, end),
    }


def operations_html(section: dict[str, Any]) -> str:
    """The section as HTML tables, every text escaped (inserted before the signatures)."""
    e = html.escape
    energy = "".join(
        f"<tr><td>{e(m['meter'])}</td><td class=n>{m['kwh']:.1f}</td><td class=n>{_n(m['peak_kw'])}"
        f"</td><td class=n>{_n(m['night_kw'])}</td><td class=n>{_n(m['night_rise_pct'])}</td></tr>"
        for m in section["energy"]
    )
    a = section["alarms"]
    prio = " · ".join(f"{e(k)} {v}" for k, v in sorted(a["by_priority"].items()))
    top = "".join(f"<tr><td>{e(i)}</td><td class=n>{n}</td></tr>" for i, n in a["top"])
    incidents = ""
    for i in section["incidents"]:
        kind = "演练 / Drill" if i["drill"] else "事件 / Incident"
        steps = "; ".join(
            f"{e(s['id'])} {_n(None if s['response_s'] is None else round(s['response_s'] / 60, 1))}"
            f" min{' (逾期 / late)' if s['overdue'] else ''}"
            for s in i["steps"]
        )
        incidents += (
            f"<tr><td class=n>{i['id']}</td><td>{kind}</td><td>{e(i['title']['zh'])} / "
            f"{e(i['title']['en'])}</td><td>{e(i['opened_at'] or '')}</td>"
            f"<td>{e(i['closed_at'] or '-')}</td><td>{e(i['cause'])}</td><td>{steps}</td></tr>"
        )
    avail = "".join(
        f"<tr><td>{e(d['name'])}</td><td>{e(d['kind'])}</td><td class=n>{d['availability_pct']:.2f}"
        f"</td><td class=n>{d['down_minutes']:.1f}</td></tr>"
        for d in section["availability"]
    )
    return f"""<h2>能耗 / Energy</h2>
<table><tr><th>电表 / Meter</th><th>kWh</th><th>峰值 kW / Peak kW</th>
<th>夜间基荷 kW / Night kW</th><th>较前四周 % / vs 4 weeks %</th></tr>{energy}</table>
<h2>报警负荷 / Alarm load</h2>
<p>本月报警 / Alarms raised: {a["raised"]} ({prio or "-"})</p>
<table><tr><th>最频繁 / Most frequent</th><th>次数 / Count</th></tr>{top}</table>
<h2>应急事件与演练 / Incidents and drills</h2>
<table><tr><th>#</th><th>类型 / Kind</th><th>预案 / Playbook</th><th>开始 / Opened</th>
<th>结束 / Closed</th><th>原因 / Cause</th><th>各步骤响应 / Step response</th></tr>{incidents}</table>
<h2>设备可用率 / Availability</h2>
<table><tr><th>设备 / Device</th><th>类型 / Kind</th><th>可用率 % / Available %</th>
<th>停机 (分钟) / Down min</th></tr>{avail}</table>
"""


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
