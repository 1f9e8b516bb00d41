"""Chat robots against a loopback robot that checks the documented body and signature.

Signatures, clipping, messages and validation, no robot: tests/unit/gateway/notify/test_notify_robots.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from config.alarm_options import ChannelConfig
from gateway.notify.robots import RobotSender
from gateway.notify.webhook import DeliveryError
from tests.notify_support import robot_receiver
from tests.unit.gateway.notify.test_notify_robots import content


def channel(folder: Path, kind: str, url: str, secret: str | None = None, **kw: Any) -> Any:
    (folder / f"{kind}.url").write_text(url + "\n")
    options: dict[str, Any] = {"id": kind, "kind": kind, "url_file": f"{kind}.url", **kw}
    if secret is not None:
        (folder / f"{kind}.secret").write_text(secret + "\n")
        options["secret_file"] = f"{kind}.secret"
    return ChannelConfig.model_validate(options)


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
