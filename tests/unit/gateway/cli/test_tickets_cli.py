"""`fgw tickets list|show|transition` and `fgw report maintenance` on a site's SQLite file, and the
monthly report's tallies, CSV and printable HTML."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.site import Site, load_site
from gateway.cli import main
from gateway.storage.sqlite import AlarmStore
from gateway.storage.tickets import Change, TicketStore
from rules.maintenance import ServiceTargets, Ticket, new_ticket
from rules.maintenance.calendar import month_bounds
from rules.maintenance.report import build_report, to_csv, to_html
from tests.e2e import write_site

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOV = 1_793_462_400.0  # 2026-11-01T00:00:00+08:00
DAY = 86400.0
HOUR = 3600.0


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return load_site(write_site(tmp_path, 1883))


def make(
    store: TicketStore,
    at: float,
    urgency: str = "urgent",
    title: str = "Pump running dry",
    origin: dict | None = None,
    kind: str = "corrective",
) -> Ticket:
    ticket, entry = new_ticket(
        kind=kind,
        device="pump-2",
        title=title,
        urgency=urgency,
        at=at,
        by="system",
        targets=ServiceTargets(SHANGHAI),
        origin=origin or {"kind": "manual", "by": "duty"},
        origin_key=f"alarm:{origin['alarm']}" if origin and "alarm" in origin else None,
    )
    store.commit(Change(tickets=[(ticket, [entry])]), at)
    return ticket


def step(store: TicketStore, ticket: Ticket, to: str, at: float, **kwargs: object) -> None:
    entry = ticket.transition(to, "wang", at, **kwargs)  # type: ignore[arg-type]
    store.commit(Change(tickets=[(ticket, [entry])]), at)


def test_list_show_and_transition(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(site.path)
    store = TicketStore(site.storage_dir)
    alarms = AlarmStore(site.storage_dir)
    try:
        origin = {"kind": "alarm", "alarm": "pump-2.dry_run", "episode": 1}
        make(store, NOV, origin=origin)
        make(store, NOV + 60, urgency="low", title="Repaint the guard")
        record = {"id": "pump-2.dry_run", "device": "pump-2", "rule": "dry_run",
                  "state": "active_unack", "episode": 1, "condition_active": True}  # fmt: skip
        event = {"id": "pump-2.dry_run", "episode": 1, "from": "normal", "to": "active_unack",
                 "at": "2026-11-01T00:00:00Z"}  # fmt: skip
        alarms.record([(record, event)], NOV)
    finally:
        store.close()

    assert main(["tickets", "list", path]) == 0
    out = capsys.readouterr().out.splitlines()
    # urgent before low, whatever the order they were raised in
    assert len(out) == 2 and out[0].startswith("#1 ") and "Pump running dry" in out[0]
    assert (
        main(["tickets", "list", path, "--status", "active", "--device", "pump-2", "--json"]) == 0
    )
    assert capsys.readouterr().out.count('"kind": "corrective"') == 2
    assert main(["tickets", "list", path, "--status", "nope"]) == 2
    assert "unknown ticket status" in capsys.readouterr().err

    assert main(["tickets", "transition", path, "1", "assigned", "--by", "duty"]) == 2
    assert "assignee" in capsys.readouterr().err
    assert main(["tickets", "transition", path, "#1", "in_progress", "--by", "wang"]) == 0
    assert "in_progress" in capsys.readouterr().out
    # the alarm has not returned to normal: refused, exit 1
    assert main(["tickets", "transition", path, "1", "resolved", "--by", "wang"]) == 1
    assert "has not returned to normal" in capsys.readouterr().err
    record["condition_active"] = False
    alarms.record([(record, {**event, "from": "active_unack", "to": "rtn_unack"})], NOV + 60)
    alarms.close()
    assert main(["tickets", "transition", path, "1", "resolved", "--by", "wang",
                 "--note", "primed"]) == 0  # fmt: skip
    assert main(["tickets", "transition", path, "99", "closed", "--by", "wang"]) == 2
    capsys.readouterr()

    assert main(["tickets", "show", path, "1"]) == 0
    shown = capsys.readouterr().out
    assert "created" in shown and "in_progress -> resolved" in shown and "primed" in shown
    assert main(["tickets", "show", path, "x"]) == 2

    store = TicketStore(site.storage_dir)
    try:
        rows = store.unpublished()
        assert [r.source for r in rows if r.entry.action == "transition"] == ["cli", "cli"]
    finally:
        store.close()


def test_monthly_report_tallies(site: Site, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = TicketStore(site.storage_dir)
    try:
        before = make(store, NOV - 5 * DAY, urgency="low")  # active into November, then done late
        step(store, before, "in_progress", NOV - 4 * DAY)
        step(store, before, "resolved", NOV + 3 * DAY)
        on_time = make(store, NOV + DAY, urgency="emergency")
        step(store, on_time, "in_progress", NOV + DAY + 10 * 60)  # responded in 10 min
        step(store, on_time, "resolved", NOV + DAY + 2 * HOUR)
        slow = make(store, NOV + 2 * DAY, urgency="emergency", title='=HYPERLINK("x")')
        step(store, slow, "assigned", NOV + 2 * DAY + 30 * 60, assignee="li")  # 30 min: late
        make(store, NOV + 28 * DAY, urgency="low", title="<script>alert(1)</script>")  # open
        overdue = make(store, NOV + 3 * DAY, urgency="urgent")  # open past due at month end
        cancelled = make(store, NOV + 4 * DAY, urgency="normal")
        step(store, cancelled, "cancelled", NOV + 5 * DAY, note="duplicate")
        make(store, NOV + 31 * DAY, urgency="urgent")  # December: not in the report
        old = make(store, NOV - 40 * DAY, urgency="urgent")
        step(store, old, "in_progress", NOV - 40 * DAY + HOUR)
        step(store, old, "resolved", NOV - 39 * DAY)  # done in September: not in it
        start, end = month_bounds("2026-11", SHANGHAI)
        report = build_report(store.tickets(), "2026-11", start, end, SHANGHAI, "Riverside")
    finally:
        store.close()
    assert report.counts == {
        "on_time": 1, "late": 1, "open": 1, "overdue": 2, "cancelled": 1, "done_before": 0
    }  # fmt: skip
    assert {r["id"] for r in report.rows} == {
        before.id, on_time.id, slow.id, overdue.id, cancelled.id, 4
    }  # fmt: skip
    emergency = report.response["emergency"]
    assert emergency["tickets"] == 2 and emergency["responded"] == 2
    assert emergency["responded_in_time"] == 1
    assert emergency["median_minutes"] == 20.0 and emergency["max_minutes"] == 30.0
    assert report.response["low"]["tickets"] == 1  # the one created before November is not
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows[0]["created"] == "2026-10-26T16:00:00Z"  # machine output: ISO 8601 UTC
    assert rows[0]["resolved"] == "2026-11-03T16:00:00Z" and rows[-1]["resolved"] == ""
    injected = next(r for r in rows if "HYPERLINK" in r["title"])
    assert injected["title"].startswith("'=")  # a spreadsheet shows it, never runs it
    page = to_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "Done on time" in page and "@media print" in page
    assert "<td>2026-10-27 00:00</td>" in page and "Asia/Shanghai" in page  # people: site time

    csv_file, html_file = tmp_path / "nov.csv", tmp_path / "nov.html"
    argv = ["report", "maintenance", str(site.path), "--month", "2026-11"]
    assert main([*argv, "--csv", str(csv_file), "--html", str(html_file)]) == 0
    text = capsys.readouterr().out
    assert (
        "all tickets: done 2 (on time 1, late 1); open at month end 3 (not yet due 1, overdue 2)"
        in text
    )
    assert csv_file.read_text(encoding="utf-8").startswith("id,kind,device")
    assert html_file.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert main(["report", "maintenance", str(site.path), "--month", "2026-13"]) == 2


def test_list_most_urgent_first_then_soonest_due(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    store = TicketStore(site.storage_dir)
    try:
        make(store, NOV, urgency="emergency", title="Fire zone 3")  # 1
        make(store, NOV + 60, urgency="normal", title="Quarterly check", kind="preventive")  # 2
        make(store, NOV + 120, urgency="emergency", title="Lift entrapment")  # 3
        make(store, NOV - DAY, urgency="normal", title="Older, due sooner")  # 4
        make(store, NOV + 180, urgency="low", title="Repaint")  # 5
    finally:
        store.close()
    assert main(["tickets", "list", str(site.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["#1", "#3", "#4", "#2", "#5"]
    assert main(["tickets", "list", str(site.path), "--json"]) == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == [1, 3, 4, 2, 5]
