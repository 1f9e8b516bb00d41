"""Notifications: the message in the site's locale, and a webhook token file checked at start.

For real (a local SMTP server, an HTTP receiver, escalation): tests/integration/notify/test_notify.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.alarm_options import ChannelConfig
from gateway.notify.message import compose
from gateway.notify.webhook import WebhookSender

# ------------------------------------------------------------------ real servers on loopback


# ------------------------------------------------------------------ the message


ALARM = {
    "id": "fire-1.fire_alarm", "device": "fire-1", "rule": "fire_alarm", "priority": "critical",
    "state": "active_unack", "message": "火警! 第 3 防区报警", "message_zh": "火警! 第 3 防区报警",
    "message_en": "FIRE! zones 4", "value": 4, "episode": 3, "raised_at": "2027-01-15T08:00:00.000Z",
}  # fmt: skip


def test_message_in_the_site_locale_with_the_other_language_under_it() -> None:
    zh = compose(ALARM, locale="zh-CN", site_name="河畔花园", device_name="消防主机")
    assert zh.subject == "[紧急] 河畔花园: 消防主机: 火警! 第 3 防区报警"
    assert zh.body.index("火警!") < zh.body.index("FIRE! zones 4")
    assert "报警中, 未确认" in zh.body and "active, not acknowledged" in zh.body
    en = compose(ALARM, locale="en", site_name="Riverside", repeat=2)
    assert en.subject == "[CRITICAL] Riverside: fire-1: FIRE! zones 4 (reminder 2)"
    assert en.body.index("FIRE! zones 4") < en.body.index("火警!")
    assert "episode: 3" in en.body and "2027-01-15T08:00:00.000Z" in en.body


# ------------------------------------------------------------------ the channels


async def test_webhook_token_file_missing_is_an_error_at_start(tmp_path: Path) -> None:
    channel = ChannelConfig(id="x", kind="webhook", url="http://127.0.0.1:9/", token_file="nope")
    with pytest.raises(OSError, match="nope"):
        WebhookSender(channel, tmp_path)


# ------------------------------------------------------------------ escalation through the gateway
