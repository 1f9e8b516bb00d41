"""Chat robots against a loopback robot that checks the documented body and signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.alarm_options import ChannelConfig
from gateway.notify.message import compose
from gateway.notify.robots import RobotSender, clip, dingtalk_sign, feishu_sign
from gateway.notify.webhook import DeliveryError
from tests.notify_support import robot_receiver

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


def channel(folder: Path, kind: str, url: str, secret: str | None = None, **kw: Any) -> Any:
    (folder / f"{kind}.url").write_text(url + "\n")
    options: dict[str, Any] = {"id": kind, "kind": kind, "url_file": f"{kind}.url", **kw}
    if secret is not None:
        (folder / f"{kind}.secret").write_text(secret + "\n")
        options["secret_file"] = f"{kind}.secret"
    return ChannelConfig.model_validate(options)


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


async def test_wecom_text_mentions_on_duty_phones_for_critical_only(tmp_path: Path) -> None:
    with robot_receiver("wecom") as robot:
        config = channel(tmp_path, "wecom", robot.url, mention_mobiles=["13800000001"])
        sender = RobotSender(config, tmp_path)
        try:
            await sender.send(content())
            await sender.send(content("high"))
        finally:
            await sender.close()
    assert robot.refused == []
    critical, high = robot.accepted
    assert critical["msgtype"] == "text"
    assert critical["text"]["mentioned_mobile_list"] == ["13800000001"]
    assert "mentioned_mobile_list" not in high["text"]
    text = critical["text"]["content"]
    assert text.index("电梯困人") < text.index("Passenger trapped")  # site locale first
    assert "https://fgw.example/#/alarm/x" in text


async def test_wecom_markdown_and_its_errcode_is_a_failure(tmp_path: Path) -> None:
    with robot_receiver("wecom") as robot:
        sender = RobotSender(channel(tmp_path, "wecom", robot.url, msgtype="markdown"), tmp_path)
        try:
            robot.fail_with(1, answer={"errcode": 45009, "errmsg": "api freq out of limit"})
            with pytest.raises(DeliveryError, match="errcode 45009: api freq out of limit"):
                await sender.send(content())
            robot.fail_with(1, status=503)
            with pytest.raises(DeliveryError, match="HTTP 503"):
                await sender.send(content())
            await sender.send(content())
        finally:
            await sender.close()
    (body,) = robot.accepted
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"].startswith("### [紧急] 河畔花园")
    assert (
        "[打开控制台 / Open in the console](https://fgw.example/#/alarm/x)"
        in (body["markdown"]["content"])
    )


@pytest.mark.parametrize("msgtype", ["text", "markdown"])
async def test_dingtalk_signed_query_and_at_mobiles(tmp_path: Path, msgtype: str) -> None:
    with robot_receiver("dingtalk", secret="SECdd-s3cret") as robot:
        config = channel(
            tmp_path, "dingtalk", robot.url, "SECdd-s3cret", msgtype=msgtype,
            mention_mobiles=["13800000002"],
        )  # fmt: skip
        sender = RobotSender(config, tmp_path)
        assert "s3cret" not in repr(sender) and "t-123" not in repr(sender)
        try:
            await sender.send(content())
            robot.fail_with(1, answer={"errcode": 310000, "errmsg": "keywords not in content"})
            with pytest.raises(DeliveryError, match="errcode 310000"):
                await sender.send(content())
        finally:
            await sender.close()
    assert robot.refused == []
    (body,) = robot.accepted
    assert body["msgtype"] == msgtype
    assert body["at"] == {"atMobiles": ["13800000002"], "isAtAll": False}
    text = body["text"]["content"] if msgtype == "text" else body["markdown"]["text"]
    assert "@13800000002" in text  # DingTalk shows the mention where the number is in the text


async def test_dingtalk_with_a_wrong_secret_is_refused_by_the_robot(tmp_path: Path) -> None:
    with robot_receiver("dingtalk", secret="SECright") as robot:
        sender = RobotSender(channel(tmp_path, "dingtalk", robot.url, "SECwrong"), tmp_path)
        try:
            with pytest.raises(DeliveryError, match="errcode 310000: sign mismatch"):
                await sender.send(content())
        finally:
            await sender.close()


@pytest.mark.parametrize("msgtype", ["text", "post"])
async def test_feishu_signed_body_and_user_mentions(tmp_path: Path, msgtype: str) -> None:
    with robot_receiver("feishu", secret="fs-s3cret") as robot:
        config = channel(
            tmp_path, "feishu", robot.url, "fs-s3cret", msgtype=msgtype, mention_users=["ou_abc"]
        )
        sender = RobotSender(config, tmp_path)
        try:
            await sender.send(content())
            robot.fail_with(1, answer={"code": 9499, "msg": "Bad Request"})
            with pytest.raises(DeliveryError, match="code 9499"):
                await sender.send(content())
        finally:
            await sender.close()
    assert robot.refused == []
    (body,) = robot.accepted
    assert body["msg_type"] == msgtype
    if msgtype == "text":
        assert '<at user_id="ou_abc"></at>' in body["content"]["text"]
    else:
        post = body["content"]["post"]["zh_cn"]
        assert post["title"].startswith("[紧急] 河畔花园")
        assert [{"tag": "at", "user_id": "ou_abc"}] in post["content"]
        assert {"tag": "a", "text": "打开控制台 / Open in the console",
                "href": "https://fgw.example/#/alarm/x"} in post["content"][-2]  # fmt: skip


async def test_an_unreachable_robot_never_shows_its_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support import free_port

    url = f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send?key=very-secret-key"
    sender = RobotSender(channel(tmp_path, "wecom", url), tmp_path)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(DeliveryError) as info:
            await sender.send(content())
    finally:
        await sender.close()
    assert "very-secret-key" not in str(info.value) and "very-secret-key" not in repr(sender)
    assert "very-secret-key" not in caplog.text


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
