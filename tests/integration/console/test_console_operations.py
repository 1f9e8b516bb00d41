"""The console's incident, energy and handover pages (static/incidents.js, energy.js, handover.js)
in Chromium, at a phone size in Chinese and a desk size in English. Their message catalogues:
tests/unit/gateway/console/test_console_operations.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import eventually, live_site
from tests.integration.console.test_console_browser import browser, open_console, shot  # noqa: F401 - the fixture
from tests.support import Broker


@pytest.mark.integration
@pytest.mark.timeout(150)
async def test_incident_on_a_phone_in_chinese(browser: Any, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    async with live_site(broker.port, tmp_path, locale="zh-CN") as live:
        page = await open_console(browser, live, "eddie", phone=True)
        await live.inject("lift-1", fault="entrapment")
        card = page.locator("#incident-strip [data-incident-id]")
        await card.wait_for(timeout=15_000)
        assert "电梯困人" in (await card.text_content() or "")
        # open incidents come before the alarm list
        first = await page.evaluate(
            "document.querySelector('#incident-strip').compareDocumentPosition("
            "document.querySelector('#alarm-list')) & Node.DOCUMENT_POSITION_FOLLOWING"
        )
        assert first
        tick = card.locator('li[data-step="intercom"] button.tick')
        box = await tick.bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44  # a thumb's size
        # the alarm page shows what to do now (the next step), the rest one tap away
        assert await card.locator("li.step").count() == 1
        assert "其余 4 个步骤" in (await card.locator("a.more-steps").text_content() or "")
        await tick.tap()
        await page.locator('#incident-strip li[data-step="intercom"]').wait_for(
            state="detached", timeout=10_000
        )
        await page.locator('#incident-strip li[data-step="call_maintainer"]').wait_for()
        # six minutes later on the gateway's clock the next step is overdue: red
        live.gateway.clock.wall = lambda: time.time() + 6 * 60
        late = page.locator('#incident-strip li[data-step="call_maintainer"].overdue')
        await late.wait_for(timeout=15_000)
        colour = await late.evaluate("el => getComputedStyle(el).backgroundColor")
        assert colour == "rgb(253, 232, 232)"
        assert "已超时" in (await late.text_content() or "")
        await shot(page, "incident-phone", tmp_path)
        # the incident's own page, with the close form; closing is refused while trapped
        await page.locator("#incident-strip a.title").first.click()
        await page.fill("#close-cause", "门锁回路故障")
        await page.click("#close-incident")
        await page.locator("#close-error").wait_for()
        await page.wait_for_function(
            "document.querySelector('#close-error').textContent.length > 0"
        )
        assert page.problems == []  # type: ignore[attr-defined]


@pytest.mark.integration
@pytest.mark.timeout(150)
async def test_energy_and_handover_at_a_desk_in_english(
    browser: Any,  # noqa: F811
    broker: Broker,
    tmp_path: Path,
) -> None:
    async with live_site(broker.port, tmp_path, locale="en") as live:
        page = await open_console(browser, live, "vera")
        await page.wait_for_function("document.documentElement.lang === 'en'")
        await live.inject("pump-2", fault="trip")
        await page.goto(live.url + "/#/energy")
        meter = page.locator('.card.energy[data-meter="meter-1"]')
        await meter.wait_for(timeout=15_000)
        assert "kWh this month" in (await meter.text_content() or "")
        assert await meter.locator("svg.energy-chart rect").count() >= 28
        await shot(page, "energy-desk", tmp_path)

        async def pump_raised() -> bool:  # the trip reaches the journal first (a loaded machine)
            return str(live.gateway.book.get("pump-2.pump_fault").state) != "normal"

        await eventually(pump_raised, timeout=60)
        await page.goto(live.url + "/#/handover")
        await page.locator('[data-part="raised"]').wait_for(timeout=15_000)
        assert "Alarms raised in the shift" in (await page.text_content("#view") or "")
        assert "pump-2.pump_fault" in (await page.text_content('[data-part="raised"]') or "")
        await shot(page, "handover-desk", tmp_path)
        await page.goto(live.url + "/#/incidents")
        await page.locator("#no-incidents").wait_for(timeout=10_000)
        assert await page.locator("#new-drill").count() == 0  # a viewer starts no drill
        assert page.problems == []  # type: ignore[attr-defined]
