"""The message catalogues of the console's incident, energy and handover pages cover every key.

The pages themselves in Chromium: tests/integration/console/test_console_operations.py.
"""

from __future__ import annotations

import json
import re

from gateway.api.app import CONSOLE

PAGES = ("incidents.js", "energy.js", "handover.js")


def test_catalogues_cover_the_operations_pages() -> None:
    zh = json.loads((CONSOLE / "i18n" / "zh-CN.json").read_text("utf-8"))
    en = json.loads((CONSOLE / "i18n" / "en.json").read_text("utf-8"))
    html = (CONSOLE / "static" / "index.html").read_text("utf-8")
    for page in PAGES:
        assert f'<script src="/static/{page}">' in html
        js = (CONSOLE / "static" / page).read_text("utf-8")
        used = {k for k in re.findall(r"\bt\(\"([\w.]+)\"", js) if not k.endswith(".")}
        assert used and used <= set(zh) and used <= set(en), used - set(zh)
    for key in ("nav.incidents", "nav.energy", "nav.handover", "incident.drill"):
        assert zh[key] != en[key]
