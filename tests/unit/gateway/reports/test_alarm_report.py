"""The alarm-load report: figures computed from journal rows, and `fgw report alarms` on a real
journal written through the alarm book and the store, as a table and as CSV."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from config.site import load_site
from gateway.cli import main
from gateway.storage.sqlite import AlarmStore
from rules.alarm_load import Row, compute
from rules.alarms import AlarmBook
from rules.engine import ConditionChange
from rules.floods import ChatterSettings, FloodSettings
from tests.support import free_port

T0 = 1_800_000_000.0  # a multiple of 600: 10-minute intervals start here


def activation(alarm_id: str, at: float, episode: int, priority: str = "high") -> Row:
    return Row(alarm_id, episode, "normal", "active_unack", at, priority)


def test_per_10_minutes_average_peak_and_intervals_over() -> None:
    rows = [activation("a.x", T0 + 60 * i, i + 1) for i in range(3)]  # 3 in the first interval
    rows += [activation(f"b{i}.y", T0 + 1200 + i, 1) for i in range(12)]  # 12 in the third
    load = compute(rows, [], since=T0, until=T0 + 3600, flood=FloodSettings(10, 600, 5))
    assert load.activations == 15 and load.intervals == 6
    assert load.average_per_interval == pytest.approx(2.5)
    assert (load.peak_per_interval, load.peak_at) == (12, T0 + 1200)
    assert load.intervals_over == 1
    assert load.buckets == {T0: 3, T0 + 1200: 12}


def test_time_in_flood_and_first_out_by_replay() -> None:
    rows = [activation("meter-1.breaker_trip", T0, 1, "critical")]
    rows += [activation(f"pump-{i}.x", T0 + 10 + i, 1) for i in range(11)]
    load = compute(rows, [], since=T0, until=T0 + 7200, flood=FloodSettings(10, 600, 5))
    assert len(load.floods) == 1
    flood = load.floods[0]
    assert flood.first_out == "meter-1.breaker_trip" and flood.alarms == 12
    # started with the first of the burst, ended when at most 5 were left in the window:
    # the 7th activation (T0 + 15) leaves the window at T0 + 615
    assert (flood.started, flood.ended) == (T0, T0 + 615)
    assert load.time_in_flood == 615 and load.percent_in_flood == pytest.approx(615 / 72)


def test_a_flood_still_going_ends_at_the_end_of_the_period() -> None:
    rows = [activation(f"d{i}.x", T0 + i, 1) for i in range(11)]
    load = compute(rows, [], since=T0, until=T0 + 100, flood=FloodSettings(10, 600, 5))
    assert [(f.started, f.ended) for f in load.floods] == [(T0, T0 + 100)]


def test_top_ten_chattering_and_standing() -> None:
    rows = []
    for i in range(8):  # pump-1.fault: 8 activations, 4 of them within 60 s
        rows.append(activation("pump-1.fault", T0 + (10 * i if i < 4 else 1000 * i), i + 1))
    for j in range(12):
        rows += [activation(f"dev-{j}.r", T0 + 5000 + 100 * j + k, k + 1) for k in range(j % 3 + 1)]
    # a same-state row flagging chattering, and an episode seen again after a shelve
    rows.append(Row("door-1.forced", 1, "active_unack", "active_unack", T0 + 60, "", True))
    rows.append(Row("dev-0.r", 1, "shelved", "active_unack", T0 + 7000))
    alarms = [
        {"id": "lift-1.out_of_service", "priority": "medium", "state": "active_ack",
         "raised_at": T0 - 2 * 86400, "episode": 4},
        {"id": "fire-1.fault", "priority": "high", "state": "shelved", "condition_active": True,
         "raised_at": T0 - 30 * 3600, "episode": 1},
        {"id": "pump-2.x", "priority": "high", "state": "active_unack", "raised_at": T0,
         "episode": 1},
        {"id": "pump-3.x", "priority": "high", "state": "rtn_unack", "raised_at": T0 - 86400 * 9,
         "episode": 1},
    ]  # fmt: skip
    load = compute(rows, alarms, since=T0, until=T0 + 86400, chatter=ChatterSettings(3, 60, 30))
    assert load.top[0].alarm_id == "pump-1.fault" and load.top[0].count == 8
    assert load.top[0].detail == f"{100 * 8 / load.activations:.1f}%"
    assert len(load.top) == 10
    assert [t.count for t in load.top] == sorted((t.count for t in load.top), reverse=True)
    assert "dev-0.r" in {t.alarm_id for t in load.top} and load.activations == 8 + 24
    assert [c.alarm_id for c in load.chattering] == ["pump-1.fault", "door-1.forced"]
    assert load.chattering[0].detail == "max 4 within 60s"
    assert [(s.alarm_id, s.detail) for s in load.standing] == [  # the longest first
        ("lift-1.out_of_service", "72.0h active_ack"),
        ("fire-1.fault", "54.0h shelved"),  # shelved, but its condition stands
    ]


def test_episodes_announced_before_the_period_are_not_counted_again() -> None:
    rows = [Row("a.x", 3, "shelved", "active_unack", T0 + 10)]
    assert compute(rows, [], since=T0, until=T0 + 600, announced_before={"a.x": 3}).activations == 0
    assert compute(rows, [], since=T0, until=T0 + 600).activations == 1


# ------------------------------------------------------------------ the command

SITE = """
site: {{id: report-test, locale: en}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {port}}}
console: {{enabled: false}}
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {port}}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: bus, unit: 1}}}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 30}}}}
alarms:
  chattering: {{activations: 3, window: 1m}}
  flood: {{alarms: 3, window: 10m, end_at: 1}}
"""


def write_journal(site_path: Path, now: float) -> None:
    """Real transitions through the alarm book into the store, over the last two days."""
    site = load_site(site_path)
    book = AlarmBook(list(site.rules()), locale="en")
    store = AlarmStore(site.storage_dir)

    def change(alarm_id: str, active: bool, at: float) -> None:
        device, rule = alarm_id.split(".")
        c = ConditionChange(alarm_id, device, rule, active, False, None, {}, at, "test")
        store.record(((t.alarm.record(), t.event()) for t in book.apply(c)), at)

    start = (now - 40 * 3600) // 600 * 600  # the burst below falls in one 10-minute interval
    change("fire-1.panel_fault", True, start)  # standing for 40 h
    for i in range(5):  # pump-1.pump_fault chatters: 5 activations within a minute
        change("pump-1.pump_fault", True, start + 3600 + 10 * i)
        change("pump-1.pump_fault", False, start + 3605 + 10 * i)
    change("fire-1.mains_fail", True, start + 3700)
    change("fire-1.battery_low", True, start + 3701)
    change("fire-1.mains_fail", False, start + 3800)
    change("fire-1.battery_low", False, start + 3801)
    store.close()


def test_fgw_report_alarms_table_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(port=free_port()))
    assert main(["report", "alarms", str(path)]) == 1  # no journal yet: said, not a traceback
    assert "no journal yet" in capsys.readouterr().err
    write_journal(path, time.time())

    assert main(["report", "alarms", str(path), "--since", "7d"]) == 0
    table = capsys.readouterr().out
    assert "alarms (activations)        8" in table
    assert "per 10 min, peak            7" in table
    assert "floods                      1" in table
    assert "first out pump-1.pump_fault" in table
    top = table.split("Top 10 most frequent:")[1].split("Chattering:")[0].splitlines()
    assert top[1].split()[:3] == ["pump-1.pump_fault", "high", "5"]
    chattering = table.split("Chattering:")[1].split("Standing")[0]
    assert "pump-1.pump_fault" in chattering and "fire-1" not in chattering
    standing = table.split("Standing (active > 24 h):")[1]
    assert standing.split()[:4] == ["fire-1.panel_fault", "high", "ep", "1"]
    assert "active_unack" in standing and "mains_fail" not in standing

    assert main(["report", "alarms", str(path), "--since", "7d", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    summary = {r["alarm"]: r for r in rows if r["section"] == "summary"}
    assert summary["activations"]["count"] == "8"
    assert summary["floods"]["count"] == "1"
    assert float(summary["average_per_10min"]["value"]) == pytest.approx(8 / (7 * 144), rel=0.01)
    assert [r["alarm"] for r in rows if r["section"] == "standing"] == ["fire-1.panel_fault"]
    assert [r["alarm"] for r in rows if r["section"] == "chattering"] == ["pump-1.pump_fault"]
    assert sum(int(r["count"]) for r in rows if r["section"] == "per_10min") == 8

    # a shorter window leaves the old episodes out
    assert main(["report", "alarms", str(path), "--since", "1h"]) == 0
    assert "alarms (activations)        0" in capsys.readouterr().out
    assert main(["report", "alarms", str(path), "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err
