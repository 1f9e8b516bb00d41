"""Chat robots: signatures as the makers document them, clipping, the message, and validation.

Against a loopback robot that checks body and signature: tests/integration/notify/test_notify_robots.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.alarm_options import ChannelConfig
from gateway.notify.message import compose
from gateway.notify.robots import RobotSender, clip, dingtalk_sign, feishu_sign

ALARM = {
    "id": "lift-2.entrapment", "device": "lift-2", "rule": "entrapment", "priority": "critical",
    "state": "active_unack", "message": "电梯困人 (第 2 层)", "message_zh": "电梯困人 (第 2 层)",
    "message_en": "Passenger trapped (floor 2)", "value": True, "episode": 1,
    "raised_at": "2027-01-15T08:00:00.000Z",
}  # fmt: skip


def content(priority: str = "critical", link: str | None = "https://fgw.example/#/alarm/x") -> Any:
    alarm = {**ALARM, "priority": priority}
    message = compose(
        alarm, locale="zh-CN", site_name="河畔花园", during="meter-1.comm_loss", link=link
    )
    out = {"subject": message.subject, "text": message.body, "alarm": alarm, "repeat": 0}
    return out | ({"link": link} if link else {})


# ------------------------------------------------------------------ pure parts


def test_signatures_as_the_makers_document_them() -> None:
    secret, ts = "SECabc", 1_700_000_000_000
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    assert dingtalk_sign(secret, ts) == base64.b64encode(mac).decode()
    key = f"{ts // 1000}\n{secret}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu_sign(secret, ts // 1000) == expected


@given(st.text(max_size=3000), st.integers(min_value=8, max_value=4096))
def test_clip_keeps_within_the_byte_limit_on_a_character_boundary(text: str, limit: int) -> None:
    out = clip(text, limit)
    assert len(out.encode("utf-8")) <= limit
    assert out == text or out.endswith("…")
    assert text.startswith(out[:-1]) or out == text


def test_message_shows_during_and_the_console_link() -> None:
    body = content()["text"]
    assert "电梯困人 (第 2 层) — 供电异常期间 (meter-1.comm_loss)" in body
    assert "during supply loss at meter-1" in body
    assert "https://fgw.example/#/alarm/x" in body
    plain = compose(ALARM, locale="en", site_name="R")  # no `during`, no link: as before
    assert "during" not in plain.body and "http" not in plain.body


# ------------------------------------------------------------------ on the wire


def test_a_missing_url_file_fails_at_start(tmp_path: Path) -> None:
    config = ChannelConfig(id="wx", kind="wecom", url_file="nope.url")
    with pytest.raises(OSError, match="nope"):
        RobotSender(config, tmp_path)


def test_robot_channels_and_the_console_address_validate() -> None:
    from config.models import ConsoleConfig

    ding = ChannelConfig.model_validate(
        {"id": "d", "kind": "dingtalk", "url_file": "d.url", "secret_file": "d.secret",
         "msgtype": "markdown", "mention_mobiles": ["+86-13800000001"], "give_up_after": "2h"}
    )  # fmt: skip
    assert (ding.message_type, ding.give_up_after) == ("markdown", 7200.0)
    feishu = ChannelConfig(id="f", kind="feishu", url_file="f.url")
    assert feishu.message_type == "text" and feishu.give_up_after == 24 * 3600
    assert ConsoleConfig(public_url="https://fgw.example/").public_url == "https://fgw.example"
    for bad in ("fgw.example", "https://fgw.example/?a=1", "ftp://fgw.example", "https://"):
        with pytest.raises(ValueError, match="public_url"):
            ConsoleConfig(public_url=bad)
