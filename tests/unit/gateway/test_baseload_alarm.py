"""The night baseload alarm (gateway/baseload_alarm.py) in a gateway that is not started.

The history is written through the store's own write path before the gateway opens it; the
component is driven with an injected wall clock (`evaluate_due(wall)`, `on_tick`). What the
alarm does on the wire, with a broker and the simulators, is tests/test_baseload_integration.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bench.baseload import minute_readings, store_history
from config.site import load_site
from gateway.baseload import night
from gateway.baseload_alarm import LEDGER, BaseloadAlarm
from gateway.maintenance import Maintenance
from gateway.service import Gateway
from ground.model import DeviceStatus, Quality, Reading

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 14)  # the first night judged; its reference nights are the 28 before
SETTLE = 300.0

SITE = """
site: {{id: baseload, timezone: Asia/Shanghai, locale: zh-CN}}
storage: {{path: ./state}}
console: {{enabled: false}}
modbus: [{{id: b, transport: tcp, host: 127.0.0.1, port: 1502, timeout: 1s}}]
devices:
  - {{id: meter-1, template: energy_meter, modbus: {{bus: b, unit: 1}}, poll: 1s,
     baseload_rise: {options}}}
  - {{id: meter-2, template: energy_meter, modbus: {{bus: b, unit: 2}}, poll: 1s}}
  - {{id: lift-1, template: lift, modbus: {{bus: b, unit: 3}}, poll: 1s, depends_on: [meter-1]}}
"""

NIGHT_KW = {DAY: 6.0, DAY + timedelta(days=1): 7.0, DAY + timedelta(days=2): 4.4}
"""The nights judged: risen, risen higher, back within 1.3 x 4.0; the night after has a gap."""
GAPPED = DAY + timedelta(days=3)


def kw(_meter: str, ts: float) -> float:
    local = datetime.fromtimestamp(ts, SHANGHAI)
    return 30.0 if local.hour >= 5 else NIGHT_KW.get(local.date(), 4.0)


def at(day: date, seconds_after_five: float = SETTLE) -> float:
    """Wall time `seconds_after_five` after 05:00 site time of `day`."""
    return night(day, SHANGHAI).end + seconds_after_five


@pytest.fixture(scope="module")
def written_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site and its 32 days of history, written once for the module (the slow part)."""
    return write_site(
        tmp_path_factory.mktemp("baseload"), "{ratio: 1.3, min_kw: 1, ticket: normal}"
    )


@pytest.fixture
def site_path(tmp_path: Path, written_once: Path) -> Path:
    """A copy of `written_once` of the test's own."""
    shutil.copytree(written_once.parent / "state", tmp_path / "state")
    path = tmp_path / "site.yaml"
    path.write_text(written_once.read_text())
    return path


def write_site(folder: Path, options: str) -> Path:
    """The site file, and 32 days of both meters' history (a gap in the last night)."""
    path = folder / "site.yaml"
    path.write_text(SITE.format(options=options))
    storage = folder / "state"
    storage.mkdir()
    gap = night(GAPPED, SHANGHAI)
    first = DAY - timedelta(days=28)
    readings = minute_readings(["meter-1", "meter-2"], first, 28 + 4, kw)
    store_history(storage, (r for r in readings if not gap.start <= r.ts < gap.start + 3600))
    return path


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gateway(site_path: Path) -> Iterator[Gateway]:
    gw = Gateway(load_site(site_path), wall=Clock(at(DAY)))
    try:
        yield gw
    finally:
        gw.history.close()
        gw.store.close()


def component(gw: Gateway) -> BaseloadAlarm:
    (found,) = [c for c in gw.components if isinstance(c, BaseloadAlarm)]
    return found


def tickets(gw: Gateway) -> list[dict[str, Any]]:
    (maintenance,) = [c for c in gw.components if isinstance(c, Maintenance)]
    return maintenance.list_tickets(device="meter-1")


def journal(gw: Gateway) -> list[tuple[str, str]]:
    return [(row["from"], row["to"]) for row in gw.journal("meter-1.baseload_rise")]


async def test_a_risen_night_raises_a_low_alarm_naming_the_meter_and_the_figures(
    gateway: Gateway,
) -> None:
    alarm = component(gateway)
    (verdict,) = await alarm.evaluate_due(at(DAY))
    assert (verdict.meter, verdict.night, verdict.risen) == ("meter-1", "2026-11-14", True)
    raised = gateway.book.get("meter-1.baseload_rise").payload()
    assert (raised["state"], raised["priority"], raised["life_safety"]) == (
        "active_unack",
        "low",
        False,
    )
    assert raised["value"] == 6.0
    assert raised["message_en"] == (
        "Night baseload up at meter-1: 6.0 kW on the night of 2026-11-14, 1.50× the 4.0 kW of "
        "the four weeks before"
    )
    assert raised["message_zh"] == (
        "meter-1 夜间基础负荷偏高: 2026-11-14 夜间 6.0 kW, 为前四周 (4.0 kW) 的 1.50 倍"
    )
    assert raised["message"] == raised["message_zh"]  # the site's locale
    assert gateway.book.rule("meter-1.baseload_rise").advice is not None
    # `ticket: normal`: one corrective ticket for the episode, as any rule with `ticket:`
    (ticket,) = tickets(gateway)
    assert (ticket["kind"], ticket["urgency"]) == ("corrective", "normal")
    # meter-2 has not opted in: it has no such alarm
    with pytest.raises(KeyError):
        gateway.book.get("meter-2.baseload_rise")


async def test_one_verdict_per_night_even_across_a_restart(gateway: Gateway) -> None:
    alarm = component(gateway)
    assert len(await alarm.evaluate_due(at(DAY))) == 1
    assert await alarm.evaluate_due(at(DAY, 3600)) == []  # the same night: judged already
    ledger = json.loads((gateway.site.storage_dir / LEDGER).read_text())
    assert ledger["meter-1"]["night"] == "2026-11-14" and ledger["meter-1"]["risen"] is True
    assert (gateway.site.storage_dir / LEDGER).stat().st_mode & 0o777 == 0o600
    again = BaseloadAlarm(
        gateway.site, gateway.history, gateway.system_condition
    )  # a restart's: the ledger says it is done
    assert await again.evaluate_due(at(DAY, 7200)) == []
    assert journal(gateway) == [("normal", "active_unack")]


async def test_a_second_risen_night_rewords_then_a_night_within_clears(gateway: Gateway) -> None:
    alarm = component(gateway)
    await alarm.evaluate_due(at(DAY))
    await alarm.evaluate_due(at(DAY + timedelta(days=1)))
    still = gateway.book.get("meter-1.baseload_rise").payload()
    assert still["state"] == "active_unack" and still["episode"] == 1
    assert "7.0 kW" in still["message_en"] and "2026-11-15" in still["message_en"]
    (cleared,) = await alarm.evaluate_due(at(DAY + timedelta(days=2)))
    assert cleared.risen is False
    back = gateway.book.get("meter-1.baseload_rise").payload()
    assert back["state"] == "rtn_unack"
    assert "7.0 kW" in back["message_en"]  # the message keeps what happened
    assert journal(gateway) == [
        ("normal", "active_unack"),
        ("active_unack", "active_unack"),  # reworded with the second night's figures
        ("active_unack", "rtn_unack"),
    ]
    assert len(tickets(gateway)) == 1  # one episode, one ticket


async def test_a_night_with_gaps_leaves_the_alarm_as_it_is(gateway: Gateway) -> None:
    alarm = component(gateway)
    await alarm.evaluate_due(at(DAY))
    (verdict,) = await alarm.evaluate_due(at(GAPPED))  # nights between: not judged, stale
    assert (verdict.night, verdict.risen, verdict.why) == ("2026-11-17", None, "the night has gaps")
    assert gateway.book.get("meter-1.baseload_rise").payload()["state"] == "active_unack"
    assert await alarm.evaluate_due(at(GAPPED, 600)) == []  # no verdict is still judged once


async def test_neither_suppressed_by_the_meter_nor_holding_back_a_life_safety_alarm(
    gateway: Gateway,
) -> None:
    """The meter goes silent and its breaker trips: its comm_loss comes, the baseload alarm
    stays what it is (it judged stored good readings), and the lift it feeds still raises an
    entrapment as a life-safety alarm."""
    alarm = component(gateway)
    await alarm.evaluate_due(at(DAY))
    now = at(DAY, 10)
    gateway.readings([Reading("meter-1", "breaker_tripped", True, Quality.GOOD, now)])
    gateway.readings(
        [
            Reading("lift-1", p, v, Quality.GOOD, now)
            for p, v in (("alarm_button", True), ("moving", False), ("door_open", False))
        ]
    )
    gateway.process_queued()
    trip = gateway.book.get("meter-1.breaker_trip").payload()
    entrapment = gateway.book.get("lift-1.entrapment").payload()
    assert (trip["state"], trip["life_safety"]) == ("active_unack", True)
    assert (entrapment["state"], entrapment["life_safety"]) == ("active_unack", True)
    assert entrapment["during"] == "meter-1.breaker_trip"
    gateway.device_status(DeviceStatus("meter-1", online=False, ts=now + 30))
    gateway.process_queued()
    assert gateway.book.get("meter-1.comm_loss").payload()["state"] == "active_unack"
    assert gateway.book.get("meter-1.baseload_rise").payload()["state"] == "active_unack"


async def test_the_tick_starts_the_evaluation_once_the_night_has_settled(
    gateway: Gateway,
) -> None:
    alarm = component(gateway)
    task = asyncio.create_task(alarm.run(), name="test.baseload")
    try:
        alarm.on_tick(at(DAY, -1.0), 0.0)  # before the settle: the night before, within
        await until(lambda: alarm.ledger.last("meter-1") == "2026-11-13")
        assert gateway.book.get("meter-1.baseload_rise").payload()["state"] == "normal"
        alarm.on_tick(at(DAY), 1.0)
        await until(lambda: alarm.ledger.last("meter-1") == "2026-11-14")
        assert gateway.book.get("meter-1.baseload_rise").payload()["state"] == "active_unack"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await alarm.close()


async def test_an_unreadable_history_is_tried_again_and_raises_nothing(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def minutes(self, *_: Any) -> Sequence[tuple[Any, ...]]:
            raise sqlite3.OperationalError("disk I/O error")

    alarm = component(gateway)
    alarm.history = Broken()
    assert await alarm.evaluate_due(at(DAY)) == []
    assert await alarm.evaluate_due(at(DAY, 700)) == []
    assert alarm.failing == "disk I/O error"
    assert [r.message for r in caplog.records if r.name == "fgw.baseload"].count(
        "night baseload of 2026-11-14 not judged: disk I/O error"
    ) == 1  # logged once, not at every try
    assert alarm.ledger.last("meter-1") is None
    alarm.history = gateway.history  # the disk answers again
    assert len(await alarm.evaluate_due(at(DAY, 1400))) == 1
    assert alarm.failing is None


def test_a_site_without_baseload_rise_has_no_component_and_no_alarm(tmp_path: Path) -> None:
    gw = Gateway(load_site(write_site(tmp_path, "false")))
    try:
        assert not [c for c in gw.components if isinstance(c, BaseloadAlarm)]
        with pytest.raises(KeyError):
            gw.book.get("meter-1.baseload_rise")
    finally:
        gw.history.close()
        gw.store.close()


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait for a condition (the evaluation runs in a worker thread), never for a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.01)


async def test_the_energy_report_gives_the_limit_and_the_last_night(gateway: Gateway) -> None:
    from gateway.reports.energy import energy_report, render_text

    before = energy_report(gateway.site, (2026, 11), gateway.history, at(DAY))
    watch = {m["meter"]: m["baseload_rise"] for m in before["meters"]}
    assert watch["meter-2"] is None  # not opted in
    assert watch["meter-1"] == {
        "ratio": 1.3,
        "min_kw": 1.0,
        "min_nights": 14,
        "priority": "low",
        "last": None,
    }
    assert "night baseload alarm above 1.3x the 4 weeks before: no night judged yet" in (
        render_text(before)
    )
    await component(gateway).evaluate_due(at(DAY))
    after = energy_report(gateway.site, (2026, 11), gateway.history, at(DAY))
    (meter,) = [m for m in after["meters"] if m["meter"] == "meter-1"]
    assert meter["baseload_rise"]["last"] == {
        "night": "2026-11-14",
        "night_kw": 6.0,
        "reference_kw": 4.0,
        "nights": 28,
        "risen": True,
        "why": "",
    }
    assert (
        "night baseload alarm above 1.3x the 4 weeks before: night of 2026-11-14 6.0 kW against "
        "4.0 kW, RISEN" in render_text(after)
    )
