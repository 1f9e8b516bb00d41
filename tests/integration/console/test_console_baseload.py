"""The night baseload alarm in the console, in Chromium: the alarm on the Alarms page in the
site's language, and the meter's limit and last night on the Energy page.

The four weeks before the latest night (and that night, risen) are written into the history file
before the gateway starts; the gateway runs on the real clock and judges that night at once.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bench.baseload import minute_readings, store_history
from gateway.baseload import latest_night, night
from tests.api_support import eventually, live_site
from tests.integration.console.test_console_browser import browser, open_console, shot  # noqa: F401 - the fixture
from tests.support import Broker

ZONE = ZoneInfo("Asia/Shanghai")  # the test site's zone (tests/e2e.py)


def risen_history(storage: Path) -> str:
    """Nights at 4 kW, the latest one (judged at the start) at 6 kW; returns its date."""
    last = latest_night(time.time(), ZONE, 300.0)
    end = night(last, ZONE).end

    def kw(_meter: str, ts: float) -> float:
        local = datetime.fromtimestamp(ts, ZONE)
        return 30.0 if local.hour >= 5 else (6.0 if local.date() == last else 4.0)

    storage.mkdir(parents=True)
    readings = minute_readings(["meter-1"], last - timedelta(days=28), 29, kw)
    store_history(storage, (r for r in readings if r.ts < end))
    return last.isoformat()


@pytest.mark.integration
@pytest.mark.timeout(150)
async def test_a_risen_night_on_the_alarms_and_energy_pages(
    browser: Any,  # noqa: F811
    broker: Broker,
    tmp_path: Path,
) -> None:
    day = risen_history(tmp_path / "state")

    def opt_in(text: str) -> str:
        return text.replace("{id: meter-1, ", "{id: meter-1, baseload_rise: {min_kw: 1}, ", 1)

    async with live_site(broker.port, tmp_path, locale="zh-CN", edit=opt_in) as live:
        raised = await live.watcher.wait_alarm("meter-1", "baseload_rise", "active_unack", 20)
        assert raised["message"].startswith("meter-1 夜间基础负荷偏高")

        async def ledger_saved() -> bool:  # written after the alarm's commit
            return (live.site.storage_dir / "baseload.json").exists()

        await eventually(ledger_saved)
        page = await open_console(browser, live, "vera")
        alarm = page.locator('[data-alarm-id="meter-1.baseload_rise"]')
        await alarm.wait_for(timeout=15_000)
        assert f"{day} 夜间 6.0 kW" in (await alarm.text_content() or "")
        await page.goto(live.url + "/#/energy")
        line = page.locator('.card.energy[data-meter="meter-1"] p.baseload.risen')
        await line.wait_for(timeout=15_000)
        text = await line.text_content() or ""
        assert "夜间基荷告警: 高于前四周的 1.3 倍" in text
        assert f"{day} 夜间: 6.0 kW, 前四周 4.0 kW" in text
        await shot(page, "energy-baseload", tmp_path)
        assert page.problems == []  # type: ignore[attr-defined]
