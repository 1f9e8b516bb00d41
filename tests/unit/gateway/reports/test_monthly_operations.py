"""Availability arithmetic of the owners' monthly report (gateway/reports/monthly.py)."""

from __future__ import annotations

from pathlib import Path

from config.site import load_site
from gateway.reports.monthly import availability, covered, intervals

SITE = """\
site: {id: t}
modbus: [{id: b, transport: tcp, host: 127.0.0.1, port: 5020}]
devices:
  - {id: lift-1, template: lift, modbus: {bus: b, unit: 1}}
  - {id: pump-1, template: booster_pump, modbus: {bus: b, unit: 2}}
  - {id: meter-1, template: energy_meter, modbus: {bus: b, unit: 3}}
"""


def test_episodes_from_journal_rows_and_their_union() -> None:
    rows = [
        ("lift-1.entrapment", "normal", "active_unack", 100.0),
        ("lift-1.entrapment", "active_unack", "active_ack", 150.0),
        ("lift-1.comm_loss", "normal", "active_unack", 180.0),
        ("lift-1.entrapment", "active_ack", "normal", 200.0),
        ("lift-1.comm_loss", "active_unack", "rtn_unack", 260.0),
        ("lift-1.comm_loss", "rtn_unack", "normal", 300.0),  # the ack: no new episode
        ("lift-1.lift_fault", "normal", "active_unack", 900.0),  # still active at the end
    ]
    spans = intervals(rows, 1000.0)
    assert spans["lift-1.entrapment"] == [(100.0, 200.0)]
    assert spans["lift-1.comm_loss"] == [(180.0, 260.0)]
    assert spans["lift-1.lift_fault"] == [(900.0, 1000.0)]
    assert covered([(100, 200), (180, 260), (900, 1000)], 0, 1000) == 260.0
    assert covered([(-50, 20)], 0, 1000) == 20.0


def test_lifts_and_pumps_only(tmp_path: Path) -> None:
    site = load_site(tmp_path / "s.yaml", SITE)
    rows = [
        ("lift-1.entrapment", "normal", "active_unack", 0.0),
        ("lift-1.entrapment", "active_unack", "rtn_unack", 600.0),
        ("pump-1.high_vibration", "normal", "active_unack", 0.0),  # not unavailability
        ("meter-1.breaker_trip", "normal", "active_unack", 0.0),
    ]
    result = {d["device"]: d for d in availability(site, rows, 0.0, 6000.0)}
    assert set(result) == {"lift-1", "pump-1"}
    assert result["lift-1"]["availability_pct"] == 90.0 and result["lift-1"]["down_minutes"] == 10.0
    assert result["pump-1"]["availability_pct"] == 100.0
