"""The text of a notification: the site's locale first, the other language under it.

Duty technicians read the message on a phone at 3 a.m.: the subject says priority, place and what
happened; the body repeats it in both languages with the times and who may act. Pure code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PRIORITY = {
    "critical": ("紧急", "CRITICAL"),
    "high": ("高", "HIGH"),
    "medium": ("中", "MEDIUM"),
    "low": ("低", "LOW"),
}
_STATE = {
    "active_unack": ("报警中, 未确认", "active, not acknowledged"),
    "active_ack": ("报警中, 已确认", "active, acknowledged"),
    "rtn_unack": ("已恢复, 未确认", "back to normal, not acknowledged"),
    "normal": ("正常", "normal"),
    "shelved": ("已搁置", "shelved"),
    "suppressed": ("已抑制", "suppressed"),
    "out_of_service": ("停用", "out of service"),
}


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str


def compose(
    alarm: Mapping[str, Any],
    *,
    locale: str,
    site_name: str,
    repeat: int = 0,
    device_name: str = "",
    during: str | None = None,
    link: str | None = None,
) -> Message:
    """A notification for an alarm payload (`Alarm.payload()`).

    Args:
        alarm: the alarm's retained JSON, with `message_zh` and `message_en`.
        locale: the site locale: `en` puts English first, anything else Chinese.
        site_name: shown in the subject, so one inbox can serve several sites.
        repeat: 0 for the first message of a step, then 1, 2, … (said in the subject).
        device_name: the device's name from the site file, if it has one.
        during: the root-cause alarm id a life-safety alarm is active under (a dead supply).
        link: the alarm's page in the console, when `console.public_url` is set.
    """
    english_first = locale.lower().startswith("en")
    zh_prio, en_prio = _PRIORITY.get(str(alarm.get("priority")), ("?", "?"))
    zh_state, en_state = _STATE.get(
        str(alarm.get("state")), (alarm.get("state"), alarm.get("state"))
    )
    message_zh = str(alarm.get("message_zh") or alarm.get("message") or alarm.get("id"))
    message_en = str(alarm.get("message_en") or alarm.get("message") or alarm.get("id"))
    where = device_name or str(alarm.get("device", ""))
    if during:
        cause_device = during.partition(".")[0]
        message_zh = f"{message_zh} — 供电异常期间 ({during})"
        message_en = f"{message_en} — during supply loss at {cause_device} ({during})"
    again_zh, again_en = (
        (f" (第{repeat + 1}次提醒)", f" (reminder {repeat})") if repeat else ("", "")
    )
    if english_first:
        subject = f"[{en_prio}] {site_name}: {where}: {message_en}{again_en}"
    else:
        subject = f"[{zh_prio}] {site_name}: {where}: {message_zh}{again_zh}"
    zh = (
        f"{message_zh}\n"
        f"报警: {alarm.get('id')}  优先级: {zh_prio}  状态: {zh_state}\n"
        f"发生时间: {alarm.get('raised_at')}  次数: {alarm.get('episode')}  值: {alarm.get('value')}"
    )
    en = (
        f"{message_en}\n"
        f"Alarm: {alarm.get('id')}  priority: {en_prio}  state: {en_state}\n"
        f"Raised at: {alarm.get('raised_at')}  episode: {alarm.get('episode')}  "
        f"value: {alarm.get('value')}"
    )
    first, second = (en, zh) if english_first else (zh, en)
    footer = (
        "Acknowledge it in the console to stop these reminders. / 请在控制台确认以停止提醒。"
        if english_first
        else "请在控制台确认以停止提醒。 / Acknowledge it in the console to stop these reminders."
    )
    if link:
        footer = f"{link}\n{footer}"
    return Message(subject=subject, body=f"{first}\n\n{second}\n\n-- \n{footer}\n")
