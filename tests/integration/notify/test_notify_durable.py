"""Durable notifications through a webhook robot on loopback: moot after an acknowledgement, given
up after `give_up_after`, and neither ended nor stalled by wall-clock jumps.

The state machine over transitions, restarts and crashes: tests/unit/gateway/notify/test_notify_durable.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.site import load_site
from gateway.notify.component import DONE, IDLE, NotifyComponent
from gateway.service import Gateway
from ground.backoff import Backoff
from ground.model import Quality, Reading
from tests.support import free_port
from tests.unit.gateway.notify.test_notify_durable import FIRE, Clock, rows

ROBOT_SITE = """
site: {{id: durable-robot, name: 河畔花园, locale: zh-CN}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false, public_url: "https://fgw.example/"}}
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - {{id: fire-1, template: fire_panel, modbus: {{bus: bus, unit: 30}}}}
notify:
  channels:
    - {{id: wx, kind: wecom, url_file: wx.url, give_up_after: 1m}}
  escalation:
    critical: {{after: 0s, notify: [wx], repeat: 30m}}
"""


@pytest.fixture
def robot_gateway(tmp_path: Path) -> Any:
    from tests.notify_support import robot_receiver

    with robot_receiver("wecom") as robot:
        (tmp_path / "wx.url").write_text(robot.url)
        path = tmp_path / "site.yaml"
        path.write_text(ROBOT_SITE.format(mqtt=free_port(), modbus=free_port()))
        clock = Clock()
        gw = Gateway(load_site(path), monotonic=clock.monotonic, wall=clock.wall)
        notify = next(c for c in gw.components if isinstance(c, NotifyComponent))
        try:
            yield gw, notify, robot, clock
        finally:
            gw.history.close()
            gw.store.close()


async def test_acknowledged_before_delivery_is_moot_and_never_sent(robot_gateway: Any) -> None:
    gw, notify, robot, clock = robot_gateway
    backoff = Backoff(initial=1.0, cap=60.0)
    try:
        robot.down = True
        gw.readings([Reading("fire-1", "fire", True, Quality.GOOD, clock.wall())])
        gw.process_queued()
        assert (await notify.attempt("wx", backoff))[0] == "failed"
        gw.acknowledge(FIRE, "ann", "on my way")
        robot.down = False
        clock.mono += 120.0
        assert (await notify.attempt("wx", backoff)) == (IDLE, 0.0)
        assert robot.accepted == []
        assert rows(gw.store.connection) == {("wx", FIRE, 1, 0, 0): "moot"}
    finally:
        await notify.close()


async def test_given_up_after_give_up_after_counted_logged_once_and_shown(
    robot_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.api.metrics import _notify, _Text

    gw, notify, robot, clock = robot_gateway
    backoff = Backoff(initial=1.0, cap=60.0)
    try:
        robot.down = True
        gw.readings([Reading("fire-1", "fire", True, Quality.GOOD, clock.wall())])
        gw.process_queued()
        for _ in range(3):
            assert (await notify.attempt("wx", backoff))[0] == "failed"
            clock.mono += 20.0
        clock.mono += 1.0  # 61 s after it fell due: past give_up_after (1m)
        assert (await notify.attempt("wx", backoff)) == (DONE, 0.0)
        assert (await notify.attempt("wx", backoff)) == (IDLE, 0.0)
        assert rows(gw.store.connection) == {("wx", FIRE, 1, 0, 0): "given_up"}

        assert [r.message for r in caplog.records if "gave up" in r.message] == [
            f"notify wx: gave up on {FIRE} (episode 1) after 3 tries over 61s: HTTP 503"
        ]
        check = gw.health()["checks"]["notify"]
        assert check["status"] == "degraded" and check["given_up"] == 1
        assert "given up: 1" in check["detail"]
        out = _Text()
        _notify(out, gw.context)
        assert 'fgw_notify_given_up{channel="wx"} 1' in out.lines
        assert 'fgw_notify_channel_failing{channel="wx"} 1' in out.lines
    finally:
        await notify.close()


async def test_wall_clock_jumps_neither_end_nor_stall_a_notification(robot_gateway: Any) -> None:
    gw, notify, robot, clock = robot_gateway
    backoff = Backoff(initial=1.0, cap=60.0)
    try:
        robot.down = True
        gw.readings([Reading("fire-1", "fire", True, Quality.GOOD, clock.wall())])
        gw.process_queued()
        clock.mono += 2 * 86_400.0  # NTP sets a clock forward by two days: tried, not given up
        assert (await notify.attempt("wx", backoff))[0] == "failed"
        clock.mono -= 3 * 86_400.0  # and back by three: the retry is not two days away
        robot.down = False
        assert (await notify.attempt("wx", backoff)) == (DONE, 0.0)
        assert rows(gw.store.connection) == {("wx", FIRE, 1, 0, 0): "sent"}
        assert len(robot.accepted) == 1
    finally:
        await notify.close()
