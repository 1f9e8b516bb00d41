"""The peer's config is generated from the same site file: same devices, registers, types, polls.

Pure: a site file is loaded and turned into the peer's JSON, figures into tables; nothing runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.peer_config import write_peer_config
from bench.peer_converter import converter_site, line_demand
from bench.peer_measure import jitter_ms, polls_in, rates
from bench.peer_report import markdown
from bench.peer_uplink import Delivered, answered
from bench.peers import PLANS, doors_yaml
from bench.sites import estate_yaml
from config.models import ModbusPoint
from config.site import load_site
from drivers.modbus.budget import HEADROOM


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


def test_the_converter_site_puts_every_unit_behind_one_connection_in_both_gateways(
    tmp_path: Path,
) -> None:
    text, silent = converter_site(8, mqtt_port=1883, modbus_port=5020, baudrate=115200)
    site = load_site(_site(tmp_path, text))
    (bus,) = site.buses.values()
    assert (bus.transport, bus.max_connections, bus.sim.converter, bus.sim.connections) == (
        "tcp", 1, True, 1,
    )  # fmt: skip
    units = [d.spec.modbus.unit for d in site.devices.values() if d.spec.modbus is not None]
    assert units == list(range(1, 10)) and silent == "booster-pump-5"  # the middle one
    notes = write_peer_config(site, tmp_path / "peer", broker_port=18830)
    slaves = json.loads((tmp_path / "peer" / "modbus.json").read_text())["master"]["slaves"]
    # the peer keys its connections by host:port: one endpoint, one connection, as the converter allows
    assert {(s["host"], s["port"], s["type"], s["method"]) for s in slaves} == {
        ("127.0.0.1", 5020, "tcp", "socket")
    }
    assert [s["unitId"] for s in slaves] == units
    assert not any("max_connections" in note for note in notes)


def test_a_transparent_converter_is_rtu_framing_over_tcp_in_the_peer(tmp_path: Path) -> None:
    text = estate_yaml(2, mqtt_port=1883, modbus_ports=[5020])
    site = load_site(_site(tmp_path, text.replace("transport: tcp", "transport: rtu-over-tcp")))
    assert next(iter(site.buses.values())).transport == "rtu-over-tcp"
    write_peer_config(site, tmp_path / "peer", broker_port=18830)
    slaves = json.loads((tmp_path / "peer" / "modbus.json").read_text())["master"]["slaves"]
    assert {(s["type"], s["method"]) for s in slaves} == {("tcp", "rtu")}


def test_more_connections_than_the_peer_can_open_are_said(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, estate_yaml(4, mqtt_port=1883, modbus_ports=[5020],
                                                 max_connections=3)))  # fmt: skip
    notes = write_peer_config(site, tmp_path / "peer", broker_port=18830)
    assert any("bus-1: max_connections 3" in note and "one connection per host:port" in note
               for note in notes)  # fmt: skip


def test_the_converter_plans_line_carries_both_gateways_polls_of_the_live_units(
    tmp_path: Path,
) -> None:
    """The scenario compares what a silent unit does to its neighbours, not the request counts:
    at the plans' baud rate both gateways' polls of the live units fit the line."""
    for plan in PLANS.values():
        text, silent = converter_site(plan.converter_live, mqtt_port=1883, modbus_port=5020,
                                      baudrate=plan.converter_baud)  # fmt: skip
        site = load_site(_site(tmp_path, text))
        demand = line_demand(site, [d for d in site.devices if d != silent])
        assert demand.peer_requests == 10 * plan.converter_live  # a request per point
        assert demand.fgw_requests < demand.peer_requests  # merged reads
        assert demand.fgw_s < demand.peer_s <= HEADROOM, demand


def test_a_readings_message_marking_every_point_stale_is_not_a_poll() -> None:
    values = {"pressure": None, "running": None}
    assert not answered({"values": values, "quality": {"pressure": "stale", "running": "stale"}})
    assert answered({"values": {**values, "pressure": 4.2}, "quality": {"running": "bad"}})
    assert answered({"values": {"pressure": 4.2}})


def test_the_converter_report_shows_each_unit_before_and_after_one_went_silent() -> None:
    row = {"gateway": "fgw", "units": 3, "dead": "energy-meter-2", "transport": "tcp",
           "baudrate": 115200, "line_s_per_s": 0.03, "requests_per_s": 4.0,
           "all_live_rates": {"booster-pump-1": 1.0, "energy-meter-2": 1.0, "lift-3": 1.0},
           "unit_rates": {"booster-pump-1": 1.0, "lift-3": 0.98}, "live_rate_median": 0.99,
           "live_rate_min": 0.98, "live_at_95pct": 2, "live": 2, "dead_rate": 0.0,
           "load": "1.20"}  # fmt: skip
    peer = {**row, "gateway": "peer", "unit_rates": {"booster-pump-1": 0.6, "lift-3": 0.55},
            "live_at_95pct": 0}  # fmt: skip
    text = markdown({"converter": [row, peer]})
    assert "| Facility Gateway | Modbus TCP | 3 | 0.03 s/s at 115,200 baud (4 req/s) |" in text
    assert "| 2 of 2 |" in text and "| 0 of 2 |" in text
    assert "| lift-3 | 1.00 → 0.98 | 1.00 → 0.55 |" in text
    assert "| energy-meter-2 (silent) | 1.00 → 0.00 | 1.00 → 0.00 |" in text
