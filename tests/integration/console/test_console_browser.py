"""The console in a real headless Chromium (Debian's, driven by Playwright; no browser download):
log in, watch an injected fire arrive live, acknowledge it, a viewer who cannot, both languages,
the ticket board, devices, assets, and a trend plot with points.

The screenshots it takes are the ones `docs/console.md` shows: run it with
`FGW_UPDATE_SCREENSHOTS=1` to refresh `docs/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright import async_api as playwright_api

from tests.api_support import PASSWORD, LiveSite, live_site
from tests.support import ROOT, Broker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
DOCS_SHOTS = ROOT / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("FGW_UPDATE_SCREENSHOTS") == "1"
"""Screenshots go to docs/ only when asked: a test run must not leave the work tree modified."""
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.fail("chromium is missing: run the README's test command to install it")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        await browser.close()


async def open_console(browser: Any, live: LiveSite, user: str, phone: bool = False) -> Any:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844} if phone else {"width": 1280, "height": 860},
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    # refused requests (401 before login, the viewer's 403) are logged by the browser itself
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    page.problems = problems  # type: ignore[attr-defined]
    await page.goto(live.url + "/")
    await page.fill("#login-name", user)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#alarm-list")
    await page.wait_for_selector("#live.on")  # the live stream is open
    return page


async def shot(page: Any, name: str, folder: Path) -> None:
    target = DOCS_SHOTS if UPDATE_DOCS else folder
    target.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target / f"{name}.png"), full_page=False)
    assert (target / f"{name}.png").stat().st_size > 5000  # a real picture, not a blank


async def test_console_end_to_end(browser: Any, broker: Broker, tmp_path: Path) -> None:
    async with live_site(broker.port, tmp_path, locale="zh-CN") as live:
        engineer = await open_console(browser, live, "eddie")
        assert await engineer.text_content("nav a[data-view=alarms]") == "报警"
        await engineer.evaluate("window.__sameDocument = true")

        # a fire arrives on the open page, without reload, critical and flashing
        await live.inject("fire-1", fault="fire", zone=3)
        await live.inject("pump-2", fault="trip")
        card = engineer.locator('[data-alarm-id="fire-1.fire_alarm"]')
        await card.wait_for(timeout=15_000)
        assert await card.get_attribute("data-priority") == "critical"
        assert await card.get_attribute("data-state") == "active_unack"
        assert await engineer.evaluate("window.__sameDocument") is True
        assert await engineer.locator("#banner").is_visible()
        assert "fire-1" in (await engineer.text_content("#banner") or "")
        await engineer.locator('[data-alarm-id="pump-2.pump_fault"]').wait_for(timeout=15_000)
        order = await engineer.eval_on_selector_all(
            "#alarm-list [data-alarm-id]", "els => els.map(e => e.dataset.priority)"
        )
        assert order[0] == "critical"
        await shot(engineer, "alarms", tmp_path)

        # a viewer on a phone sees it too, but cannot acknowledge
        viewer = await open_console(browser, live, "vera", phone=True)
        await viewer.locator('[data-alarm-id="fire-1.fire_alarm"]').wait_for()
        assert await viewer.locator('[data-alarm-id="fire-1.fire_alarm"] .act-ack').count() == 0
        refused = await viewer.evaluate(
            """async () => {
                const csrf = document.cookie.split('; ').find(c => c.startsWith('fgw_csrf='))
                    .slice(9);
                const r = await fetch('/api/v1/alarms/fire-1.fire_alarm/ack', {method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                    body: JSON.stringify({comment: 'not mine to ack'})});
                return [r.status, (await r.json()).error.message];
            }"""
        )
        assert refused[0] == 403 and "engineer" in refused[1]
        await shot(viewer, "alarms-phone", tmp_path)

        # the engineer acknowledges with a comment; the state changes on both screens
        await card.locator(".act-ack").click()
        await engineer.fill("#ack-comment", "3区复位，烤面包冒烟 / zone 3: burnt toast")
        await engineer.click("#dialog-submit")
        await engineer.locator(
            '[data-alarm-id="fire-1.fire_alarm"][data-state="active_ack"]'
        ).wait_for()
        await viewer.locator(
            '[data-alarm-id="fire-1.fire_alarm"][data-state="active_ack"]'
        ).wait_for(timeout=10_000)

        # English and back
        await engineer.click("#lang")
        await engineer.locator('nav a[data-view=alarms]:text-is("Alarms")').wait_for()
        assert "Acknowledged".lower() in (await card.text_content() or "").lower()
        await shot(engineer, "alarms-en", tmp_path)
        await engineer.click("#lang")
        await engineer.locator('nav a[data-view=alarms]:text-is("报警")').wait_for()

        # the alarm's journal
        await engineer.goto(live.url + "/#/alarm/fire-1.fire_alarm")
        rows = engineer.locator("#journal tbody tr")
        await rows.nth(1).wait_for()
        assert "eddie" in (await engineer.text_content("#journal") or "")
        await shot(engineer, "alarm-detail", tmp_path)

        # the fire's emergency ticket: assign it on the board
        await engineer.goto(live.url + "/#/tickets")
        ticket = engineer.locator('[data-status="open"] .ticket', has_text="fire-1")
        await ticket.wait_for(timeout=10_000)
        await ticket.locator(".act-transition").click()
        await engineer.select_option("#transition-to", "assigned")
        await engineer.fill("#transition-assignee", "li.wei")
        await engineer.fill("#transition-note", "值班电工前往消防控制室")
        await engineer.click("#dialog-submit")
        await engineer.locator('[data-status="assigned"] .ticket', has_text="fire-1").wait_for()
        assert "li.wei" in (await engineer.text_content('[data-status="assigned"]') or "")
        await shot(engineer, "tickets", tmp_path)

        # devices with health, one device's readings, the asset ledger
        await engineer.goto(live.url + "/#/devices")
        await engineer.locator('[data-device-id="pump-1"] .dot.on').wait_for()
        await shot(engineer, "devices", tmp_path)
        await engineer.goto(live.url + "/#/device/pump-1")
        await engineer.locator('#readings [data-point="outlet_pressure"]').wait_for()
        assert "bar" in (
            await engineer.text_content('#readings [data-point="outlet_pressure"]') or ""
        )
        await engineer.goto(live.url + "/#/assets")
        await engineer.locator("#assets tbody tr").first.wait_for()
        await shot(engineer, "assets", tmp_path)

        # a trend of one point, drawn as SVG with points
        await engineer.goto(live.url + "/#/trends/pump-1/outlet_pressure")
        plot = engineer.locator("#trend-plot svg polyline")
        await plot.wait_for()
        for _ in range(50):  # history is committed each second: redraw until points are in
            circles = await engineer.locator("#trend-plot svg circle").count()
            if circles >= 3:
                break
            await engineer.click("#trend-refresh")
            await engineer.wait_for_timeout(200)
        assert circles >= 3
        points = await plot.get_attribute("points")
        assert points is not None and len(points.split()) == circles
        await shot(engineer, "trends", tmp_path)

        assert engineer.problems == [] and viewer.problems == []


async def test_a_life_safety_alarm_says_what_it_happens_during(
    browser: Any, broker: Broker, tmp_path: Path
) -> None:
    """An entrapment whose lift goes silent stays on screen, saying so, in both languages."""
    async with live_site(broker.port, tmp_path, locale="zh-CN") as live:
        page = await open_console(browser, live, "eddie")
        await live.inject("lift-1", fault="entrapment")
        card = page.locator('[data-alarm-id="lift-1.entrapment"]')
        await card.wait_for(timeout=15_000)
        await live.inject("lift-1", fault="offline")
        during = card.locator(".during")
        await during.wait_for(timeout=30_000)
        assert await card.get_attribute("data-state") == "active_unack"
        assert await card.locator(".act-ack").count() == 1
        assert await card.locator(".act-shelve").count() == 0
        assert "lift-1 通讯中断期间" in (await during.text_content() or "")
        comm = page.locator('[data-alarm-id="lift-1.comm_loss"]')
        await comm.wait_for(timeout=15_000)
        assert await comm.get_attribute("data-priority") == "critical"
        await page.click("#lang")
        await page.locator('nav a[data-view=alarms]:text-is("Alarms")').wait_for()
        text = await card.locator(".during").text_content() or ""
        assert "during communication loss of lift-1" in text
        assert page.problems == []  # type: ignore[attr-defined]
