"""Team chat robots as channels: 企业微信 (WeCom) group robot, 钉钉 (DingTalk) custom robot, 飞书
(Feishu) custom bot — each with the message format and signature its maker documents
(docs/alarms.md cites the pages).

The robot's address carries its key, so it comes from `url_file` and, like `secret_file`, is a
`Secret`: never in a log line, a repr or an error message. A robot answers HTTP 200 with
`{"errcode": N}` (WeCom, DingTalk) or `{"code": N}` (Feishu): anything but 0 is a failure, and so
is an answer that is not JSON. The bodies and signatures are pure functions, tested on their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from config.alarm_options import ChannelConfig
from gateway.notify.webhook import DeliveryError, read_secret, tls_context

WECOM_TEXT_BYTES = 2048
"""WeCom: a text message's content is at most 2048 bytes (UTF-8), markdown 4096."""
WECOM_MARKDOWN_BYTES = 4096
DINGTALK_BYTES = 18000
"""DingTalk and Feishu take about 20 kB per message; the alarm text is far shorter."""
FEISHU_BYTES = 18000


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary, marked with `…`."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", errors="ignore") + "…"


def _plain(content: dict[str, Any]) -> str:
    """Subject and the bilingual text (which ends with the console link, if any)."""
    return f"{content.get('subject', '')}\n\n{str(content.get('text', '')).rstrip()}"


def _markdown(content: dict[str, Any]) -> str:
    """Subject as a heading, each language a paragraph, the console link clickable."""
    text, _, footer = str(content.get("text", "")).rstrip().partition("\n-- \n")
    lines = [f"### {content.get('subject', '')}", ""]
    for paragraph in text.split("\n\n"):
        lines += ["  \n".join(paragraph.splitlines()), ""]
    if content.get("link"):
        lines += [f"[打开控制台 / Open in the console]({content['link']})", ""]
    lines += [line for line in footer.splitlines() if line != content.get("link")]
    return "\n".join(lines).rstrip()


def _critical(content: dict[str, Any]) -> bool:
    return (content.get("alarm") or {}).get("priority") == "critical"


# ------------------------------------------------------------------------------ bodies


def wecom_body(content: dict[str, Any], msgtype: str, mobiles: Sequence[str]) -> dict[str, Any]:
    """A WeCom group-robot message: `text` (with `mentioned_mobile_list` for critical alarms) or
    `markdown` (which cannot mention by phone)."""
    if msgtype == "markdown":
        return {
            "msgtype": "markdown",
            "markdown": {"content": clip(_markdown(content), WECOM_MARKDOWN_BYTES)},
        }
    text: dict[str, Any] = {"content": clip(_plain(content), WECOM_TEXT_BYTES)}
    if mobiles and _critical(content):
        text["mentioned_mobile_list"] = list(mobiles)
    return {"msgtype": "text", "text": text}


def dingtalk_body(content: dict[str, Any], msgtype: str, mobiles: Sequence[str]) -> dict[str, Any]:
    """A DingTalk custom-robot message, `text` or `markdown`, with `at.atMobiles` for critical
    alarms (DingTalk shows the mention where `@mobile` appears in the text)."""
    mention = list(mobiles) if mobiles and _critical(content) else []
    tail = ("\n\n" + " ".join(f"@{m}" for m in mention)) if mention else ""
    at = {"atMobiles": mention, "isAtAll": False}
    if msgtype == "markdown":
        return {
            "msgtype": "markdown",
            "markdown": {
                "title": clip(str(content.get("subject", "")), 200),
                "text": clip(_markdown(content), DINGTALK_BYTES) + tail,
            },
            "at": at,
        }
    return {
        "msgtype": "text",
        "text": {"content": clip(_plain(content), DINGTALK_BYTES) + tail},
        "at": at,
    }


def feishu_body(content: dict[str, Any], msgtype: str, users: Sequence[str]) -> dict[str, Any]:
    """A Feishu custom-bot message: `text` or rich text `post`. Feishu custom bots mention people
    by their user (open) id only, never by phone: `users` for critical alarms."""
    mention = list(users) if users and _critical(content) else []
    if msgtype == "post":
        rows: list[list[dict[str, Any]]] = [
            [{"tag": "text", "text": line}]
            for line in str(content.get("text", "")).rstrip().splitlines()
            if line not in ("", "-- ")
        ]
        if content.get("link"):
            rows.append([{"tag": "a", "text": "打开控制台 / Open in the console",
                          "href": content["link"]}])  # fmt: skip
        if mention:
            rows.append([{"tag": "at", "user_id": user} for user in mention])
        title = clip(str(content.get("subject", "")), 300)
        return {
            "msg_type": "post",
            "content": {"post": {"zh_cn": {"title": title, "content": rows}}},
        }
    text = clip(_plain(content), FEISHU_BYTES)
    if mention:
        text += "\n" + " ".join(f'<at user_id="{user}"></at>' for user in mention)
    return {"msg_type": "text", "content": {"text": text}}


# ------------------------------------------------------------------------------ signatures


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk: base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), not yet URL-encoded."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot's address with `timestamp` (ms) and the URL-encoded `sign` added to its query."""
    sign = urllib.parse.quote_plus(dingtalk_sign(secret, timestamp_ms))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={sign}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu: base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b"")), as its docs sign."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def check_answer(response: httpx.Response) -> None:
    """Raise `DeliveryError` unless the robot answered 2xx with a zero `errcode`/`code`."""
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryError(f"HTTP {response.status_code} without a JSON answer") from None
    if not isinstance(answer, dict):
        raise DeliveryError("the robot's answer is not a JSON object")
    for key in ("errcode", "code", "StatusCode"):
        code = answer.get(key)
        if code not in (None, 0, "0"):
            message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
            raise DeliveryError(f"{key} {code}: {str(message)[:200]}")


# ------------------------------------------------------------------------------ the sender


class RobotSender:
    """Posts to one chat robot. `await sender.send(content)`; `await sender.close()` at the end.

    Args:
        channel: a `wecom`, `dingtalk` or `feishu` channel.
        base: the site file's folder (relative `url_file` / `secret_file`).
        wall: the clock for signatures (injectable).

    Raises:
        OSError: `url_file` or `secret_file` cannot be read (at start, not at 3 a.m.).
    """

    def __init__(
        self, channel: ChannelConfig, base: Path, wall: Callable[[], float] = time.time
    ) -> None:
        url = read_secret(base, channel.url_file)
        assert url is not None  # the config requires url_file for robots
        if not url.reveal().startswith(("http://", "https://")):
            raise OSError(f"{channel.url_file}: not an http:// or https:// address")
        self.channel_id = channel.id
        self.kind = channel.kind
        self.msgtype = channel.message_type
        self.mobiles = tuple(channel.mention_mobiles)
        self.users = tuple(channel.mention_users)
        self._url = url
        self._secret = read_secret(base, channel.secret_file)
        self._wall = wall
        self._client = httpx.AsyncClient(
            timeout=channel.seconds,
            headers={"User-Agent": "facility-gateway"},
            verify=tls_context(base, channel.ca_file),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"RobotSender({self.channel_id!r}, {self.kind})"

    def request(self, content: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The address and JSON body for `content` (signed now when the channel has a secret)."""
        url = self._url.reveal()
        if self.kind == "wecom":
            return url, wecom_body(content, self.msgtype, self.mobiles)
        if self.kind == "dingtalk":
            body = dingtalk_body(content, self.msgtype, self.mobiles)
            if self._secret is not None:
                url = dingtalk_url(url, self._secret.reveal(), int(self._wall() * 1000))
            return url, body
        body = feishu_body(content, self.msgtype, self.users)
        if self._secret is not None:
            timestamp = int(self._wall())
            body = {"timestamp": str(timestamp),
                    "sign": feishu_sign(self._secret.reveal(), timestamp), **body}  # fmt: skip
        return url, body

    async def send(self, content: dict[str, Any]) -> None:
        """Post one notification.

        Raises:
            DeliveryError: no answer, an HTTP error status, or a non-zero `errcode`/`code`.
        """
        url, body = self.request(content)
        try:
            response = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            text = str(exc).replace(url, "<robot address>").replace(self._url.reveal(), "<robot>")
            raise DeliveryError(f"{type(exc).__name__}: {text}") from None
        check_answer(response)

    async def close(self) -> None:
        await self._client.aclose()
