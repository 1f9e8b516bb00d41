"""Site-file sections for alarm management: `alarms:` (chattering, floods) and `notify:` (channels,
escalation). Part of `SiteFile` (see `config.models`).

Kept in a module of their own because they are one subject — what the gateway does with an alarm
once it exists — and so that `models.py` stays about equipment. Every check happens at load, with
the file line of the offending field: an escalation that names a channel that does not exist is a
start-up error, not a silent 3 a.m. non-notification. Secrets (SMTP password, webhook token) are
never inline, only `password_file` / `token_file`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ground.durations import parse_duration

_ID = r"^[A-Za-z][A-Za-z0-9_-]*$"

Seconds = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(lambda s: s)]
"""A duration written as `500ms`, `10s`, `5m`, `2h`, `15d` (or a bare number of seconds)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------- alarms:


class ChatteringConfig(_Strict):
    """More than `activations` within `window` flags an alarm chattering; it is held active
    until its condition has not flipped for `quiet`."""

    activations: int = Field(default=5, ge=1, le=1000)
    window: Seconds = 60.0
    quiet: Seconds = 30.0

    @model_validator(mode="after")
    def _positive(self) -> ChatteringConfig:
        if self.window <= 0 or self.quiet <= 0:
            raise ValueError("window and quiet must be positive durations")
        return self


class FloodConfig(_Strict):
    """EEMUA 191: more than `alarms` within `window` is a flood; it ends at `end_at` or fewer."""

    alarms: int = Field(default=10, ge=1, le=100_000)
    window: Seconds = 600.0
    end_at: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> FloodConfig:
        if self.window <= 0:
            raise ValueError("window must be a positive duration")
        if self.end_at is not None and self.end_at >= self.alarms:
            raise ValueError(f"end_at ({self.end_at}) must be below alarms ({self.alarms})")
        return self

    @property
    def end_threshold(self) -> int:
        return self.end_at if self.end_at is not None else self.alarms // 2


class AlarmsConfig(_Strict):
    chattering: ChatteringConfig = ChatteringConfig()
    flood: FloodConfig = FloodConfig()


# ---------------------------------------------------------------------------------------- notify:


ROBOTS = ("wecom", "dingtalk", "feishu")
"""Team chat robots (PRODUCT §9): 企业微信 group robot, 钉钉 custom robot, 飞书 custom bot."""

GIVE_UP_AFTER = 24 * 3600.0
"""A notification not delivered this long after it fell due is given up (counted, logged, shown)."""

_MSGTYPES = {
    "wecom": ("text", "markdown"),
    "dingtalk": ("text", "markdown"),
    "feishu": ("text", "post"),
}
_MOBILE = r"^\+?[0-9][0-9-]{4,19}$"


class ChannelConfig(_Strict):
    """A notification channel: `kind: email` (SMTP), `webhook` (HTTP POST of the alarm JSON) or a
    chat robot (`wecom`, `dingtalk`, `feishu`).

    E-mail: `host`, `port` (587), `starttls: true` upgrades a plain connection, `tls: true` is TLS
    from the first byte (port 465); `ca_file` trusts a private CA instead of the system's;
    `username` + `password_file`; `sender` and `to` (recipients). Webhook: `url`, and `token_file`
    holding a bearer token sent as `Authorization`. Robots: `url_file` (the robot's address, which
    carries its key), `secret_file` (DingTalk, Feishu: signing), `msgtype`, `mention_mobiles`
    (WeCom, DingTalk) or `mention_users` (Feishu open ids) for critical alarms. All: `timeout`,
    `give_up_after` (24h).
    """

    id: str = Field(pattern=_ID)
    kind: Literal["email", "webhook", "wecom", "dingtalk", "feishu"]
    timeout: Seconds | None = None
    give_up_after: Seconds = GIVE_UP_AFTER
    ca_file: str | None = None
    # email
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    starttls: bool | None = None
    tls: bool = False
    username: str | None = None
    password_file: str | None = None
    sender: str | None = None
    to: list[str] = []
    # webhook
    url: str | None = None
    token_file: str | None = None
    # chat robots
    url_file: str | None = None
    secret_file: str | None = None
    msgtype: str | None = None
    mention_mobiles: list[str] = []
    mention_users: list[str] = []

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("mention_mobiles")
    @classmethod
    def _mobiles(cls, value: list[str]) -> list[str]:
        for mobile in value:
            if not re.fullmatch(_MOBILE, mobile):
                raise ValueError(f"{mobile!r} is not a phone number")
        return value

    @field_validator("mention_users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for user in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", user):
                raise ValueError(f"{user!r} is not a Feishu user (open) id")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or len(value) < 10):
            raise ValueError("url must be an http:// or https:// address")
        return value

    @model_validator(mode="after")
    def _by_kind(self) -> ChannelConfig:
        email = ("host", "port", "starttls", "username", "password_file", "sender")
        robot = ("url_file", "secret_file", "msgtype")
        if self.give_up_after < 60 or self.give_up_after > 30 * 86400:
            raise ValueError("give_up_after must be between 1m and 30d")
        if self.kind in ROBOTS:
            return self._robot(email)
        if (
            self.mention_mobiles
            or self.mention_users
            or any(getattr(self, n) is not None for n in robot)
        ):
            present = [n for n in (*robot, "mention_mobiles", "mention_users") if getattr(self, n)]
            raise ValueError(f"{', '.join(present)} is not an option of a {self.kind} channel")
        if self.kind == "email":
            missing = [n for n in ("host", "sender") if getattr(self, n) is None]
            if not self.to:
                missing.append("to")
            if missing:
                raise ValueError(f"an email channel needs {', '.join(missing)}")
            if self.tls and self.starttls:
                raise ValueError("choose tls (TLS from the start) or starttls (upgrade), not both")
            if self.password_file is not None and self.username is None:
                raise ValueError("password_file needs username")
            foreign = [n for n in ("url", "token_file") if getattr(self, n) is not None]
        else:
            if self.url is None:
                raise ValueError("a webhook channel needs url")
            foreign = [n for n in email if getattr(self, n) is not None]
            if self.to or self.tls:
                foreign.append("to" if self.to else "tls")
        if foreign:
            raise ValueError(f"{', '.join(foreign)} is not an option of a {self.kind} channel")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        return self

    def _robot(self, email: tuple[str, ...]) -> ChannelConfig:
        foreign = [n for n in (*email, "url", "token_file") if getattr(self, n) is not None]
        if self.to or self.tls:
            foreign.append("to" if self.to else "tls")
        hint = ""
        if self.kind == "wecom" and self.secret_file is not None:
            foreign.append("secret_file")
            hint = " (WeCom group robots are not signed)"
        if self.kind == "feishu" and self.mention_mobiles:
            foreign.append("mention_mobiles")
            hint = " (Feishu custom bots mention by user id only: mention_users)"
        if self.kind != "feishu" and self.mention_users:
            foreign.append("mention_users")
        if "url" in foreign:
            hint = " (the robot's address carries its key: put it in url_file)"
        if foreign:
            raise ValueError(
                f"{', '.join(foreign)} is not an option of a {self.kind} channel{hint}"
            )
        if self.url_file is None:
            raise ValueError(
                f"a {self.kind} channel needs url_file (a file with the robot's address)"
            )
        allowed = _MSGTYPES[self.kind]
        if self.msgtype is not None and self.msgtype not in allowed:
            raise ValueError(f"msgtype of a {self.kind} channel is one of {', '.join(allowed)}")
        if self.kind == "wecom" and self.msgtype == "markdown" and self.mention_mobiles:
            raise ValueError(
                "WeCom markdown messages cannot mention phone numbers: use msgtype text"
            )
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        return self

    @property
    def message_type(self) -> str:
        """The robot's message type (`text` unless `msgtype` says otherwise)."""
        return self.msgtype or "text"

    @property
    def smtp_port(self) -> int:
        return self.port or (465 if self.tls else 587)

    @property
    def use_starttls(self) -> bool:
        return (not self.tls) if self.starttls is None else self.starttls

    @property
    def seconds(self) -> float:
        return self.timeout or (10.0 if self.kind == "email" else 5.0)


def _address(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


class EscalationStep(_Strict):
    """`after` unacknowledged, tell `notify` (channel ids); again every `repeat` until acked."""

    after: Seconds = 0.0
    notify: list[str] = Field(min_length=1)
    repeat: Seconds | None = None

    @model_validator(mode="after")
    def _times(self) -> EscalationStep:
        if self.after < 0:
            raise ValueError("after cannot be negative")
        if self.repeat is not None and self.repeat < 1:
            raise ValueError("repeat must be at least 1s")
        return self


def _steps(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


Steps = Annotated[list[EscalationStep], BeforeValidator(_steps)]


class EscalationConfig(_Strict):
    """Steps per priority; a priority left out is never notified."""

    critical: Steps = []
    high: Steps = []
    medium: Steps = []
    low: Steps = []

    def items(self) -> list[tuple[str, list[EscalationStep]]]:
        return [(p, getattr(self, p)) for p in ("critical", "high", "medium", "low")]


class NotifyConfig(_Strict):
    """Channels, and per priority the steps of escalation (a single step may be written as a map)."""

    channels: list[ChannelConfig] = []
    escalation: EscalationConfig = EscalationConfig()
    drills: bool = False  # a drill's messages (演练 / DRILL) go to the channels too (PRODUCT §11)

    @model_validator(mode="wrap")
    @classmethod
    def _references(cls, value: Any, handler: Any) -> NotifyConfig:
        """Duplicate channel ids and unknown channel names, each at its own line."""
        config: NotifyConfig = handler(value)
        errors: list[InitErrorDetails] = []
        ids: set[str] = set()
        for i, channel in enumerate(config.channels):
            cid = channel.id
            if cid in ids:
                errors.append(_error(("channels", i, "id"), f"duplicate channel id {cid!r}", cid))
            ids.add(cid)
        known = ", ".join(sorted(ids)) or "none defined under notify.channels"
        for priority, steps in config.escalation.items():
            for j, step in enumerate(steps):
                for k, name in enumerate(step.notify):
                    if name not in ids:
                        loc = ("escalation", priority, j, "notify", k)
                        errors.append(_error(loc, f"unknown channel {name!r} ({known})", name))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return config

    def channel(self, channel_id: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.id == channel_id:
                return channel
        raise KeyError(channel_id)


def _error(loc: tuple[str | int, ...], message: str, given: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("reference", message), loc=loc, input=given)
