"""Times on the command line: what people read is site time with its zone (`UTC+8`), what machines
read (`--json`, CSV) is ISO 8601 UTC with `Z`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from config.site import load_site
from gateway.accounts import Accounts, fast_hasher
from gateway.cli import main
from tests.e2e import write_site

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\+8")


@pytest.fixture
def site(tmp_path: Path) -> str:
    return str(write_site(tmp_path, 1883))  # Asia/Shanghai


def test_incidents_and_drills_in_site_time_json_in_utc(
    site: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", site, "lift_entrapment", "--device", "lift-1", "--by", "wang"]) == 0
    opened = capsys.readouterr().out
    assert SITE_TIME.search(opened) and not ISO_UTC.search(opened), opened
    assert main(["incidents", "list", site]) == 0
    listed = capsys.readouterr().out
    assert SITE_TIME.search(listed) and not ISO_UTC.search(listed), listed
    assert main(["incidents", "show", site, "1"]) == 0
    shown = capsys.readouterr().out
    assert SITE_TIME.search(shown) and not ISO_UTC.search(shown), shown
    assert main(["incidents", "list", site, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert ISO_UTC.fullmatch(data["opened_at"]) and ISO_UTC.fullmatch(data["steps"][0]["due"])


def test_token_list_in_site_time(site: str, capsys: pytest.CaptureFixture[str]) -> None:
    accounts = Accounts(load_site(Path(site)).storage_dir, hasher=fast_hasher())
    try:
        accounts.add_user("zhang.san", "engineer", "a-long-passw0rd", by="test")
        accounts.create_token("zhang.san", by="test", label="grafana")
    finally:
        accounts.close()
    assert main(["token", "list", site, "zhang.san"]) == 0
    listed = capsys.readouterr().out
    assert "grafana" in listed and SITE_TIME.search(listed) and not ISO_UTC.search(listed), listed


def test_shift_handover_text_in_site_time() -> None:
    from zoneinfo import ZoneInfo

    from gateway.reports.handover import render_text

    empty: list[object] = []
    report = {
        "site": "riverside",
        "since": "2026-12-05T22:00:00.000Z",
        "until": "2026-12-06T06:00:00.000Z",
        "raised": [{"id": "lift-1.entrapment", "episode": 1, "at": "2026-12-05T23:10:00.000Z",
                    "priority": "critical", "message": "trapped"}],
        "open": empty, "unacknowledged": empty, "out_of_service": empty, "comm_lost": empty,
        "shelved": [{"id": "tank-1.tank_low", "by": "eddie", "reason": "mains repair",
                     "until": "2026-12-06T04:00:00.000Z"}],
        "incidents": [{"id": 1, "drill": False, "overdue_steps": [], "steps": [],
                       "title": {"zh": "电梯困人", "en": "Person trapped in a lift"},
                       "opened_at": "2026-12-05T23:10:01.000Z"}],
        "tickets": empty, "overdue_tickets": empty,
    }  # fmt: skip
    text = render_text(report, english=True, zone=ZoneInfo("Asia/Shanghai"))
    assert "2026-12-06 06:00 UTC+8 → 2026-12-06 14:00 UTC+8" in text
    assert "2026-12-06 07:10 UTC+8  critical" in text
    assert "since 2026-12-06 07:10 UTC+8" in text and "until 2026-12-06 12:00 UTC+8" in text
    assert not ISO_UTC.search(text), text
