"""A real gateway process SIGKILLed while a notification is being retried (PRODUCT §9).

The simulators raise a fire and then a breaker trip; a DingTalk robot (signed) is down for the
second, a WeCom robot stays up. The gateway is killed mid-retry and started again: the pending
message still arrives, once; the one delivered before the kill is not sent again; the working
channel was never held back. Prints the delivery delay after the robot came back (the figure in
docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from config.site import load_site
from simulators.runner import SiteSimulator
from tests.notify_support import RobotReceiver, robot_receiver
from tests.reliability_support import until
from tests.support import ROOT, free_port

FIRE, TRIP = "fire-1.fire_alarm", "meter-1.breaker_trip"
OUTAGE = float(os.environ.get("FGW_NOTIFY_OUTAGE", "0"))
"""Seconds the robot stays down at least (a longer outage for the measured figure)."""

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150 + OUTAGE)]

SITE = """
site: {{id: notify-kill, name: 河畔花园, timezone: UTC, locale: zh-CN}}
storage: {{path: ./state}}
console: {{enabled: false, public_url: "https://fgw.riverside.example"}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
modbus:
  - {{id: plant-room, transport: tcp, host: 127.0.0.1, port: {modbus}, timeout: 300ms, retries: 0}}
devices:
  - {{id: meter-1, template: energy_meter, modbus: {{bus: plant-room, unit: 10}}, poll: 200ms}}
  - {{id: fire-1, template: fire_panel, modbus: {{bus: plant-room, unit: 30}}, poll: 200ms}}
notify:
  channels:
    - {{id: duty-ding, kind: dingtalk, url_file: ding.url, secret_file: ding.secret,
       mention_mobiles: ["13800000001"]}}
    - {{id: ops-wx, kind: wecom, url_file: wx.url}}
  escalation:
    critical: {{after: 0s, notify: [duty-ding, ops-wx], repeat: 30m}}
"""


def start_gateway(site_path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", str(site_path)],
            cwd=ROOT, stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


def notification(db_path: Path, channel: str, alarm: str) -> dict[str, Any] | None:
    if not db_path.exists():
        return None
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute(
            "SELECT state, attempts, created FROM notifications WHERE channel = ? AND alarm_id = ?",
            (channel, alarm),
        ).fetchone()
    except sqlite3.OperationalError:
        return None  # not created yet
    finally:
        db.close()
    return None if row is None else {"state": row[0], "attempts": row[1], "created": row[2]}


def about(robot: RobotReceiver, alarm: str) -> list[dict[str, Any]]:
    with robot.lock:
        return [b for b in robot.accepted if alarm in json.dumps(b, ensure_ascii=False)]


async def test_sigkill_mid_retry_still_delivers_once(tmp_path: Path) -> None:
    with robot_receiver("dingtalk", secret="SECding") as ding, robot_receiver("wecom") as wx:
        (tmp_path / "ding.url").write_text(ding.url)
        (tmp_path / "ding.secret").write_text("SECding\n")
        (tmp_path / "wx.url").write_text(wx.url)
        path = tmp_path / "site.yaml"
        path.write_text(SITE.format(mqtt=free_port(), modbus=free_port()))
        site = load_site(path)
        db = site.storage_dir / "gateway.sqlite3"
        log = tmp_path / "gateway.log"
        first = second = None
        try:
            async with SiteSimulator(site, mqtt=False, seed=3) as sims:
                first = start_gateway(path, log)
                sims.devices["fire-1"].inject("fire", zone=4)
                await until(lambda: about(ding, FIRE) and about(wx, FIRE), 30, "fire delivered")
                await until(
                    lambda: (notification(db, "duty-ding", FIRE) or {}).get("state") == "sent",
                    10, "fire marked sent",
                )  # fmt: skip

                ding.down = True  # DingTalk's robot answers 503 from now on
                sims.devices["meter-1"].inject("breaker_trip")
                await until(lambda: about(wx, TRIP), 30, "the working channel not held back")
                await until(
                    lambda: (notification(db, "duty-ding", TRIP) or {}).get("attempts", 0) >= 3,
                    30, "retrying",
                )  # fmt: skip
                first.send_signal(signal.SIGKILL)
                assert first.wait(10) == -signal.SIGKILL
                killed = notification(db, "duty-ding", TRIP)
                assert killed is not None and killed["state"] == "pending"

                second = start_gateway(path, log)
                tried = ding.attempts
                await until(lambda: ding.attempts > tried, 70, "retried after the restart")
                await until(lambda: time.time() - killed["created"] >= OUTAGE, OUTAGE + 5, "outage")
                recovered = time.time()
                ding.down = False
                await until(lambda: about(ding, TRIP), 70, "delivered after the outage")
                delivered = ding.accepted_at[-1]
                await until(
                    lambda: (notification(db, "duty-ding", TRIP) or {}).get("state") == "sent",
                    10, "marked sent",
                )  # fmt: skip
                second.send_signal(signal.SIGTERM)
                assert second.wait(30) == 0
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if os.environ.get("FGW_TEST_VERBOSE"):
                print(log.read_text()[-3000:])

        assert ding.refused == [] and wx.refused == []  # body and signature as documented
        assert len(about(ding, FIRE)) == 1 and len(about(wx, FIRE)) == 1  # not re-sent
        assert len(about(ding, TRIP)) == 1 and len(about(wx, TRIP)) == 1  # arrived once
        (trip,) = about(ding, TRIP)
        assert trip["at"]["atMobiles"] == ["13800000001"]
        assert (
            "https://fgw.riverside.example/#/alarm/meter-1.breaker_trip"
            in (trip["text"]["content"])
        )
        assert "SECding" not in log.read_text()
        outage = recovered - killed["created"]
        print(
            f"\nFIGURE notify: robot down {outage:.1f}s with a SIGKILL mid-retry "
            f"({killed['attempts']} tries before it); delivered {delivered - recovered:.1f}s after "
            f"the robot came back, once; duplicates 0"
        )
