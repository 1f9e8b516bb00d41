"""The peer's config is generated from the same site file: same devices, registers, types, polls.

Pure: a site file is loaded and turned into the peer's JSON; nothing runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.peer_config import write_peer_config
from bench.peer_measure import jitter_ms, polls_in, rates
from bench.peer_report import markdown
from bench.peer_uplink import Delivered
from bench.peers import doors_yaml
from bench.sites import estate_yaml
from config.models import ModbusPoint
from config.site import load_site


def _site(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_every_modbus_point_becomes_one_request_of_the_same_register(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, estate_yaml(8, mqtt_port=1883, modbus_ports=[5020])))
    notes = write_peer_config(site, tmp_path / "peer", broker_port=18830)
    slaves = json.loads((tmp_path / "peer" / "modbus.json").read_text())["master"]["slaves"]
    assert [s["deviceName"] for s in slaves] == list(site.devices)
    for slave in slaves:
        device = site.devices[slave["deviceName"]]
        assert device.spec.modbus is not None
        assert (slave["host"], slave["port"], slave["unitId"]) == ("127.0.0.1", 5020,
                                                                   device.spec.modbus.unit)  # fmt: skip
        # retries: the site's (default 0, since a dead unit's retries slow its live neighbours)
        assert slave["pollPeriod"] == 1000 and slave["timeout"] == 0.5 and slave["retries"] == 0
        by_tag = {t["tag"]: t for t in slave["timeseries"]}
        assert set(by_tag) == set(device.points)
        for name, point in device.points.items():
            assert isinstance(point, ModbusPoint)
            entry = by_tag[name]
            assert entry["functionCode"] == {"coil": 1, "discrete": 2, "holding": 3,
                                             "input": 4}[point.table]  # fmt: skip
            assert (entry["address"], entry["objectsCount"]) == (point.address,
                                                                 point.register_count)  # fmt: skip
            assert entry.get("bit") == point.bit
            assert entry.get("multiplier", 1.0) == point.scale
    # the meter's floats are CDAB: its slave takes that word order; the points that differ from
    # their slave's order (the pump's CDAB run-hour counter) are said, not hidden
    orders = {s["deviceName"]: s["wordOrder"] for s in slaves}
    assert orders["energy-meter-2"] == "LITTLE" and orders["booster-pump-1"] == "BIG"
    assert any("booster-pump-1.run_hours (CDAB)" in note for note in notes)


def test_platform_on_loopback_remote_configuration_off_doors_mapped(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, doors_yaml(3, 1883)))
    write_peer_config(site, tmp_path / "peer", broker_port=18830, doors_port=18831)
    main = json.loads((tmp_path / "peer" / "tb_gateway.json").read_text())
    assert main["thingsboard"]["host"] == "127.0.0.1" and main["thingsboard"]["port"] == 18830
    assert main["thingsboard"]["remoteConfiguration"] is False
    assert main["thingsboard"]["remoteShell"] is False
    assert [c["type"] for c in main["connectors"]] == ["mqtt"]  # no Modbus device, no connector
    doors = json.loads((tmp_path / "peer" / "mqtt.json").read_text())
    assert doors["broker"]["port"] == 18831
    topics = {m["topicFilter"]: m for m in doors["mapping"]}
    assert set(topics) == {f"doors/d{n}/{sub}" for n in range(3)
                           for sub in ("state", "event", "status")}  # fmt: skip
    state = topics["doors/d1/state"]["converter"]
    assert state["deviceInfo"]["deviceNameExpression"] == "door-1"
    assert state["timeseries"] == [{"type": "boolean", "key": "door_open", "value": "${open}"}]


def test_rates_and_jitter_come_from_the_polls_own_times() -> None:
    data = Delivered()
    data.polls["a"] = [10.0, 11.0, 12.02, 13.0, 15.0, 99.0]  # one poll missed at 14
    data.polls["b"] = [10.5]
    polls = polls_in(data, 10.0, 16.0)
    assert polls["a"] == [10.0, 11.0, 12.02, 13.0, 15.0]
    assert rates(polls, ["a", "b", "c"], 5.0) == [1.0, 0.2, 0.0]
    p50, p99, missed = jitter_ms(polls, 1.0)
    assert missed == 1
    assert round(p50) == 20 and round(p99) == 1000


def test_report_of_a_run_where_nothing_was_counted_prints_dashes_not_errors() -> None:
    """A tiny window on a busy machine can count no CPU tick and no delivered value."""
    row = {"gateway": "fgw", "devices": 4, "cpu_pct": 0.0, "rss_mb_start": 50.0,
           "rss_mb_end": 50.0, "rss_mb_peak": 50.0, "values_per_s": 0.0,
           "cpu_us_per_value": None, "device_rate_median": 0.0, "device_rate_min": 0.0,
           "jitter_p50_ms": float("nan"), "jitter_p99_ms": float("nan"), "missed_polls": 0,
           "load": "7.5"}  # fmt: skip
    text = markdown({"polling": [row, {**row, "gateway": "peer", "cpu_us_per_value": 0.0}]})
    assert "| 4 | Facility Gateway | 0.0 | – |" in text
    assert "ThingsBoard / ours **nan×**" in text
