"""The night shift's path in a real Chromium, on a desk (1400×900) and on a phone (390×844), in
Chinese and English: a fire and an entrapment arrive, the technician reads the device's name, its
place and what to do, sees a second fire zone added, acknowledges, opens the ticket (the most urgent
first, with its #n, titled in the reader's language) and looks at trends whose labels are readable.

Screenshots go to a temporary folder, or to docs/screenshots/ with `FGW_UPDATE_SCREENSHOTS=1`
(as in `tests/integration/console/test_console_browser.py`).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import live_site
from tests.integration.console.test_console_browser import browser, open_console, shot  # noqa: F401 - the fixture
from tests.support import Broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FIRE, TRAPPED = "fire-1.fire_alarm", "lift-1.entrapment"
PHONE, DESK = {"width": 390, "height": 844}, {"width": 1400, "height": 900}


def bilingual(text: str) -> str:
    """The test site as a real one: names and places in both languages, the panel's zones named."""
    out = []
    for line in text.splitlines():
        if "{id: fire-1," in line:
            line = line.replace("name: 消防主机,", "name: 消防主机 / Fire panel,")
            line = line.replace(
                "location: 消防控制室,", "location: 消防控制室 / Fire control room,"
            )
            line = line.replace(
                "template: fire_panel,",
                "template: fire_panel, zones: {3: B1 车库 / B1 garage, 5: 一层大堂 / Lobby},",
            )
        if "{id: lift-1," in line:
            line = line.replace("name: 1号楼客梯,", "name: 1号楼客梯 / Block 1 passenger lift,")
            line = line.replace("location: 1号楼,", "location: 1号楼机房 / Block 1 machine room,")
        out.append(line)
    return "\n".join(out) + "\n"


async def resize(page: Any, size: dict[str, int]) -> None:
    await page.set_viewport_size(size)


async def in_language(page: Any, lang: str) -> None:
    nav = "Alarms" if lang == "en" else "报警"
    if await page.text_content("nav a[data-view=alarms]") != nav:
        await page.click("#lang")
        await page.locator(f'nav a[data-view=alarms]:text-is("{nav}")').wait_for()


async def card_text(page: Any, alarm_id: str, part: str) -> str:
    return (await page.locator(f'[data-alarm-id="{alarm_id}"] {part}').first.text_content()) or ""


async def chart_facts(page: Any, selector: str) -> dict[str, Any]:
    """Sizes as drawn on screen (CSS px), the kind, and the value tick labels of a chart."""
    return await page.eval_on_selector(  # type: ignore[no-any-return]
        selector,
        r"""svg => {
            const texts = [...svg.querySelectorAll('text')];
            const shown = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
            return {
                kind: svg.dataset.kind,
                points: Number(svg.dataset.points),
                smallest: Math.min(...texts.map(t => parseFloat(getComputedStyle(t).fontSize)))
                    * shown,
                yticks: [...svg.querySelectorAll('text.ytick')].map(t => t.textContent),
                xticks: [...svg.querySelectorAll('text.xtick')].map(t => t.textContent),
                zone: (svg.querySelector('text.zone') || {}).textContent,
                title: (svg.querySelector('text.title') || {}).textContent,
                width: svg.getBoundingClientRect().width,
                inside: [...(svg.querySelector('polyline')?.getAttribute('points') || '')
                    .trim().split(/\s+/).filter(Boolean)]
                    .map(p => Number(p.split(',')[1]))
                    .every(y => y >= Number(svg.dataset.top) - 0.5
                        && y <= Number(svg.dataset.bottom) + 0.5),
            };
        }""",
    )


async def platform_fonts(page: Any, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium really drew the element's text with (a real bold face, not a
    synthesized one, has "Bold" in its PostScript name)."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("DOM.enable")
    await cdp.send("CSS.enable")
    root = await cdp.send("DOM.getDocument")
    node = await cdp.send(
        "DOM.querySelector", {"nodeId": root["root"]["nodeId"], "selector": selector}
    )
    fonts = await cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    await cdp.detach()
    return list(fonts["fonts"])


def one_two_five(labels: list[str]) -> bool:
    values = [float(v) for v in labels]
    steps = {round(b - a, 9) for a, b in itertools.pairwise(values)}
    if len(steps) != 1:
        return False
    step = steps.pop()
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (1, 2, 5))


async def wait_for_points(
    page: Any, selector: str, refresh: Callable[[], Awaitable[Any]], at_least: int
) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for _ in range(60):  # history is committed each second: redraw until points are in
        await page.locator(selector).wait_for()
        facts = await chart_facts(page, selector)
        if facts["points"] >= at_least:
            return facts
        await refresh()
        await page.wait_for_timeout(250)
    return facts


async def test_the_night_shift_path(browser: Any, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    async with live_site(broker.port, tmp_path, locale="zh-CN", edit=bilingual) as live:
        desk = await open_console(browser, live, "eddie")
        await resize(desk, DESK)
        phone = await open_console(browser, live, "eddie", phone=True)
        await in_language(phone, "en")

        # a fire in zone 3 and a passenger trapped in lift-1 arrive live on both screens
        await live.inject("fire-1", fault="fire", zone=3)
        await live.inject("lift-1", fault="entrapment")
        for page in (desk, phone):
            for alarm_id in (FIRE, TRAPPED):
                await page.locator(f'[data-alarm-id="{alarm_id}"]').wait_for(timeout=20_000)

        # the fire and the entrapment opened incidents: "what to do" links to each one's next step
        for page in (desk, phone):
            for alarm_id in (FIRE, TRAPPED):
                await page.locator(f'[data-alarm-id="{alarm_id}"] a.advice-incident').wait_for(
                    timeout=15_000
                )
        # name and place first, then the message, how long, and what to do
        assert await card_text(desk, FIRE, ".device-name") == "消防主机"
        assert "消防控制室" in await card_text(desk, FIRE, ".location")
        assert "3 (B1 车库)" in await card_text(desk, FIRE, ".message")
        assert "确认火情" in await card_text(desk, FIRE, ".advice-text")
        assert "已持续" in await card_text(desk, FIRE, ".since")
        assert await card_text(desk, TRAPPED, ".device-name") == "1号楼客梯"
        assert "对讲" in await card_text(desk, TRAPPED, ".advice-text")
        assert await card_text(phone, FIRE, ".device-name") == "Fire panel"
        assert "Fire control room" in await card_text(phone, FIRE, ".location")
        assert "Confirm the fire" in await card_text(phone, FIRE, ".advice-text")
        link = phone.locator(f'[data-alarm-id="{TRAPPED}"] a.advice-incident')
        assert (await link.get_attribute("href") or "").startswith("#/incident/")
        # one line on a phone: a long step is cut short on screen, never wrapped
        lines = await phone.eval_on_selector(
            f'[data-alarm-id="{TRAPPED}"] .advice',
            "e => (e.clientHeight - parseFloat(getComputedStyle(e).paddingTop) * 2)"
            " / e.querySelector('.advice-label').getBoundingClientRect().height",
        )
        assert lines < 1.8, lines
        # a tap beside the link shows all of it (a phone has no tooltip)
        await phone.locator(f'[data-alarm-id="{TRAPPED}"] .advice-label').click()
        advice = phone.locator(f'[data-alarm-id="{TRAPPED}"] .advice')
        assert "open" in (await advice.get_attribute("class") or "")
        assert "active for" in await card_text(phone, FIRE, ".since")
        assert await card_text(phone, TRAPPED, ".device-name") == "Block 1 passenger lift"
        assert "intercom" in await card_text(phone, TRAPPED, ".advice-text")
        head = await desk.eval_on_selector(
            f'[data-alarm-id="{FIRE}"]',
            "c => [...c.children].map(e => e.className).filter(n => n !== 'bar ' + c.dataset.priority)",
        )
        assert head[:3] == ["head", "what", "advice"]
        # the incident's lift by its name in the reader's language, not "中文 / English"
        lift = desk.locator("#incident-strip .ctx", has_text="1号楼客梯").first
        assert "Block 1" not in (await lift.text_content() or "")
        lift = phone.locator("#incident-strip .ctx", has_text="Block 1 passenger lift").first
        assert "1号楼客梯" not in (await lift.text_content() or "")

        # a second zone goes into fire: the same alarm, still unacknowledged, now lists both
        await live.inject("fire-1", fault="fire", zone=5)
        await phone.locator(f'[data-alarm-id="{FIRE}"] .message:has-text("5 (Lobby)")').wait_for(
            timeout=15_000
        )
        await desk.locator(f'[data-alarm-id="{FIRE}"] .message:has-text("5 (一层大堂)")').wait_for(
            timeout=15_000
        )
        assert await desk.locator(f'[data-alarm-id="{FIRE}"]').get_attribute("data-state") == (
            "active_unack"
        )
        fonts = await platform_fonts(desk, f'[data-alarm-id="{FIRE}"] .device-name')
        assert any("CJK" in f["familyName"] and "Bold" in f["postScriptName"] for f in fonts), fonts
        # how long keeps counting on an open page, without a new event
        since = await card_text(phone, TRAPPED, ".since")
        await phone.wait_for_function(
            "([sel, text]) => document.querySelector(sel).textContent !== text",
            arg=[f'[data-alarm-id="{TRAPPED}"] .since', since],
            timeout=25_000,
        )
        await shot(desk, "night-alarms-zh", tmp_path)
        await shot(phone, "night-alarms-phone-en", tmp_path)

        # acknowledge the fire on the phone
        await phone.locator(f'[data-alarm-id="{FIRE}"] .act-ack').click()
        await phone.fill("#ack-comment", "on my way to the fire control room")
        await phone.click("#dialog-submit")
        await desk.locator(f'[data-alarm-id="{FIRE}"][data-state="active_ack"]').wait_for(
            timeout=10_000
        )

        # the tickets: emergencies first, each with its #n, titled in the reader's language
        for page, lang in ((desk, "zh"), (phone, "en")):
            await page.goto(live.url + "/#/tickets")
            first = page.locator('[data-status="open"] .ticket').first
            await first.wait_for(timeout=10_000)
            await page.locator('[data-status="open"] .ticket', has_text="fire-1").wait_for()
            urgencies = await page.eval_on_selector_all(
                '[data-status="open"] .ticket', "els => els.map(e => e.dataset.urgency)"
            )
            ranks = [["emergency", "urgent", "normal", "low"].index(u) for u in urgencies]
            assert ranks == sorted(ranks)
            fire_ticket = page.locator('[data-status="open"] .ticket', has_text="fire-1")
            assert re.fullmatch(r"#\d+ ", await fire_ticket.locator(".ticket-no").text_content())
            title = await fire_ticket.locator(".ticket-title").text_content() or ""
            assert title.startswith("FIRE!" if lang == "en" else "火警!"), title
            # due in site time, a date no one reads as 12 June, with the zone
            card = await fire_ticket.text_content() or ""
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\+8", card), card
            # which device and where, not only its id
            name = await fire_ticket.locator(".device-name").text_content()
            place = await fire_ticket.locator(".location").text_content() or ""
            assert name == ("Fire panel" if lang == "en" else "消防主机"), name
            assert ("Fire control room" if lang == "en" else "消防控制室") in place, place
        await shot(desk, "night-tickets-zh", tmp_path)
        await shot(phone, "night-tickets-phone-en", tmp_path)

        # the trend of a number: readable labels at phone size, 1-2-5 ticks, unit, site time
        for page in (desk, phone):
            await page.goto(live.url + "/#/trends/pump-1/outlet_pressure")
            facts = await wait_for_points(
                page, "#trend-plot svg", lambda p=page: p.click("#trend-refresh"), 3
            )
            assert facts["kind"] == "number" and facts["points"] >= 3
            assert facts["smallest"] >= 11, facts
            assert one_two_five(facts["yticks"]), facts["yticks"]
            assert facts["inside"], "a value is drawn outside the axis"
            assert facts["zone"] == "UTC+8"
            assert "(bar)" in facts["title"]
        chosen = await desk.eval_on_selector("#trend-device", "s => s.selectedOptions[0].text")
        assert chosen == "1号生活水泵 · pump-1", chosen  # the device by its name, then its id
        assert "出口压力" in (await chart_facts(desk, "#trend-plot svg"))["title"]
        assert "Outlet pressure" in (await chart_facts(phone, "#trend-plot svg"))["title"]
        await shot(desk, "night-trend-zh", tmp_path)
        await shot(phone, "night-trend-phone-en", tmp_path)

        # the fire panel's page has a chart; its `fire` point is a step chart of yes/no
        for page in (desk, phone):
            await page.goto(live.url + "/#/device/fire-1")
            await page.locator("#device-chart svg").wait_for(timeout=10_000)
            await page.select_option("#device-chart-point", "fire")
            facts = await wait_for_points(
                page,
                '#device-chart svg[data-kind="bool"]',  # the redraw after the choice
                lambda p=page: p.select_option("#device-chart-point", "fire"),
                2,
            )
            assert facts["kind"] == "bool", facts
            assert facts["smallest"] >= 11, facts
            assert len(facts["yticks"]) == 2
            assert facts["inside"], "a state is drawn outside the axis"
        assert (await chart_facts(phone, "#device-chart svg"))["yticks"] == ["no", "yes"]
        await desk.evaluate("window.scrollTo(0, 0)")
        await shot(desk, "night-device-zh", tmp_path)
        await phone.locator("#device-chart").scroll_into_view_if_needed()
        await shot(phone, "night-device-phone-en", tmp_path)

        assert desk.problems == [] and phone.problems == []  # type: ignore[attr-defined]
